import type { ExecutionState } from '../hooks/executionState';

export function formatCost(cost: number | undefined): string {
  if (cost === undefined || cost === null) return '—';
  if (cost === 0) return '$0';
  return cost < 0.01 ? `$${cost.toPrecision(2)}` : `$${cost.toFixed(4)}`;
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '—';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function UsageSummary({ state }: { state: ExecutionState }) {
  const u = state.usage;
  return (
    <dl className="usage" data-testid="usage-summary">
      <div>
        <dt>Model</dt>
        <dd data-testid="usage-model">{state.model ?? '—'}</dd>
      </div>
      <div>
        <dt>Tokens</dt>
        <dd data-testid="usage-tokens">
          {u ? `${u.prompt_tokens ?? '?'} in · ${u.completion_tokens ?? '?'} out · ${u.total_tokens ?? '?'} total` : '—'}
        </dd>
      </div>
      <div>
        <dt>Cost</dt>
        <dd data-testid="usage-cost">{formatCost(u?.cost)}</dd>
      </div>
      <div>
        <dt>First token</dt>
        <dd data-testid="usage-ttft">{formatMs(state.ttftMs)}</dd>
      </div>
      <div>
        <dt>Total</dt>
        <dd data-testid="usage-total-time">{formatMs(state.totalMs)}</dd>
      </div>
    </dl>
  );
}
