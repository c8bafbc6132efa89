import type { ExecutionError } from '../services/errors';
import type { Source, Usage } from '../types';

export type ExecutionPhase = 'idle' | 'connecting' | 'streaming' | 'completed' | 'cancelled' | 'error';

/** What a panel shows about one run; both hooks produce this shape. */
export interface ExecutionState {
  phase: ExecutionPhase;
  content: string;
  reasoning: string;
  error: ExecutionError | null;
  usage: Usage | null;
  model: string | null;
  executionId: string | null;
  finishReason: string | null;
  /** True when a streaming run fell back to the non-streaming endpoint. */
  usedFallback: boolean;
  /** The passages the answer may cite (`event: sources`); absent when the run named no documents. */
  sources?: Source[];
}

export const IDLE_STATE: ExecutionState = {
  phase: 'idle',
  content: '',
  reasoning: '',
  error: null,
  usage: null,
  model: null,
  executionId: null,
  finishReason: null,
  usedFallback: false,
};

export function isBusy(phase: ExecutionPhase): boolean {
  return phase === 'connecting' || phase === 'streaming';
}
