import { useCallback, useEffect, useRef, useState } from 'react';
import { ExecutionError } from '../services/errors';
import { executePrompt } from '../services/streaming';
import type { ExecuteRequest } from '../types';
import { IDLE_STATE, isBusy, type ExecutionState } from './executionState';
import { resolveToken, type ExecuteOptions } from './useStreamingExecution';

export interface StandardExecution extends ExecutionState {
  isRunning: boolean;
  execute: (request: ExecuteRequest, options: ExecuteOptions) => Promise<void>;
  cancel: () => void;
}

/** Runs a prompt through the non-streaming endpoint: nothing, then the whole answer. */
export function useStandardExecution(): StandardExecution {
  const [state, setState] = useState<ExecutionState>(IDLE_STATE);
  const controllerRef = useRef<AbortController | null>(null);

  const cancel = useCallback(() => controllerRef.current?.abort(), []);
  useEffect(() => () => controllerRef.current?.abort(), []);

  const execute = useCallback(async (request: ExecuteRequest, options: ExecuteOptions) => {
    controllerRef.current?.abort();
    const controller = new AbortController();
    controllerRef.current = controller;
    setState({ ...IDLE_STATE, phase: 'connecting' });
    try {
      const idToken = await resolveToken(options.idToken);
      const result = await executePrompt(request, {
        idToken,
        baseUrl: options.baseUrl,
        signal: controller.signal,
      });
      if (controllerRef.current !== controller) return;
      setState({
        ...IDLE_STATE,
        phase: result.cancelled ? 'cancelled' : 'completed',
        content: result.content,
        reasoning: result.reasoning,
        usage: result.usage,
        model: result.model,
        executionId: result.executionId,
        finishReason: result.finishReason,
        sources: result.sources,
        attempts: result.attempts,
      });
    } catch (error) {
      if (controllerRef.current !== controller) return;
      const err =
        error instanceof ExecutionError ? error : new ExecutionError('internal', String(error), { cause: error });
      setState((s) => ({ ...s, phase: 'error', error: err }));
    } finally {
      if (controllerRef.current === controller) controllerRef.current = null;
    }
  }, []);

  return { ...state, isRunning: isBusy(state.phase), execute, cancel };
}
