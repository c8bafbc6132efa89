import type { ExecutionState } from '../hooks/executionState';
import type { ExecutionRecord, Usage } from '../types';

export function formatCost(cost: number | undefined | null): string {
  if (cost === undefined || cost === null) return '—';
  if (cost === 0) return '$0';
  return cost < 0.01 ? `$${cost.toPrecision(2)}` : `$${cost.toFixed(4)}`;
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/**
 * The usage's split; with no usage (a cancelled run, most errors), what the server debited for
 * the run all the same (its estimate, docs/schema.md `tokens_debited`).
 */
export function formatTokens(u: Usage | null | undefined, debited: number | null = null): string {
  if (u) return `${u.prompt_tokens ?? '?'} in · ${u.completion_tokens ?? '?'} out · ${u.total_tokens ?? '?'} total`;
  return debited !== null ? `${debited.toLocaleString('en-US')} debited (estimated)` : '—';
}

/** One figure for a record's tokens: the usage's total, else what was debited; null when neither. */
export function recordTokens(record: ExecutionRecord): number | null {
  return record.usage?.total_tokens ?? record.tokens_debited ?? null;
}

/** The record's debit once it is final (a streaming record's is not yet set). */
export function debitOf(record: ExecutionRecord | null | undefined): number | null {
  return record && record.status !== 'streaming' ? (record.tokens_debited ?? null) : null;
}

/**
 * The one definition of the timings the app shows: as the server measured them and stored
 * them in the run's record (`ttft_ms`: from the server opening the run to the model's first
 * token; `duration_ms`: to the end). The live panel waits for the record to be final, so it
 * shows the same figures as the history.
 */
export const TTFT_LABEL = 'First token (server)';
export const DURATION_LABEL = 'Duration (server)';
export const TIMING_HELP =
  'Measured by the server: from opening the run to the first token from the model, and to the end.';

function timing(record: ExecutionRecord | null, key: 'ttft_ms' | 'duration_ms'): string {
  if (record === null || record.status === 'streaming') return '…';
  return formatMs(record[key]);
}

export function Timings({ record }: { record: ExecutionRecord | null }) {
  return (
    <>
      <div title={TIMING_HELP}>
        <dt>{TTFT_LABEL}</dt>
        <dd data-testid="usage-ttft">{timing(record, 'ttft_ms')}</dd>
      </div>
      <div title={TIMING_HELP}>
        <dt>{DURATION_LABEL}</dt>
        <dd data-testid="usage-duration">{timing(record, 'duration_ms')}</dd>
      </div>
    </>
  );
}

/** Whether a panel has figures to show: a finished run, one with usage, or one the server debited. */
export function hasUsage(state: ExecutionState, record: ExecutionRecord | null): boolean {
  return state.phase === 'completed' || state.usage !== null || debitOf(record) !== null;
}

export function UsageSummary({ state, record }: { state: ExecutionState; record: ExecutionRecord | null }) {
  const u = state.usage;
  return (
    <dl className="usage" data-testid="usage-summary">
      <div>
        <dt>Model</dt>
        <dd data-testid="usage-model">{state.model ?? '—'}</dd>
      </div>
      <div>
        <dt>Tokens</dt>
        <dd data-testid="usage-tokens">{formatTokens(u, debitOf(record))}</dd>
      </div>
      <div>
        <dt>Cost</dt>
        <dd data-testid="usage-cost">{formatCost(u?.cost)}</dd>
      </div>
      <Timings record={record} />
    </dl>
  );
}
