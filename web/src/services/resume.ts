/**
 * Durable streams in the browser (issue 24, contract C1 in docs/api.md): a run asks to be
 * resumable, and when its connection drops this reconnects with backoff and the last event id,
 * so the text ends exactly as an undisturbed run's. Cancel is a call of its own, since a
 * resumable run outlives its connection.
 */
import { config } from '../config';
import type {
  CancelRequest,
  ExecuteRequest,
  ExecutionResult,
  ResumeRequest,
  StreamEvent,
} from '../types';
import { CLIENT_CODES, ExecutionError } from './errors';
import {
  newCursor,
  readConnection,
  send,
  type ConnectionEnd,
  type RequestOptions,
  type StreamCursor,
  type StreamOptions,
} from './streaming';

export interface ReconnectPolicy {
  /** The waits before each try after a drop; the last one repeats. */
  delaysMs: readonly number[];
  /** Give up when a drop has lasted this long with no event getting through. */
  windowMs: number;
  random: () => number;
}

export const RECONNECT: ReconnectPolicy = {
  delaysMs: [250, 500, 1000, 2000, 4000],
  windowMs: 30_000,
  random: Math.random,
};

/** The wait before try `attempt` (1, 2, ...): the policy's step, spread ±20 %. */
export function backoffDelay(attempt: number, policy: ReconnectPolicy): number {
  const steps = policy.delaysMs;
  const base = steps[Math.min(attempt, steps.length) - 1] ?? 0;
  // Spread, so the clients one outage cut at once do not all come back in the same instant.
  return Math.round(base * (0.8 + 0.4 * policy.random()));
}

/** A resume answered with one of these is tried again; any other refusal (404, 401) ends the run. */
const RETRYABLE_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/** How long a Cancel pressed before `event: start` keeps the connection, to learn the id to cancel. */
const ID_WAIT_MS = 10_000;

export interface ResumableOptions extends StreamOptions {
  /** A fresh token for each reconnect and for the cancel call; `idToken` when absent. */
  getIdToken?: () => Promise<string>;
  reconnect?: Partial<ReconnectPolicy>;
  /** Where `offline` and `online` events come from: `window` in a browser; tests pass their own. */
  network?: EventTarget;
}

/** POST {"cancel": id}: the server stops the run at once. Resolves with the status it reports, or null. */
export async function cancelExecution(executionId: string, options: RequestOptions): Promise<string | null> {
  const body: CancelRequest = { cancel: executionId };
  const baseUrl = options.baseUrl ?? config.functionsBaseUrl;
  const response = await send(`${baseUrl}/execute_prompt_stream`, body, options, 'application/json');
  if (response === null || !response.ok) return null;
  const data: unknown = await response.json().catch(() => null);
  const status = typeof data === 'object' && data !== null ? (data as Record<string, unknown>).status : null;
  return typeof status === 'string' ? status : null;
}

/**
 * Runs a prompt as a resumable stream: `executePromptStream`'s contract, except that a dropped
 * connection (once `event: start` has named the run) is resumed rather than reported, and that
 * aborting also asks the server to cancel the run.
 */
export function streamExecution(request: ExecuteRequest, options: ResumableOptions): Promise<ExecutionResult> {
  const body: ExecuteRequest = { ...request, resumable: true };
  return runResumable(body, false, newCursor(), options);
}

/** Reattaches to a run still streaming (a reload, another tab): every event from the start, then live. */
export function attachExecution(executionId: string, options: ResumableOptions): Promise<ExecutionResult> {
  const body: ResumeRequest = { resume: executionId, last_event_id: 0 };
  return runResumable(body, true, newCursor(executionId), options);
}

/** Waits `ms`, or less: until `signal` aborts or the browser says it is `online` again. */
function sleep(ms: number, signal: AbortSignal, network: EventTarget | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      network?.removeEventListener('online', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
    network?.addEventListener('online', done);
  });
}

/**
 * Reads one connection, which also ends when the browser goes `offline`: a phone changing
 * networks leaves the old TCP connection dead without a word, and waiting for the idle timeout
 * would cost 45 s.
 */
async function readUntilOffline(
  body: ExecuteRequest | ResumeRequest,
  options: StreamOptions,
  cursor: StreamCursor,
  network: EventTarget | undefined,
): Promise<ConnectionEnd> {
  const run = options.signal;
  const link = new AbortController();
  let offline = false;
  const stop = (): void => link.abort();
  const onOffline = (): void => {
    offline = true;
    link.abort();
  };
  run?.addEventListener('abort', stop);
  network?.addEventListener('offline', onOffline);
  try {
    const end = await readConnection(body, { ...options, signal: link.signal }, cursor);
    if (end.kind === 'cancelled' && offline && run?.aborted !== true) {
      const error = new ExecutionError(CLIENT_CODES.network, 'The browser went offline.');
      return { kind: 'dropped', error, resumeNow: false };
    }
    return end;
  } finally {
    run?.removeEventListener('abort', stop);
    network?.removeEventListener('offline', onOffline);
  }
}

/** `resuming`: `firstBody` is a resume (a reattach), so a busy server's refusal of it is one more drop. */
function runResumable(
  firstBody: ExecuteRequest | ResumeRequest,
  resuming: boolean,
  cursor: StreamCursor,
  options: ResumableOptions,
): Promise<ExecutionResult> {
  const policy: ReconnectPolicy = { ...RECONNECT, ...options.reconnect };
  const network = options.network ?? (typeof window === 'undefined' ? undefined : window);
  const user = options.signal;
  const cancelled = (): ExecutionResult => ({ ...cursor.result, cancelled: true });
  if (user?.aborted) return Promise.resolve(cancelled());

  // The connections answer to this controller, not to the caller's signal: a Cancel pressed
  // before `event: start` keeps the connection until the start names the run to cancel.
  const connection = new AbortController();
  const token = (): Promise<string> => options.getIdToken?.() ?? Promise.resolve(options.idToken);
  let cancelSent = false;
  const sendCancel = (): void => {
    const id = cursor.result.executionId;
    connection.abort();
    if (cancelSent || id === null) return;
    cancelSent = true;
    void token()
      .then((idToken) => cancelExecution(id, { ...options, idToken, signal: undefined }))
      .catch(() => undefined); // Offline: the server cancels it anyway once nobody is attached for its grace period.
  };

  let resolveCancelled!: (result: ExecutionResult) => void;
  const onCancel = new Promise<ExecutionResult>((resolve) => {
    resolveCancelled = resolve;
  });
  let idWait: ReturnType<typeof setTimeout> | undefined;
  const onAbort = (): void => {
    if (cursor.result.executionId !== null) sendCancel();
    else idWait = setTimeout(() => connection.abort(), ID_WAIT_MS);
    resolveCancelled(cancelled());
  };
  user?.addEventListener('abort', onAbort, { once: true });

  const onEvent = (event: StreamEvent): void => {
    if (user?.aborted) {
      if (event.type === 'start') sendCancel();
      return;
    }
    options.onEvent?.(event);
  };
  const connectionOptions = (idToken: string): StreamOptions => ({
    ...options,
    idToken,
    signal: connection.signal,
    onEvent,
  });

  const loop = async (): Promise<ExecutionResult> => {
    let body: ExecuteRequest | ResumeRequest = firstBody;
    let idToken = options.idToken;
    let attempt = 0;
    let dropStarted = 0;
    for (;;) {
      const before = cursor.lastEventId;
      let error: ExecutionError;
      let resumeNow = false;
      try {
        const end = await readUntilOffline(body, connectionOptions(idToken), cursor, network);
        if (end.kind === 'finished') return cursor.result;
        if (end.kind === 'cancelled') return cancelled();
        ({ error, resumeNow } = end);
      } catch (thrown) {
        // A refused run, an in-stream error, a 404 on resume: the end of the run. A busy or
        // draining server answering a resume is one more drop.
        const retryable = thrown instanceof ExecutionError && RETRYABLE_STATUSES.has(thrown.status);
        if (!(retryable && resuming)) throw thrown;
        error = thrown;
      }
      const executionId = cursor.result.executionId;
      // Nothing named the run yet: there is nothing to resume, and sending the run again could run it twice.
      if (executionId === null) throw error;
      if (cursor.lastEventId > before || attempt === 0) {
        attempt = 0;
        dropStarted = Date.now();
      }
      attempt += 1;
      // `event: resume` is the server handing the run over: come back at once.
      const delayMs = resumeNow && attempt === 1 ? 0 : backoffDelay(attempt, policy);
      if (Date.now() - dropStarted + delayMs > policy.windowMs) throw error;
      onEvent({ type: 'reconnecting', attempt, delayMs });
      await sleep(delayMs, connection.signal, network);
      if (connection.signal.aborted) return cancelled();
      idToken = await token().catch(() => idToken);
      body = { resume: executionId, last_event_id: cursor.lastEventId };
      resuming = true;
    }
  };

  const running = loop().finally(() => {
    clearTimeout(idWait);
    user?.removeEventListener('abort', onAbort);
  });
  // After a Cancel the caller already has its answer; what the connection does next is not news.
  running.catch(() => undefined);
  return Promise.race([running, onCancel]);
}
