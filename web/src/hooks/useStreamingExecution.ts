import { useCallback, useEffect, useReducer, useRef } from 'react';
import { CLIENT_CODES, ExecutionError } from '../services/errors';
import { attachExecution, streamExecution, type ResumableOptions } from '../services/resume';
import { executePrompt } from '../services/streaming';
import type { ExecuteRequest, ExecutionResult, StreamEvent } from '../types';
import { IDLE_STATE, isBusy, type ExecutionState } from './executionState';

export interface ExecuteOptions {
  /** The Firebase ID token, or a getter; a getter runs after the run shows as started. */
  idToken: string | (() => Promise<string>);
  /** Overrides VITE_FUNCTIONS_BASE_URL (tests). */
  baseUrl?: string;
  /** Overrides the reconnect backoff (tests). */
  reconnect?: ResumableOptions['reconnect'];
}

type Action =
  | { type: 'begin'; executionId: string | null }
  | { type: 'events'; events: StreamEvent[] }
  | { type: 'fallback' }
  | { type: 'finish'; result: ExecutionResult }
  | { type: 'fail'; error: ExecutionError };

function applyEvent(state: ExecutionState, event: StreamEvent): ExecutionState {
  switch (event.type) {
    case 'start':
      return {
        ...state,
        executionId: event.executionId,
        model: event.model,
        models: event.models,
        reconnecting: false,
      };
    case 'sources':
      return { ...state, sources: event.sources };
    case 'content': {
      const hasToken = event.content !== '' || (event.reasoning ?? '') !== '';
      return {
        ...state,
        reconnecting: false,
        phase: hasToken ? 'streaming' : state.phase,
        content: state.content + event.content,
        reasoning: state.reasoning + (event.reasoning ?? ''),
        finishReason: event.finishReason ?? state.finishReason,
      };
    }
    case 'end':
      return {
        ...state,
        executionId: event.executionId || state.executionId,
        model: event.model || state.model,
        usage: event.usage,
        finishReason: event.finishReason ?? state.finishReason,
        attempts: event.attempts,
      };
    case 'error':
      // The error itself arrives through 'fail' once the stream has closed; its attempts now.
      return { ...state, attempts: event.attempts };
    case 'reconnecting':
      return { ...state, reconnecting: true };
    default:
      // [DONE] arrives through 'finish'.
      return state;
  }
}

function reducer(state: ExecutionState, action: Action): ExecutionState {
  switch (action.type) {
    case 'begin':
      return { ...IDLE_STATE, phase: 'connecting', executionId: action.executionId };
    case 'events':
      return action.events.reduce(applyEvent, state);
    case 'fallback':
      return { ...state, usedFallback: true };
    case 'finish': {
      const { result } = action;
      return {
        ...state,
        reconnecting: false,
        phase: result.cancelled ? 'cancelled' : 'completed',
        // The fallback path has no events, so take the text from the result when we have none.
        content: state.content || result.content,
        reasoning: state.reasoning || result.reasoning,
        usage: result.usage ?? state.usage,
        model: result.model ?? state.model,
        executionId: result.executionId ?? state.executionId,
        finishReason: result.finishReason ?? state.finishReason,
        sources: state.sources ?? result.sources,
        attempts: state.attempts.length > 0 ? state.attempts : result.attempts,
      };
    }
    case 'fail':
      // A run resumed (or reattached) after it was cancelled, here or in another tab, ends so.
      if (action.error.code === 'cancelled') return { ...state, phase: 'cancelled', reconnecting: false };
      return { ...state, phase: 'error', error: action.error, reconnecting: false };
  }
}

// requestAnimationFrame where there is one (a browser); a frame's worth of timeout elsewhere.
const nextFrame = (fn: () => void): number =>
  typeof requestAnimationFrame === 'function' ? requestAnimationFrame(fn) : (setTimeout(fn, 16) as unknown as number);
const cancelFrame = (id: number): void =>
  typeof cancelAnimationFrame === 'function' ? cancelAnimationFrame(id) : clearTimeout(id);

/** A token we cannot get is sent empty: the server's 401 then says what a person must do. */
export async function resolveToken(token: ExecuteOptions['idToken']): Promise<string> {
  if (typeof token === 'string') return token;
  try {
    return await token();
  } catch {
    return '';
  }
}

function asExecutionError(error: unknown): ExecutionError {
  if (error instanceof ExecutionError) return error;
  return new ExecutionError('internal', error instanceof Error ? error.message : String(error), { cause: error });
}

export interface StreamingExecution extends ExecutionState {
  isStreaming: boolean;
  execute: (request: ExecuteRequest, options: ExecuteOptions) => Promise<void>;
  /** Shows a run already streaming (after a reload, or from another tab) from its first event. */
  attach: (executionId: string, options: ExecuteOptions) => Promise<void>;
  cancel: () => void;
}

/** How a run starts: a new run, or a reattach to one that is streaming already. */
type Start =
  | { kind: 'run'; request: ExecuteRequest }
  | { kind: 'attach'; executionId: string };

/**
 * Runs a prompt through the streaming endpoint, as a resumable run, and exposes its growing
 * text; a dropped connection is resumed (`reconnecting` meanwhile). A new `execute` cancels the
 * run before it; cancelling, or unmounting, aborts the stream and asks the server to cancel the
 * run. If the browser hands back no readable body, it reruns on the non-streaming endpoint.
 */
export function useStreamingExecution(): StreamingExecution {
  const [state, dispatch] = useReducer(reducer, IDLE_STATE);
  const controllerRef = useRef<AbortController | null>(null);

  const cancel = useCallback(() => {
    controllerRef.current?.abort();
  }, []);

  useEffect(() => () => controllerRef.current?.abort(), []);

  const run = useCallback(async (start: Start, options: ExecuteOptions) => {
    controllerRef.current?.abort();
    const controller = new AbortController();
    controllerRef.current = controller;
    // Events of a run that was replaced must not touch the new run's state.
    const current = (): boolean => controllerRef.current === controller;

    const pending: StreamEvent[] = [];
    let scheduled: number | null = null;
    const flush = (): void => {
      if (scheduled !== null) cancelFrame(scheduled);
      scheduled = null;
      if (pending.length > 0 && current()) dispatch({ type: 'events', events: pending.splice(0) });
    };
    const scheduleFlush = (): void => {
      if (scheduled === null) scheduled = nextFrame(flush);
    };

    dispatch({ type: 'begin', executionId: start.kind === 'attach' ? start.executionId : null });
    try {
      const idToken = await resolveToken(options.idToken);
      const streamOptions: ResumableOptions = {
        idToken,
        getIdToken: () => resolveToken(options.idToken),
        baseUrl: options.baseUrl,
        reconnect: options.reconnect,
        signal: controller.signal,
        onEvent: (event) => {
          if (!current()) return;
          pending.push(event);
          // A burst of chunks is one render: React draws at most once a frame, however fast
          // the model streams (see docs/adr/0100-web-markdown-rendering.md).
          if (event.type === 'content') scheduleFlush();
          else flush();
        },
      };
      let result: ExecutionResult;
      try {
        result =
          start.kind === 'run'
            ? await streamExecution(start.request, streamOptions)
            : await attachExecution(start.executionId, streamOptions);
      } catch (error) {
        const unsupported = error instanceof ExecutionError && error.code === CLIENT_CODES.streamingUnsupported;
        if (!(unsupported && start.kind === 'run')) throw error;
        if (current()) dispatch({ type: 'fallback' });
        result = await executePrompt(start.request, {
          idToken,
          baseUrl: options.baseUrl,
          signal: controller.signal,
        });
      }
      flush();
      if (current()) dispatch({ type: 'finish', result });
    } catch (error) {
      flush();
      if (current()) dispatch({ type: 'fail', error: asExecutionError(error) });
    } finally {
      if (current()) controllerRef.current = null;
    }
  }, []);

  const execute = useCallback(
    (request: ExecuteRequest, options: ExecuteOptions) => run({ kind: 'run', request }, options),
    [run],
  );
  const attach = useCallback(
    (executionId: string, options: ExecuteOptions) => run({ kind: 'attach', executionId }, options),
    [run],
  );

  return { ...state, isStreaming: isBusy(state.phase), execute, attach, cancel };
}
