import { ExecutionError } from '../services/errors';
import type { Attempt, ExecutionRecord, Source, Usage } from '../types';

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
  /** The models to try, primary first (`event: start`); empty until then. */
  models: string[];
  /** Every model tried and what became of it (`event: end` or `event: error`). */
  attempts: Attempt[];
  /** The connection dropped and the client is resuming the run (issue 24). */
  reconnecting: boolean;
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
  models: [],
  attempts: [],
  reconnecting: false,
};

export function isBusy(phase: ExecutionPhase): boolean {
  return phase === 'connecting' || phase === 'streaming';
}

const PHASE_OF_STATUS: Record<string, ExecutionPhase> = {
  streaming: 'streaming',
  completed: 'completed',
  cancelled: 'cancelled',
  error: 'error',
  // Its instance died mid-answer: what it had saved is kept, marked partial, with the reason.
  interrupted: 'error',
};

/** A stored run as a panel shows it: a reopened comparison's columns are drawn like live ones. */
export function stateOfRecord(record: ExecutionRecord): ExecutionState {
  const failed = record.status === 'error' || record.status === 'interrupted';
  const code = record.error_code ?? (record.status === 'interrupted' ? 'interrupted' : 'internal');
  return {
    ...IDLE_STATE,
    phase: PHASE_OF_STATUS[record.status] ?? 'completed',
    content: record.output,
    reasoning: record.reasoning,
    // A cancelled run may carry a code too; only a failed or interrupted one shows an error.
    error: failed
      ? new ExecutionError(code, record.error_message ?? '', {
          // As a live run's error holds them, so the banner can name every model tried.
          details: record.attempts && record.attempts.length > 0 ? { attempts: record.attempts } : null,
        })
      : null,
    usage: record.usage,
    model: record.model,
    executionId: record.id,
    finishReason: record.finish_reason,
    sources: record.sources ?? undefined,
    attempts: record.attempts ?? [],
  };
}
