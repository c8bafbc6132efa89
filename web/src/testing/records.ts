/** Test data: an execution record with every field set to something plain, overridable. */
import type { ExecutionRecord } from '../types';

export function recordOf(id: string, overrides: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return {
    id,
    prompt_id: 'p1',
    model: 'm/a',
    status: 'completed',
    output: '',
    reasoning: '',
    variables: {},
    finish_reason: null,
    error_code: null,
    error_message: null,
    usage: null,
    ttft_ms: null,
    duration_ms: null,
    createdAtMs: null,
    finishedAtMs: null,
    ...overrides,
  };
}
