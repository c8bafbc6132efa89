import { initializeApp } from 'firebase/app';
import { connectAuthEmulator, getAuth } from 'firebase/auth';
import { connectFirestoreEmulator, getFirestore } from 'firebase/firestore';
import { config, useEmulators } from './config';

export const app = initializeApp({
  apiKey: config.apiKey,
  projectId: config.projectId,
  authDomain: config.authDomain ?? `${config.projectId}.firebaseapp.com`,
});

export const auth = getAuth(app);
export const db = getFirestore(app);

if (useEmulators) {
  connectAuthEmulator(auth, config.authEmulatorUrl!, { disableWarnings: true });
  const [host, port] = config.firestoreEmulatorHost.split(':');
  connectFirestoreEmulator(db, host ?? '127.0.0.1', Number(port ?? 8080));
}
