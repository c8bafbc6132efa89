import type { ErrorCode } from '../types';

/**
 * The one error type the execution services throw, and the one place that turns an
 * error code into words for a person.
 */

/** Codes the client itself produces (the backend's codes are listed in the README). */
export const CLIENT_CODES = {
  /** fetch rejected (offline, DNS, CORS, connection reset) or the body could not be read. */
  network: 'network_error',
  /** The stream closed without `event: end` or `data: [DONE]`. */
  interrupted: 'stream_interrupted',
  /** The answer was not what the contract promises (wrong content type, bad JSON). */
  badResponse: 'bad_response',
  /** The browser gave no readable body for a streamed answer. */
  streamingUnsupported: 'streaming_unsupported',
} as const;

/** Every code an ExecutionError can carry that has words of its own; a case outside it fails the typecheck. */
type KnownCode = ErrorCode | (typeof CLIENT_CODES)[keyof typeof CLIENT_CODES];

export interface ExecutionErrorOptions {
  status?: number;
  details?: Record<string, unknown> | null;
  retryAfter?: number | null;
  /** True when the error arrived as `event: error` after content had started. */
  midStream?: boolean;
  cause?: unknown;
}

export class ExecutionError extends Error {
  readonly code: string;
  /** HTTP status; 0 for errors the client detected itself; 200 for in-stream errors. */
  readonly status: number;
  readonly details: Record<string, unknown> | null;
  /** Seconds, from the `Retry-After` header (or `details.retry_after`). */
  readonly retryAfter: number | null;
  readonly midStream: boolean;

  constructor(code: string, message: string, options: ExecutionErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ExecutionError';
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details ?? null;
    this.retryAfter = options.retryAfter ?? null;
    this.midStream = options.midStream ?? false;
  }

  /** Network loss of any kind: the request or the body never made it. */
  get isNetwork(): boolean {
    return this.code === CLIENT_CODES.network || this.code === CLIENT_CODES.interrupted;
  }
}

/** Parses `Retry-After` as delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.ceil(Number(trimmed));
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a non-2xx answer (`{"error": {"code", "message", "details"}}`) into an ExecutionError. */
export async function errorFromResponse(response: Response): Promise<ExecutionError> {
  let text = '';
  try {
    text = await response.text();
  } catch {
    // An unreadable body still leaves the status to report.
  }
  return errorFromBody(response.status, response.statusText, text, response.headers.get('Retry-After'));
}

/** The same, from the parts of an answer (an XMLHttpRequest has no Response). */
export function errorFromBody(
  status: number,
  statusText: string,
  text: string,
  retryAfterHeader: string | null,
): ExecutionError {
  let code = `http_${status}`;
  let message = statusText || `HTTP ${status}`;
  let details: Record<string, unknown> | null = null;
  try {
    const body: unknown = JSON.parse(text);
    const error = isRecord(body) ? body.error : undefined;
    if (isRecord(error)) {
      if (typeof error.code === 'string') code = error.code;
      if (typeof error.message === 'string') message = error.message;
      if (isRecord(error.details)) details = error.details;
    }
  } catch {
    // Not JSON (a proxy's HTML page, say): keep the status-derived code.
  }
  let retryAfter = parseRetryAfter(retryAfterHeader);
  if (retryAfter === null && details !== null && typeof details.retry_after === 'number') {
    retryAfter = Math.ceil(details.retry_after);
  }
  return new ExecutionError(code, message, { status, details, retryAfter });
}

function listDetail(details: Record<string, unknown> | null, key: string): string[] {
  const value = details?.[key];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export interface ErrorDescription {
  title: string;
  detail: string;
}

/** ``text`` ending in one full stop (server messages come with or without one). */
function sentence(text: string): string {
  const trimmed = text.trim().replace(/\.+$/, '');
  return trimmed ? `${trimmed}.` : 'Too many requests.';
}

/** What failed: a run of a prompt, or an upload or delete of a knowledge-base document. */
export type ErrorSubject = 'run' | 'document';

/** The upload limit of ingest_document (README, "Knowledge bases"). */
export const MAX_DOCUMENT_BYTES = 5 * 1024 * 1024;

const INVALID_DOCUMENT: Record<string, string> = {
  empty: 'The file has no text to index.',
  binary: 'The file looks binary, not text. Upload plain text, Markdown or a PDF.',
  corrupt_pdf: 'The PDF cannot be read; it may be damaged.',
  encrypted_pdf: 'The PDF is encrypted or has no text layer. Export it again without a password.',
};

/** Words for a code that only document calls return, or that means something else there. */
function describeDocumentError(error: ExecutionError, wait: string): ErrorDescription | null {
  const reason = typeof error.details?.reason === 'string' ? error.details.reason : '';
  switch (error.code as KnownCode) {
    case 'payload_too_large':
      return { title: 'File too large', detail: `Documents are limited to ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB.` };
    case 'unsupported_type':
      return { title: 'Unsupported file type', detail: 'Upload plain text (.txt), Markdown (.md) or PDF.' };
    case 'invalid_document':
      return { title: 'Unreadable document', detail: INVALID_DOCUMENT[reason] ?? error.message };
    case 'document_too_long':
      return { title: 'Document too long', detail: `${error.message}. Split it into smaller documents.` };
    case 'document_not_found':
      return { title: 'Document not found', detail: 'It was deleted, or it is not one of your documents.' };
    case 'too_many_documents':
      return { title: 'Too many documents', detail: `${error.message}.` };
    case 'document_conflict':
      return { title: 'The document changed meanwhile', detail: 'Another upload or a delete touched it. Try again.' };
    case 'budget_exceeded':
      return { title: 'Daily token budget used up', detail: `Indexing spends tokens from your daily budget.${wait}` };
    case 'rate_limited':
      // The embedding provider's limit when embedding failed; else the user's own upload rate.
      return reason === 'embedding_failed'
        ? { title: 'Rate limited', detail: `The embedding provider is throttling requests.${wait}` }
        : { title: 'Rate limited', detail: `${sentence(error.message)}${wait}` };
    case 'upstream_error':
    case 'upstream_unavailable':
    case 'upstream_timeout':
      return { title: 'Indexing failed', detail: `The embedding provider failed. Nothing was kept.${wait}` };
    case 'unavailable':
      return { title: 'Service temporarily unavailable', detail: `Nothing was changed.${wait}` };
    default:
      return null;
  }
}

/** Every error code the UI can show, mapped to words. The single place that does this. */
export function describeError(error: ExecutionError, subject: ErrorSubject = 'run'): ErrorDescription {
  const d = error.details;
  const wait = error.retryAfter !== null ? ` Try again in ${error.retryAfter} s.` : ' Try again shortly.';
  const forDocument = subject === 'document' ? describeDocumentError(error, wait) : null;
  if (forDocument !== null) return forDocument;
  switch (error.code as KnownCode) {
    case 'unauthenticated':
      return { title: 'You are not signed in', detail: 'Your session is missing or expired. Sign in again and retry.' };
    case 'prompt_not_found':
      return { title: 'Prompt not found', detail: 'It was deleted, or it is another user’s private prompt.' };
    case 'version_not_found': {
      const label = d && typeof d.label === 'string' ? d.label : null;
      return {
        title: 'Version not found',
        detail: label !== null ? `The prompt has no label “${label}”.` : error.message,
      };
    }
    case 'missing_variables': {
      const missing = listDetail(d, 'missing');
      return {
        title: 'Missing variables',
        detail: missing.length > 0 ? `Fill in: ${missing.join(', ')}.` : error.message,
      };
    }
    case 'unknown_variables': {
      const unknown = listDetail(d, 'unknown');
      return {
        title: 'Unknown variables',
        detail: unknown.length > 0 ? `The prompt does not use: ${unknown.join(', ')}.` : error.message,
      };
    }
    case 'model_not_allowed': {
      const allowed = listDetail(d, 'allowed');
      return {
        title: 'Model not allowed',
        detail: allowed.length > 0 ? `Choose one of: ${allowed.join(', ')}.` : error.message,
      };
    }
    case 'prompt_too_large':
      return { title: 'Prompt too large', detail: 'The rendered prompt is over the size limit. Shorten the variables or context.' };
    case 'payload_too_large':
      return { title: 'Request too large', detail: 'Shorten the variables or the context.' };
    case 'invalid_request':
      return { title: 'Invalid request', detail: error.message };
    case 'rate_limited':
      return { title: 'Rate limited', detail: `${sentence(error.message)}${wait}` };
    case 'concurrency_limit':
      return { title: 'Too many runs at once', detail: `Wait for a running prompt to finish.${wait}` };
    case 'budget_exceeded':
      return { title: 'Daily token budget used up', detail: `Your daily budget is exhausted.${wait}` };
    case 'out_of_credits':
      return { title: 'Out of credits', detail: 'The OpenRouter account has no credits left.' };
    case 'content_blocked':
      return { title: 'Blocked by moderation', detail: error.message };
    case 'upstream_timeout':
      return { title: 'The model timed out', detail: 'No answer arrived in time. Try again or pick another model.' };
    case 'upstream_unavailable':
      return { title: 'Model provider unavailable', detail: 'The provider could not be reached. Try again shortly.' };
    case 'upstream_disconnected':
      return { title: 'The model stopped mid-answer', detail: 'The provider dropped the stream.' };
    case 'upstream_error':
    case 'upstream_auth':
    case 'upstream_bad_request':
      return { title: 'The model provider failed', detail: error.message };
    case 'unavailable':
      return { title: 'Service temporarily unavailable', detail: 'Nothing was run or saved. Try again shortly.' };
    case 'method_not_allowed':
      return { title: 'Request refused', detail: error.message };
    case 'execution_not_found':
      return { title: 'Run not found', detail: 'It is not one of your runs, or it no longer exists.' };
    case 'cancelled':
      return { title: 'Cancelled', detail: 'The run was cancelled before it finished.' };
    case 'interrupted':
      return {
        title: 'Interrupted',
        detail: 'The server running this answer stopped before it finished; the text is what it had saved.',
      };
    // Conversations (issue 25).
    case 'conversation_not_found':
      return { title: 'Conversation not found', detail: 'It was deleted, or it is not one of your conversations.' };
    case 'turn_out_of_order':
      return { title: 'This turn cannot be continued', detail: error.message };
    case 'conversation_too_long':
      return { title: 'Conversation too long', detail: error.message };
    case 'configuration_error':
    case 'internal':
      return { title: 'Server error', detail: error.message };
    case CLIENT_CODES.network:
      return { title: 'Network connection lost', detail: 'The request could not reach the server, or the connection dropped.' };
    case CLIENT_CODES.interrupted:
      return { title: 'Connection lost mid-answer', detail: 'The stream closed before it finished.' };
    case CLIENT_CODES.badResponse:
      return { title: 'Unexpected answer from the server', detail: error.message };
    case CLIENT_CODES.streamingUnsupported:
      return { title: 'Streaming unsupported', detail: 'This browser cannot read streamed answers.' };
    default:
      return { title: 'Request failed', detail: error.message || error.code };
  }
}
