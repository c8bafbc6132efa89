/**
 * Clients for POST /execute_prompt_stream (SSE over fetch) and POST /execute_prompt (JSON).
 *
 * Not EventSource: it cannot POST, send an Authorization header or be aborted per request.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { config } from '../config';
import type { ExecuteRequest, ExecutePromptResponse, ExecutionResult, StreamEvent, Usage } from '../types';
import { CLIENT_CODES, ExecutionError, errorFromResponse } from './errors';
import { attemptsOf } from './attempts';
import { sourcesOf } from './sources';

export interface RequestOptions {
  idToken: string;
  signal?: AbortSignal;
  /** Defaults to VITE_FUNCTIONS_BASE_URL. */
  baseUrl?: string;
  /** For tests; defaults to the global fetch. */
  fetchImpl?: typeof fetch;
}

export interface StreamOptions extends RequestOptions {
  onEvent?: (event: StreamEvent) => void;
  /**
   * No byte for this long means the connection is gone. The backend pings every 15 s while the
   * model is silent, so three missed pings is a dead link rather than a slow model.
   */
  idleTimeoutMs?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/** Whether this browser can read a streamed response body incrementally. */
export function supportsStreamingBody(): boolean {
  return (
    typeof ReadableStream !== 'undefined' &&
    typeof TextDecoder !== 'undefined' &&
    typeof Response !== 'undefined' &&
    'body' in Response.prototype
  );
}

function emptyResult(): ExecutionResult {
  return {
    executionId: null,
    model: null,
    content: '',
    reasoning: '',
    finishReason: null,
    usage: null,
    generationId: null,
    attempts: [],
    cancelled: false,
  };
}

function isAbort(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (error instanceof DOMException && error.name === 'AbortError');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function usageOf(value: unknown): Usage | null {
  return isRecord(value) ? (value as Usage) : null;
}

function post(url: string, body: unknown, options: RequestOptions, accept: string): Promise<Response> {
  const fetchImpl = options.fetchImpl ?? globalThis.fetch.bind(globalThis);
  return fetchImpl(url, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${options.idToken}`,
      'Content-Type': 'application/json',
      Accept: accept,
    },
    body: JSON.stringify(body),
    signal: options.signal,
    cache: 'no-store',
  });
}

/** POSTs `body` as JSON; null when `signal` aborted it; a network failure as an ExecutionError. */
export async function send(url: string, body: unknown, options: RequestOptions, accept: string): Promise<Response | null> {
  try {
    return await post(url, body, options, accept);
  } catch (error) {
    if (isAbort(error, options.signal)) return null;
    // fetch rejects with a TypeError for every network-level failure (offline, refused, CORS).
    throw new ExecutionError(CLIENT_CODES.network, 'Could not reach the server.', { cause: error });
  }
}

/** How one connection ended, when it did not throw. */
export type ConnectionEnd =
  | { kind: 'finished' }
  | { kind: 'cancelled' }
  /** The body ended early, the network failed or went silent, or the server said `event: resume`. */
  | { kind: 'dropped'; error: ExecutionError; resumeNow: boolean };

/** What a run has received so far; one cursor spans every connection of a resumed run. */
export interface StreamCursor {
  result: ExecutionResult;
  /** The largest event id handed on (0: none); a resume asks for the events after it. */
  lastEventId: number;
}

export function newCursor(executionId: string | null = null): StreamCursor {
  return { result: { ...emptyResult(), executionId }, lastEventId: 0 };
}

/** An SSE `id:` as the backend writes it (1, 2, ...); anything else is no id. */
function eventId(id: string | undefined): number | null {
  if (id === undefined || !/^\d{1,15}$/.test(id)) return null;
  return Number(id);
}

/**
 * One POST to /execute_prompt_stream with `body` (a run, or a resume): hands each new event to
 * `onEvent`, skipping events whose id the cursor has passed (a resume may replay some), and says
 * how the connection ended. Throws an ExecutionError for a non-2xx answer (read from its body),
 * an in-stream `event: error`, a protocol fault, or a body the browser cannot stream.
 */
export async function readConnection(body: unknown, options: StreamOptions, cursor: StreamCursor): Promise<ConnectionEnd> {
  const { signal, onEvent } = options;
  const result = cursor.result;
  if (signal?.aborted) return { kind: 'cancelled' };

  const baseUrl = options.baseUrl ?? config.functionsBaseUrl;
  let response: Response | null;
  try {
    response = await send(`${baseUrl}/execute_prompt_stream`, body, options, 'text/event-stream');
  } catch (error) {
    return { kind: 'dropped', error: error as ExecutionError, resumeNow: false };
  }
  if (response === null) return { kind: 'cancelled' };
  if (!response.ok) throw await errorFromResponse(response);

  const contentType = response.headers.get('Content-Type') ?? '';
  if (!contentType.toLowerCase().startsWith('text/event-stream')) {
    await response.body?.cancel().catch(() => undefined);
    throw new ExecutionError(CLIENT_CODES.badResponse, `Expected an event stream, got "${contentType}".`, {
      status: response.status,
    });
  }
  const stream = response.body;
  if (stream === null || typeof stream.getReader !== 'function') {
    throw new ExecutionError(CLIENT_CODES.streamingUnsupported, 'The response body cannot be read as a stream.');
  }
  const status = response.status;

  let sawDone = false;
  let sawEnd = false;
  let resumeNow = false;
  let streamError: ExecutionError | null = null;
  let protocolError: ExecutionError | null = null;

  const emit = (event: StreamEvent): void => {
    onEvent?.(event);
  };

  const handle = (message: EventSourceMessage): void => {
    if (sawDone || resumeNow) return;
    if (message.data === '[DONE]') {
      sawDone = true;
      emit({ type: 'done' });
      return;
    }
    const id = eventId(message.id);
    // Already handed on before the connection dropped: the resume replays from the id we sent.
    if (id !== null && id <= cursor.lastEventId) return;
    let data: unknown;
    try {
      data = JSON.parse(message.data);
    } catch {
      protocolError = new ExecutionError(CLIENT_CODES.badResponse, 'The server sent an event that is not JSON.');
      return;
    }
    if (message.event === 'sources') {
      // The one event whose data is a list: the passages, before the first content event.
      const sources = sourcesOf(data);
      if (sources === null) {
        protocolError = new ExecutionError(CLIENT_CODES.badResponse, 'The server sent sources that are not a list.');
        return;
      }
      result.sources = sources;
      emit({ type: 'sources', sources });
      return;
    }
    if (!isRecord(data)) return;
    if (id !== null) cursor.lastEventId = id;
    switch (message.event ?? 'message') {
      case 'start':
        result.executionId = str(data.execution_id);
        result.model = str(data.model);
        emit({
          type: 'start',
          executionId: result.executionId ?? '',
          promptId: str(data.prompt_id) ?? '',
          model: result.model ?? '',
          comparisonId: str(data.comparison_id),
          models: Array.isArray(data.models) ? data.models.filter((m): m is string => typeof m === 'string') : [],
          resumable: data.resumable === true,
          resumed: data.resumed === true,
        });
        break;
      case 'message': {
        const content = str(data.content) ?? '';
        const reasoning = str(data.reasoning) ?? undefined;
        const finishReason = str(data.finish_reason);
        result.content += content;
        if (reasoning !== undefined) result.reasoning += reasoning;
        if (finishReason !== null) result.finishReason = finishReason;
        emit({ type: 'content', id: message.id, content, reasoning, finishReason });
        break;
      }
      case 'end':
        sawEnd = true;
        result.executionId = str(data.execution_id) ?? result.executionId;
        result.model = str(data.model) ?? result.model;
        result.finishReason = str(data.finish_reason) ?? result.finishReason;
        result.usage = usageOf(data.usage);
        result.generationId = str(data.generation_id);
        result.attempts = attemptsOf(data.attempts);
        emit({
          type: 'end',
          executionId: result.executionId ?? '',
          model: result.model ?? '',
          finishReason: result.finishReason,
          usage: result.usage,
          generationId: result.generationId,
          attempts: result.attempts,
        });
        break;
      case 'error': {
        const code = str(data.code) ?? 'upstream_error';
        const text = str(data.message) ?? 'The stream failed.';
        const attempts = attemptsOf(data.attempts);
        streamError = new ExecutionError(code, text, {
          status,
          midStream: true,
          ...(attempts.length > 0 && { details: { attempts } }),
        });
        emit({ type: 'error', code, message: text, attempts });
        break;
      }
      case 'resume':
        // The instance is shutting down: the body ends without [DONE], and the run goes on elsewhere.
        resumeNow = true;
        break;
      default:
        // Unknown event types are for newer clients; skipping them keeps old ones working.
        break;
    }
  };

  // Heartbeat comments (`: ping`) need no handler: the parser drops them.
  const parser = createParser({ onEvent: handle });
  const reader = stream.getReader();
  const decoder = new TextDecoder('utf-8');

  let lastText = '';
  let idleExpired = false;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const armIdleTimer = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      idleExpired = true;
      reader.cancel().catch(() => undefined);
    }, idleTimeoutMs);
  };
  // A body handed over by something other than the browser's fetch (a test, a polyfill) does not
  // see the signal, so cancel the reader ourselves; with a real fetch this is a harmless repeat.
  const onAbort = (): void => {
    reader.cancel().catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort);

  try {
    armIdleTimer();
    while (!sawDone && !resumeNow) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (isAbort(error, signal)) return { kind: 'cancelled' };
        const lost = new ExecutionError(CLIENT_CODES.network, 'The connection dropped while reading the answer.', {
          cause: error,
        });
        return { kind: 'dropped', error: lost, resumeNow: false };
      }
      if (signal?.aborted) return { kind: 'cancelled' };
      if (chunk.done) break;
      armIdleTimer();
      const text = decoder.decode(chunk.value, { stream: true });
      if (text !== '') lastText = text;
      parser.feed(text);
      if (protocolError !== null) throw protocolError;
    }
    if (!sawDone && !resumeNow) {
      let tail = decoder.decode();
      // A stream that uses bare CR line ends leaves its last CR pending (a LF might still
      // follow); at the end of the stream none will, so settle it. Truncated events stay
      // incomplete and are dropped, as the spec says.
      if ((tail === '' ? lastText : tail).endsWith('\r')) tail += '\n';
      parser.feed(tail);
      if (protocolError !== null) throw protocolError;
    }
  } finally {
    clearTimeout(idleTimer);
    signal?.removeEventListener('abort', onAbort);
    // Releases the connection when we stop early; a no-op on a finished stream.
    reader.cancel().catch(() => undefined);
  }

  if (streamError !== null) throw streamError;
  if (sawDone || sawEnd) return { kind: 'finished' };
  if (resumeNow) {
    const moved = new ExecutionError(CLIENT_CODES.interrupted, 'The server moved the stream elsewhere.');
    return { kind: 'dropped', error: moved, resumeNow: true };
  }
  const message = idleExpired
    ? `No data for ${Math.round(idleTimeoutMs / 1000)} s; the connection looks dead.`
    : 'The stream closed before the answer finished.';
  return { kind: 'dropped', error: new ExecutionError(CLIENT_CODES.interrupted, message), resumeNow: false };
}

/**
 * Runs a prompt and streams its output over one connection. `onEvent` sees every event in order.
 *
 * Resolves with the whole result on `event: end` / `data: [DONE]`, or with `cancelled: true`
 * (and the partial text) once `signal` aborts. Rejects with an ExecutionError for a non-2xx
 * answer, an in-stream `event: error` (`midStream: true`), a network failure, or a stream that
 * closes before it finished. `streamExecution` (services/resume.ts) is the one that reconnects.
 */
export async function executePromptStream(request: ExecuteRequest, options: StreamOptions): Promise<ExecutionResult> {
  const cursor = newCursor();
  const end = await readConnection(request, options, cursor);
  if (end.kind === 'dropped') throw end.error;
  return end.kind === 'cancelled' ? { ...cursor.result, cancelled: true } : cursor.result;
}

/** Non-streaming run: the whole answer in one JSON body. Resolves `cancelled: true` on abort. */
export async function executePrompt(
  request: ExecuteRequest,
  options: RequestOptions,
): Promise<ExecutionResult & { durationMs: number | null }> {
  const cancelled = { ...emptyResult(), cancelled: true, durationMs: null };
  if (options.signal?.aborted) return cancelled;
  const baseUrl = options.baseUrl ?? config.functionsBaseUrl;
  const response = await send(`${baseUrl}/execute_prompt`, request, options, 'application/json');
  if (response === null) return cancelled;
  if (!response.ok) throw await errorFromResponse(response);

  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    if (isAbort(error, options.signal)) return cancelled;
    throw new ExecutionError(CLIENT_CODES.network, 'The connection dropped while reading the answer.', {
      cause: error,
    });
  }
  let body: Partial<ExecutePromptResponse>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isRecord(parsed)) throw new TypeError('not an object');
    body = parsed as Partial<ExecutePromptResponse>;
  } catch (error) {
    throw new ExecutionError(CLIENT_CODES.badResponse, 'The server answered with invalid JSON.', {
      status: response.status,
      cause: error,
    });
  }
  const sources = sourcesOf(body.sources);
  return {
    executionId: str(body.execution_id),
    model: str(body.model),
    content: str(body.content) ?? '',
    reasoning: str(body.reasoning) ?? '',
    finishReason: str(body.finish_reason),
    usage: usageOf(body.usage),
    generationId: str(body.generation_id),
    ...(sources !== null && { sources }),
    attempts: attemptsOf(body.attempts),
    cancelled: false,
    durationMs: typeof body.duration_ms === 'number' ? body.duration_ms : null,
  };
}
