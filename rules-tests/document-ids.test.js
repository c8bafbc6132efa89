// Security rules for per-user document ids (issue 26): documents/{document_id}~{uid key}
// are written by the backend's ingestion only and read by their owner only, so one user's
// ids say nothing of another's and no client can take another user's key.
//
// Run: npm run test:rules:emulated (see firestore.rules.test.js).
import { beforeEach, describe, it } from 'node:test';

import { assertFails, assertSucceeds } from '@firebase/rules-unit-testing';
import {
  collection,
  doc,
  getDoc,
  getDocs,
  query,
  serverTimestamp,
  setDoc,
  setLogLevel,
  where,
} from 'firebase/firestore';

import { rulesEnvironment } from './support.mjs';

setLogLevel('silent');

const testbed = rulesEnvironment('-ids');

const stored = (owner, documentId) => ({
  owner_uid: owner,
  document_id: documentId,
  title: 'Handbook',
  filename: 'handbook.md',
  content_type: 'text/markdown',
  size: 10,
  status: 'ready',
  generation: 1,
  passage_count: 2,
});

const described = (owner) => ({
  owner_uid: owner,
  document_id: 'handbook',
  title: 'Handbook',
  filename: 'handbook.md',
  content_type: 'text/markdown',
  size: 10,
  created_at: serverTimestamp(),
  updated_at: serverTimestamp(),
});

const as = (uid) => testbed.env.authenticatedContext(uid).firestore();

beforeEach(async () => {
  await testbed.env.clearFirestore();
  await testbed.env.withSecurityRulesDisabled(async (ctx) => {
    const db = ctx.firestore();
    // Two users, one document id each: two documents.
    await setDoc(doc(db, 'documents/handbook~alice'), stored('alice', 'handbook'));
    await setDoc(doc(db, 'documents/handbook~bob'), stored('bob', 'handbook'));
  });
});

describe('per-user document ids: allowed', () => {
  it('each owner reads their own document of a shared id', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'documents/handbook~alice')));
    await assertSucceeds(getDoc(doc(as('bob'), 'documents/handbook~bob')));
  });

  it("an owner's list holds their own document only", async () => {
    const snap = await assertSucceeds(
      getDocs(query(collection(as('alice'), 'documents'), where('owner_uid', '==', 'alice'))),
    );
    const found = snap.docs.map((d) => [d.id, d.data().document_id]);
    if (JSON.stringify(found) !== JSON.stringify([['handbook~alice', 'handbook']])) {
      throw new Error(`unexpected documents ${JSON.stringify(found)}`);
    }
  });
});

describe('per-user document ids: denied', () => {
  it("reading another user's document of the same id", async () => {
    await assertFails(getDoc(doc(as('alice'), 'documents/handbook~bob')));
  });

  it('creating a document under another user’s key (squatting)', async () => {
    await assertFails(setDoc(doc(as('alice'), 'documents/other~bob'), described('alice')));
    await assertFails(setDoc(doc(as('alice'), 'documents/other~bob'), described('bob')));
  });

  it('creating a document under one’s own key (ingestion writes them)', async () => {
    await assertFails(setDoc(doc(as('alice'), 'documents/other~alice'), described('alice')));
  });

  it('creating a document under an unscoped id', async () => {
    await assertFails(setDoc(doc(as('alice'), 'documents/other'), described('alice')));
  });

  it('overwriting another user’s document', async () => {
    await assertFails(setDoc(doc(as('alice'), 'documents/handbook~bob'), stored('alice', 'handbook')));
  });
});
