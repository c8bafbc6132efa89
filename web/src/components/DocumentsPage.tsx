import { useEffect, useState, type DragEvent } from 'react';
import type { Documents, Upload, Uploads } from '../hooks/useDocuments';
import { deleteDocument } from '../services/documents';
import { count } from '../services/words';
import { ExecutionError, MAX_DOCUMENT_BYTES } from '../services/errors';
import type { KbDocument } from '../types';
import { ConfirmDelete } from './ConfirmDelete';
import { ErrorBanner } from './ErrorBanner';

const ACCEPT = '.txt,.md,.markdown,.pdf,text/plain,text/markdown,application/pdf';

export function formatBytes(n: number | null): string {
  if (n === null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleString() : '…';
}

export function StatusBadge({ doc }: { doc: KbDocument }) {
  const label = doc.status === 'ready' ? `ready · ${count(doc.passage_count ?? 0, 'passage')}` : doc.status;
  return (
    <span className={`badge badge-doc-${doc.status}`} data-testid="document-status" data-status={doc.status}>
      {doc.status === 'indexing' && <span className="spinner spinner-small" aria-hidden="true" />}
      {label}
    </span>
  );
}

function DropZone({ onFiles }: { onFiles: (files: File[]) => void }) {
  const [over, setOver] = useState(false);
  // A file dropped beside the zone would make the browser open it in place of the app.
  useEffect(() => {
    const ignore = (event: globalThis.DragEvent) => {
      if (event.dataTransfer?.types.includes('Files')) event.preventDefault();
    };
    window.addEventListener('dragover', ignore);
    window.addEventListener('drop', ignore);
    return () => {
      window.removeEventListener('dragover', ignore);
      window.removeEventListener('drop', ignore);
    };
  }, []);
  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    onFiles([...event.dataTransfer.files]);
  };
  return (
    <label
      className={`dropzone${over ? ' over' : ''}`}
      data-testid="dropzone"
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <input
        type="file"
        multiple
        accept={ACCEPT}
        className="visually-hidden"
        data-testid="document-file-input"
        onChange={(event) => {
          onFiles([...(event.target.files ?? [])]);
          event.target.value = '';
        }}
      />
      <strong>Drop files here, or choose files</strong>
      <span className="muted small">
        Plain text, Markdown or PDF, up to {MAX_DOCUMENT_BYTES / 1024 / 1024} MiB each. Indexing spends tokens from
        your daily budget.
      </span>
    </label>
  );
}

function UploadRow({ upload, onDismiss }: { upload: Upload; onDismiss: () => void }) {
  const { progress, result, error } = upload;
  const state = error ? 'failed' : result ? 'done' : (progress?.phase ?? 'waiting');
  return (
    <li className="upload" data-testid="upload" data-state={state}>
      <div className="upload-head">
        <span className="upload-name">{upload.filename}</span>
        <span className="muted small">{formatBytes(upload.size)}</span>
        <span className="spacer" />
        {state === 'waiting' && <span className="muted small">Waiting…</span>}
        {state === 'sending' && (
          <span className="muted small">
            Uploading
            {progress?.phase === 'sending' && progress.fraction !== null ? ` ${Math.round(progress.fraction * 100)} %` : '…'}
          </span>
        )}
        {state === 'indexing' && <span className="muted small">Indexing: splitting and embedding…</span>}
        {state === 'done' && (
          <span className="small" data-testid="upload-done">
            Ready: {count(result!.passage_count, 'passage')}
          </span>
        )}
        {(state === 'done' || state === 'failed') && (
          <button type="button" className="btn btn-small" onClick={onDismiss} aria-label={`Dismiss ${upload.filename}`}>
            ✕
          </button>
        )}
      </div>
      {state === 'sending' && (
        <progress
          max={1}
          value={progress?.phase === 'sending' && progress.fraction !== null ? progress.fraction : undefined}
          aria-label={`Uploading ${upload.filename}`}
        />
      )}
      {/* No value: an indeterminate bar, since the server reports no progress while it indexes. */}
      {state === 'indexing' && <progress aria-label={`Indexing ${upload.filename}`} data-testid="upload-indexing" />}
      {error && <ErrorBanner error={error} subject="document" testId="upload-error" />}
    </li>
  );
}

/**
 * A new document whose upload was refused (unsupported type, unreadable, too long) or failed: the
 * server keeps its record, `error` and never indexed, so the list says why. Nothing of it is kept.
 */
export function neverIndexed(doc: KbDocument): boolean {
  return doc.status === 'error' && !doc.generation;
}

function DocumentRow({ doc, getIdToken }: { doc: KbDocument; getIdToken: () => Promise<string> }) {
  const [confirming, setConfirming] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [error, setError] = useState<ExecutionError | null>(null);

  async function remove() {
    setDeleting(true);
    setError(null);
    try {
      await deleteDocument(doc.id, { idToken: await getIdToken().catch(() => '') });
      // The listener drops the row once Firestore has the delete.
    } catch (e) {
      setError(e instanceof ExecutionError ? e : new ExecutionError('internal', String(e), { cause: e }));
      setDeleting(false);
    }
  }

  return (
    <li className="document" data-testid="document-row" data-document-id={doc.id} data-status={doc.status}>
      <div className="document-head">
        <div className="document-name">
          <strong data-testid="document-title">{doc.title}</strong>
          <span className="muted small">
            {doc.filename || doc.id} · {formatBytes(doc.size)} · {when(doc.updatedAtMs ?? doc.createdAtMs)}
          </span>
        </div>
        <StatusBadge doc={doc} />
        {neverIndexed(doc) ? (
          // Nothing to lose: no confirmation.
          <button
            type="button"
            className="btn btn-small"
            onClick={() => void remove()}
            disabled={deleting}
            data-testid="document-dismiss-button"
          >
            {deleting ? 'Dismissing…' : 'Dismiss'}
          </button>
        ) : (
          <button
            type="button"
            className="btn btn-small btn-danger"
            onClick={() => setConfirming(true)}
            disabled={confirming}
            data-testid="document-delete-button"
          >
            Delete
          </button>
        )}
      </div>
      {doc.status === 'error' && (
        <div className="alert alert-error" data-testid="document-error">
          <strong>Indexing failed</strong> {doc.error_message ?? 'No reason was recorded.'}
          {neverIndexed(doc) && (
            <span className="small" data-testid="document-refused-note">
              Nothing of it was kept; it stays listed until you dismiss it.
            </span>
          )}
        </div>
      )}
      {confirming && (
        <ConfirmDelete
          label="Delete document"
          confirmLabel="Delete document"
          deleting={deleting}
          onConfirm={() => void remove()}
          onCancel={() => setConfirming(false)}
          testId="document-delete-confirm"
          confirmTestId="document-delete-confirm-button"
        >
          Delete “{doc.title}” and its passages? Prompts that name it will no longer draw on it. This cannot be undone.
        </ConfirmDelete>
      )}
      {error && <ErrorBanner error={error} subject="document" testId="document-delete-error" />}
    </li>
  );
}

interface Props {
  documents: Documents;
  uploads: Uploads;
  getIdToken: () => Promise<string>;
}

/** Knowledge bases: upload documents, watch them index, delete them. */
export function DocumentsPage({ documents, uploads, getIdToken }: Props) {
  const { rows, error } = documents;

  // Dismissing a refused upload dismisses the server's record of it too: one refusal, one ✕.
  function dismissUpload(upload: Upload) {
    uploads.dismiss(upload.key);
    const id = upload.error?.details?.document_id;
    const doc = rows?.find((d) => d.id === id);
    if (!doc || !neverIndexed(doc)) return;
    void (async () => {
      // Best effort: should it fail, the row stays, with its own Dismiss.
      await deleteDocument(doc.id, { idToken: await getIdToken().catch(() => '') }).catch(() => undefined);
    })();
  }

  return (
    <>
      <section className="card documents-upload" data-testid="documents-page">
        <h2>Documents</h2>
        <p className="muted small">
          Attach documents to a prompt in its editor; each run then draws on the passages nearest its question and
          cites them as [1], [2].
        </p>
        <DropZone onFiles={uploads.add} />
        {uploads.items.length > 0 && (
          <ul className="uploads" aria-label="Uploads">
            {uploads.items.map((u) => (
              <UploadRow key={u.key} upload={u} onDismiss={() => dismissUpload(u)} />
            ))}
          </ul>
        )}
      </section>
      <section className="card" data-testid="documents-list">
        <h3>Your documents</h3>
        {error && <div className="alert alert-error">Could not load your documents: {error}</div>}
        {rows === null && !error && <p className="muted small">Loading…</p>}
        {rows !== null && rows.length === 0 && <p className="muted small">No documents yet.</p>}
        {rows !== null && rows.length > 0 && (
          <ul className="documents">
            {rows.map((doc) => (
              <DocumentRow key={doc.id} doc={doc} getIdToken={getIdToken} />
            ))}
          </ul>
        )}
      </section>
    </>
  );
}
