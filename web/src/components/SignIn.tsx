import { FirebaseError } from 'firebase/app';
import { createUserWithEmailAndPassword, signInWithEmailAndPassword } from 'firebase/auth';
import { useState, type FormEvent } from 'react';
import { config, useEmulators } from '../config';
import { auth } from '../firebase';

const AUTH_MESSAGES: Record<string, string> = {
  'auth/invalid-credential': 'Wrong email or password.',
  'auth/wrong-password': 'Wrong email or password.',
  'auth/user-not-found': 'No account with that email. Create one instead.',
  'auth/email-already-in-use': 'An account with that email exists. Sign in instead.',
  'auth/weak-password': 'Use a password of at least 6 characters.',
  'auth/invalid-email': 'That email address is not valid.',
  'auth/missing-password': 'Enter a password.',
  'auth/network-request-failed': 'Cannot reach the sign-in service. Check your connection.',
  'auth/too-many-requests': 'Too many attempts. Wait a moment and try again.',
};

function authMessage(error: unknown): string {
  if (error instanceof FirebaseError) return AUTH_MESSAGES[error.code] ?? error.message;
  return error instanceof Error ? error.message : String(error);
}

export function SignIn() {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(mode: 'sign-in' | 'create', event?: FormEvent) {
    event?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'create') await createUserWithEmailAndPassword(auth, email, password);
      else await signInWithEmailAndPassword(auth, email, password);
    } catch (e) {
      setError(authMessage(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="signin">
      <form className="card signin-card" onSubmit={(e) => void submit('sign-in', e)} data-testid="sign-in-form">
        <h1 className="brand-title">RAG Prompt Library</h1>
        <p className="muted">Sign in to run your prompts and watch the answers stream in.</p>
        {useEmulators && config.demoEmail && config.demoPassword && (
          <div className="alert alert-info" data-testid="demo-account">
            <span>
              Local stack: sign in as <code data-testid="demo-email">{config.demoEmail}</code> with password{' '}
              <code data-testid="demo-password">{config.demoPassword}</code>.
            </span>
            <button
              type="button"
              className="btn btn-small"
              onClick={() => {
                setEmail(config.demoEmail ?? '');
                setPassword(config.demoPassword ?? '');
              }}
              data-testid="use-demo-account"
            >
              Fill in
            </button>
          </div>
        )}
        <label>
          Email
          <input
            type="email"
            autoComplete="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            data-testid="email-input"
            required
          />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            data-testid="password-input"
            required
          />
        </label>
        {error && (
          <div className="alert alert-error" role="alert" data-testid="auth-error">
            {error}
          </div>
        )}
        <div className="row">
          <button type="submit" className="btn btn-primary" disabled={busy} data-testid="sign-in-button">
            Sign in
          </button>
          <button
            type="button"
            className="btn"
            disabled={busy}
            onClick={() => void submit('create')}
            data-testid="create-account-button"
          >
            Create account
          </button>
        </div>
      </form>
    </div>
  );
}
