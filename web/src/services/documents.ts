/**
 * Knowledge-base documents: upload and delete through `ingest_document`, and the user's
 * `documents` live from Firestore (README, "Knowledge bases").
 *
 * The upload is an XMLHttpRequest, not fetch: fetch reports no upload progress.
 */
import {
  collection,
  onSnapshot,
  query,
  Timestamp,
  where,
  type DocumentData,
  type Firestore,
  type Unsubscribe,
} from 'firebase/firestore';
import { config } from '../config';
import type { KbDocument } from '../types';
import { CLIENT_CODES, ExecutionError, MAX_DOCUMENT_BYTES, errorFromBody, errorFromResponse } from './errors';

/** The answer of a successful upload: the passages are searchable by now. */
export interface IngestResult {
  document_id: string;
  generation: number;
  passage_count: number;
  tokens: number;
  status: 'ready';
}

/** Where an upload is: sending the bytes (with a fraction when known), then the server indexing. */
export type UploadProgress = { phase: 'sending'; fraction: number | null } | { phase: 'indexing' };

export interface UploadOptions {
  idToken: string;
  /** Replace this document of yours; a new id is made when absent. */
  documentId?: string;
  title?: string;
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
  /** Defaults to VITE_FUNCTIONS_BASE_URL. */
  baseUrl?: string;
  /** For tests; defaults to the browser's XMLHttpRequest. */
  xhrFactory?: () => XMLHttpRequest;
}

export interface DeleteOptions {
  idToken: string;
  baseUrl?: string;
  fetchImpl?: typeof fetch;
}

/** The upload and delete endpoint, beside the other functions. */
export function ingestUrl(baseUrl: string = config.functionsBaseUrl): string {
  return `${baseUrl}/ingest_document`;
}

const TYPES_BY_EXTENSION: Record<string, string> = {
  txt: 'text/plain',
  text: 'text/plain',
  md: 'text/markdown',
  markdown: 'text/markdown',
  pdf: 'application/pdf',
};

/** The Content-Type to send: by extension first (browsers often give .md no type), then the file's own. */
export function contentTypeOf(file: { name: string; type: string }): string {
  const extension = /\.([A-Za-z0-9]+)$/.exec(file.name)?.[1]?.toLowerCase() ?? '';
  return TYPES_BY_EXTENSION[extension] ?? (file.type || 'application/octet-stream');
}

/** A title from the file name: without its extension, at most 200 characters. */
export function titleOf(filename: string): string {
  const bare = filename.replace(/\.[A-Za-z0-9]+$/, '').trim();
  return (bare || filename).slice(0, 200);
}

/**
 * Uploads one file. Resolves once the server has indexed it; rejects with an ExecutionError
 * (the backend's code, or `network_error`), or with an AbortError DOMException on `signal`.
 * A file over the limit is refused here: the server would close the connection mid-upload,
 * which a browser reports as a network error rather than as its 413.
 */
export function uploadDocument(file: File, options: UploadOptions): Promise<IngestResult> {
  const { signal, onProgress } = options;
  if (file.size > MAX_DOCUMENT_BYTES) {
    return Promise.reject(
      new ExecutionError('payload_too_large', `The body is limited to ${MAX_DOCUMENT_BYTES} bytes.`, {
        details: { limit: MAX_DOCUMENT_BYTES, size: file.size },
      }),
    );
  }
  const params = new URLSearchParams();
  if (options.documentId) params.set('document_id', options.documentId);
  params.set('title', (options.title ?? titleOf(file.name)).slice(0, 200));
  params.set('filename', file.name.slice(0, 255));

  return new Promise<IngestResult>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('The upload was cancelled.', 'AbortError'));
      return;
    }
    const xhr = options.xhrFactory?.() ?? new XMLHttpRequest();
    const onAbort = (): void => xhr.abort();
    const settle = (): void => signal?.removeEventListener('abort', onAbort);

    xhr.open('POST', `${ingestUrl(options.baseUrl)}?${params.toString()}`);
    xhr.setRequestHeader('Authorization', `Bearer ${options.idToken}`);
    xhr.setRequestHeader('Content-Type', contentTypeOf(file));
    xhr.upload.onprogress = (event) => {
      onProgress?.({ phase: 'sending', fraction: event.lengthComputable ? event.loaded / event.total : null });
    };
    // Every byte is out: from here the server embeds and stores, which has no progress to report.
    xhr.upload.onload = () => onProgress?.({ phase: 'indexing' });
    xhr.onload = () => {
      settle();
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText) as IngestResult);
        } catch (error) {
          reject(
            new ExecutionError(CLIENT_CODES.badResponse, 'The server answered with invalid JSON.', {
              status: xhr.status,
              cause: error,
            }),
          );
        }
        return;
      }
      reject(errorFromBody(xhr.status, xhr.statusText, xhr.responseText, xhr.getResponseHeader('Retry-After')));
    };
    xhr.onerror = () => {
      settle();
      reject(new ExecutionError(CLIENT_CODES.network, 'The upload could not reach the server, or the connection dropped.'));
    };
    xhr.onabort = () => {
      settle();
      reject(new DOMException('The upload was cancelled.', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort);
    xhr.send(file);
  });
}

/** Deletes one of the user's documents and its passages (the rules refuse a client-side delete). */
export async function deleteDocument(documentId: string, options: DeleteOptions): Promise<number> {
  const fetchImpl = options.fetchImpl ?? globalThis.fetch.bind(globalThis);
  let response: Response;
  try {
    response = await fetchImpl(`${ingestUrl(options.baseUrl)}?document_id=${encodeURIComponent(documentId)}`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${options.idToken}` },
      cache: 'no-store',
    });
  } catch (error) {
    throw new ExecutionError(CLIENT_CODES.network, 'Could not reach the server.', { cause: error });
  }
  if (!response.ok) throw await errorFromResponse(response);
  const body: unknown = await response.json().catch(() => null);
  const deleted = (body as { passages_deleted?: unknown } | null)?.passages_deleted;
  return typeof deleted === 'number' ? deleted : 0;
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const millis = (v: unknown): number | null => (v instanceof Timestamp ? v.toMillis() : null);

/**
 * One stored document as the app uses it. `id` is the document id the API and prompts use:
 * the stored `document_id` (the Firestore id is `{document_id}~{uid key}`, scoped per user).
 */
export function toDocument(key: string, d: DocumentData): KbDocument {
  const id = typeof d.document_id === 'string' && d.document_id ? d.document_id : key;
  return {
    id,
    owner_uid: String(d.owner_uid ?? ''),
    title: String(d.title ?? '') || id,
    filename: String(d.filename ?? ''),
    content_type: String(d.content_type ?? ''),
    size: num(d.size),
    status: String(d.status ?? 'indexing'),
    error_message: typeof d.error_message === 'string' ? d.error_message : null,
    generation: num(d.generation),
    passage_count: num(d.passage_count),
    createdAtMs: millis(d.created_at),
    updatedAtMs: millis(d.updated_at),
  };
}

/** Live list of the user's documents, newest first (the rules allow only `owner_uid == me`). */
export function watchDocuments(
  db: Firestore,
  uid: string,
  onChange: (documents: KbDocument[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  return onSnapshot(
    query(collection(db, 'documents'), where('owner_uid', '==', uid)),
    (snap) =>
      onChange(
        snap.docs
          .map((s) => toDocument(s.id, s.data()))
          .sort((a, b) => (b.createdAtMs ?? Infinity) - (a.createdAtMs ?? Infinity)),
      ),
    onError,
  );
}
