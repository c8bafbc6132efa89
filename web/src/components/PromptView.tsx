import { useState } from 'react';
import { count } from '../services/words';
import type { KbDocument, Prompt } from '../types';
import { ConfirmDelete } from './ConfirmDelete';

interface Props {
  prompt: Prompt;
  isOwner: boolean;
  onEdit: () => void;
  onDelete: () => Promise<void>;
  /** The user's documents, to name the attached ones. */
  documents?: KbDocument[] | null;
}

/**
 * One attached document: its title; one the owner no longer has, "deleted document"; on another
 * user's prompt (whose documents the viewer cannot read) or while the list loads, its id.
 */
function DocumentName({ id, documents, isOwner }: { id: string; documents: KbDocument[] | null; isOwner: boolean }) {
  const doc = documents?.find((d) => d.id === id);
  if (doc) return <>{doc.title}</>;
  const gone = isOwner && documents !== null;
  return (
    <span data-testid={gone ? 'deleted-document' : 'unknown-document'}>
      {gone ? 'deleted document' : 'document'} <small className="muted">{id}</small>
    </span>
  );
}

/** "Draws on" line: the attached documents, and top_k. */
function Knowledge({ prompt, documents, isOwner }: { prompt: Prompt; documents: KbDocument[] | null; isOwner: boolean }) {
  const ids = prompt.document_ids ?? [];
  if (ids.length === 0) return null;
  return (
    <p className="knowledge-line small" data-testid="prompt-documents">
      <span className="muted">Draws on</span>{' '}
      {ids.map((id, i) => (
        <span key={id}>
          {i > 0 && ', '}
          <DocumentName id={id} documents={documents} isOwner={isOwner} />
        </span>
      ))}
      {prompt.top_k != null && <span className="muted"> · {count(prompt.top_k, 'passage')}</span>}
      {prompt.retrieval_query_variable && <span className="muted"> · searched with {`{{${prompt.retrieval_query_variable}}}`}</span>}
    </p>
  );
}

export function PromptView({ prompt, isOwner, onEdit, onDelete, documents = null }: Props) {
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
        <ConfirmDelete
          label="Delete prompt"
          confirmLabel="Delete prompt"
          deleting={deleting}
          onConfirm={() => void remove()}
          onCancel={() => setConfirming(false)}
          testId="delete-confirm"
          confirmTestId="delete-confirm-button"
          cancelTestId="delete-cancel-button"
          after={error && <span data-testid="delete-error">Could not delete: {error}</span>}
        >
          Delete “{prompt.title}”? This cannot be undone. Its past runs stay in your history.
        </ConfirmDelete>
      )}
      {prompt.system_prompt && (
        <pre className="template system" title="System prompt">
          {prompt.system_prompt}
        </pre>
      )}
      <pre className="template" data-testid="prompt-content">
        {prompt.content}
      </pre>
      <Knowledge prompt={prompt} documents={documents} isOwner={isOwner} />
    </section>
  );
}
