import { Link } from 'react-router';

const WHAT: Record<string, string> = {
  prompt: 'No prompt here: it was deleted, or it is someone else’s and not public.',
  run: 'No run here: it does not exist, or it is not yours.',
  comparison: 'No comparison here: it does not exist, or it is not yours.',
  page: 'Nothing lives at this address.',
};

/** One page for whatever a URL names but the user cannot see: absent and forbidden read alike. */
export function NotFound({ what }: { what: keyof typeof WHAT }) {
  return (
    <div className="card empty" data-testid="not-found" data-what={what}>
      <h2>Not found</h2>
      <p className="muted">{WHAT[what]}</p>
      <p>
        <Link to="/" data-testid="not-found-home">
          Your prompts
        </Link>{' '}
        ·{' '}
        <Link to="/history" data-testid="not-found-history">
          History
        </Link>
      </p>
    </div>
  );
}

export function PageLoading() {
  return (
    <p className="muted small" data-testid="page-loading">
      Loading…
    </p>
  );
}
