import { useState } from 'react';
import type { Prompt } from '../types';

interface Props {
  prompt: Prompt;
  isOwner: boolean;
  onEdit: () => void;
  onDelete: () => Promise<void>;
}

export function PromptView({ prompt, isOwner, onEdit, onDelete }: Props) {
  const [confirming, setConfirming] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function remove() {
    setDeleting(true);
    setError(null);
    try {
      await onDelete();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setDeleting(false);
    }
  }

  return (
    <section className="card prompt-view" data-testid="prompt-view" data-prompt-id={prompt.id}>
      <header className="panel-header wrap">
        <h2 data-testid="prompt-title">{prompt.title}</h2>
        {prompt.public && <span className="badge badge-public">public</span>}
        {!isOwner && <span className="badge">shared with you</span>}
        <span className="spacer" />
        {isOwner && (
          <>
            <button type="button" className="btn btn-small" onClick={onEdit} data-testid="edit-prompt-button">
              Edit
            </button>
            <button
              type="button"
              className="btn btn-small btn-danger"
              onClick={() => setConfirming(true)}
              disabled={confirming}
              data-testid="delete-prompt-button"
            >
              Delete
            </button>
          </>
        )}
      </header>
      {confirming && (
        <div className="alert alert-warning confirm" role="alertdialog" aria-label="Delete prompt" data-testid="delete-confirm">
          <span>
            Delete “{prompt.title}”? This cannot be undone. Its past runs stay in your history.
          </span>
          <span className="row">
            <button
              type="button"
              className="btn btn-small btn-danger"
              onClick={() => void remove()}
              disabled={deleting}
              data-testid="delete-confirm-button"
            >
              {deleting ? 'Deleting…' : 'Delete prompt'}
            </button>
            <button
              type="button"
              className="btn btn-small"
              onClick={() => setConfirming(false)}
              disabled={deleting}
              autoFocus
              data-testid="delete-cancel-button"
            >
              Keep it
            </button>
          </span>
          {error && <span data-testid="delete-error">Could not delete: {error}</span>}
        </div>
      )}
      {prompt.system_prompt && (
        <pre className="template system" title="System prompt">
          {prompt.system_prompt}
        </pre>
      )}
      <pre className="template" data-testid="prompt-content">
        {prompt.content}
      </pre>
    </section>
  );
}
