import { useState, type ReactNode } from 'react';
import { RouteLink } from './RouteLink';
import { isBusy, stateOfRecord, type ExecutionState } from '../hooks/executionState';
import type { ComparisonRun } from '../hooks/useComparison';
import { allFailed, attemptsOf, passedOver } from '../services/attempts';
import { orderColumns, tokensPerSecond } from '../services/comparisons';
import type { Comparison, ExecutionRecord } from '../types';
import { ErrorBanner } from './ErrorBanner';
import { OutputText, PhaseBadge, ReconnectingNotice, Spinner, WAITING_LABEL } from './ExecutionOutput';
import { debitOf, formatCost, formatMs, formatTokens, TIMING_HELP, TTFT_LABEL } from './UsageSummary';

/** Marks a column's answer as the winner: its model and its run. */
export type OnWinner = (comparisonId: string, model: string, executionId: string) => Promise<void>;

export interface ColumnData {
  key: string;
  /** The model the column asked for. */
  model: string;
  state: ExecutionState;
  /** The column's run record, once the history listener has it (the server's timings). */
  record: ExecutionRecord | null;
  /** The prompt version the column asked for (a comparison of versions); the record's says which ran. */
  version?: number;
}

function formatRate(rate: number | null, record: ExecutionRecord | null): string {
  if (record === null || record.status === 'streaming') return '…';
  return rate === null ? '—' : `${rate < 10 ? rate.toFixed(1) : Math.round(rate)} tok/s`;
}

/** Which model answered, when not the one asked for, and the ones passed over (with why). */
export function Routing({ model, state }: { model: string; state: ExecutionState }) {
  // A refusal before the stream opened carries them in its details instead.
  const attempts = state.attempts.length > 0 ? state.attempts : attemptsOf(state.error?.details?.attempts);
  // One model tried: the column's own status and error say it all; all of them failed: the error
  // says so and names each (ErrorBanner).
  if (attempts.length <= 1 || allFailed(attempts) !== null) return null;
  const skipped = passedOver(attempts);
  const answered = attempts.find((a) => a.outcome === 'answered')?.model;
  return (
    <p className="routing small" data-testid="column-routing">
      {answered && answered !== model && (
        <span data-testid="column-answered-by">
          Answered by <code>{answered}</code>.{' '}
        </span>
      )}
      {skipped.map((a) => (
        <span key={a.model} className="muted" data-testid="column-skipped" data-model={a.model} title={a.message ?? ''}>
          {a.outcome === 'skipped' ? 'Skipped' : 'Failed'} <code>{a.model}</code>
          {a.error_code ? ` (${a.error_code}${a.status ? ` · HTTP ${a.status}` : ''})` : ''}.{' '}
        </span>
      ))}
    </p>
  );
}

/** What goes under a finished column: the follow-up box (issue 25). */
export type ColumnFollowUp = (executionId: string, model: string | null) => ReactNode;

function Column({
  column,
  winner,
  onCancel,
  onWinner,
  followUp,
}: {
  column: ColumnData;
  winner: boolean;
  onCancel?: () => void;
  onWinner?: () => Promise<void>;
  followUp?: ColumnFollowUp;
}) {
  const { state, record, model } = column;
  const version = record?.prompt_version ?? column.version ?? null;
  const busy = isBusy(state.phase);
  const [marking, setMarking] = useState(false);
  const [markError, setMarkError] = useState<string | null>(null);
  // Only a whole answer can win: a failed or cancelled column's text is partial.
  const canMark = onWinner && !winner && state.executionId && state.phase === 'completed';

  async function mark() {
    if (!onWinner) return;
    setMarking(true);
    setMarkError(null);
    try {
      await onWinner();
    } catch (e) {
      setMarkError(e instanceof Error ? e.message : String(e));
    } finally {
      setMarking(false);
    }
  }

  return (
    <article
      className={`card compare-column${winner ? ' winner' : ''}`}
      data-testid="comparison-column"
      data-model={model}
      data-phase={state.phase}
      data-execution-id={state.executionId ?? ''}
      data-winner={winner ? 'true' : 'false'}
      data-version={version ?? ''}
      aria-label={version === null ? model : `${model}, version ${version}`}
      aria-live="polite"
    >
      <header className="compare-column-header">
        <h4 className="compare-model" data-testid="column-model" title={model}>
          {model}
          {version !== null && (
            <span className="badge badge-version" data-testid="column-version">
              v{version}
            </span>
          )}
        </h4>
        <div className="row">
          <PhaseBadge phase={state.phase} mode="streaming" />
          {winner && (
            <span className="badge badge-winner" data-testid="winner-badge">
              ★ Winner
            </span>
          )}
          <span className="spacer" />
          {busy && onCancel && (
            <button type="button" className="btn btn-danger btn-small" onClick={onCancel} data-testid="column-cancel">
              Cancel
            </button>
          )}
          {canMark && (
            <button
              type="button"
              className="btn btn-small"
              onClick={() => void mark()}
              disabled={marking}
              data-testid="mark-winner-button"
            >
              {marking ? 'Saving…' : 'Mark winner'}
            </button>
          )}
        </div>
      </header>
      <Routing model={model} state={state} />
      <ReconnectingNotice reconnecting={state.reconnecting} />
      {state.phase === 'connecting' && <Spinner label={WAITING_LABEL.streaming} />}
      {(state.content !== '' || state.reasoning !== '' || state.phase === 'streaming') && (
        <OutputText state={state} testId="column-output" cursor={state.phase === 'streaming'} />
      )}
      {state.phase === 'cancelled' && (
        <p className="muted small" data-testid="cancelled-notice">
          Cancelled; the text above is what arrived before.
        </p>
      )}
      {state.error && <ErrorBanner error={state.error} />}
      {markError && (
        <div className="alert alert-error" role="alert" data-testid="mark-winner-error">
          Could not save the winner: {markError}
        </div>
      )}
      <dl className="usage compare-usage" data-testid="column-usage">
        <div title={TIMING_HELP}>
          <dt>{TTFT_LABEL}</dt>
          <dd data-testid="usage-ttft">{record === null || record.status === 'streaming' ? '…' : formatMs(record.ttft_ms)}</dd>
        </div>
        <div title="Output tokens per second after the first token, from the server's timings">
          <dt>Speed</dt>
          <dd data-testid="column-tps">{formatRate(tokensPerSecond(record), record)}</dd>
        </div>
        <div>
          <dt>Tokens</dt>
          <dd data-testid="usage-tokens">{formatTokens(state.usage ?? record?.usage, debitOf(record))}</dd>
        </div>
        <div>
          <dt>Cost</dt>
          <dd data-testid="usage-cost">{formatCost((state.usage ?? record?.usage)?.cost)}</dd>
        </div>
      </dl>
      {followUp && state.executionId && state.phase === 'completed' && followUp(state.executionId, state.model)}
    </article>
  );
}

/** The columns side by side (stacked on a narrow screen), live or reopened alike. */
export function ComparisonColumns({
  comparisonId,
  columns,
  comparison,
  onCancel,
  onWinner,
  followUp,
}: {
  comparisonId: string | null;
  columns: ColumnData[];
  comparison: Comparison | null;
  onCancel?: (index: number) => void;
  onWinner?: OnWinner;
  followUp?: ColumnFollowUp;
}) {
  const winnerId = comparison?.winner_execution_id ?? null;
  return (
    <div className="compare-grid" data-testid="comparison-columns">
      {columns.map((column, i) => (
        <Column
          key={column.key}
          column={column}
          winner={winnerId !== null && winnerId === column.state.executionId}
          onCancel={onCancel && (() => onCancel(i))}
          followUp={followUp}
          onWinner={
            onWinner && comparisonId && column.state.executionId
              ? () => onWinner(comparisonId, column.state.model ?? column.model, column.state.executionId!)
              : undefined
          }
        />
      ))}
    </div>
  );
}

/** A comparison as it runs: one column per model, each with its own Cancel, and Cancel all. */
export function LiveComparison({
  run,
  records,
  comparison,
  onWinner,
  followUp,
}: {
  run: ComparisonRun;
  records: ExecutionRecord[];
  comparison: Comparison | null;
  /** Absent for a comparison of versions, which has no document to hold a winner. */
  onWinner?: OnWinner;
  followUp?: ColumnFollowUp;
}) {
  const columns: ColumnData[] = run.columns.map((c, i) => ({
    key: `${run.comparisonId ?? 'opening'}-${i}`,
    model: c.model,
    version: c.version,
    state: c.state,
    record: records.find((r) => r.id === c.state.executionId) ?? null,
  }));
  return (
    <section className="card panel comparison" data-testid="comparison-panel" data-comparison-id={run.comparisonId ?? ''}>
      <header className="panel-header">
        <h3>Comparison</h3>
        <span className="muted small">
          {run.columns.some((c) => c.version !== undefined)
            ? `${run.columns.length} versions on ${run.columns[0]?.model ?? ''}, same variables`
            : `${run.columns.length} models, same variables`}
        </span>
        {run.comparisonId && (
          <RouteLink to={`/comparisons/${run.comparisonId}`} className="small" testId="comparison-link">
            Its page
          </RouteLink>
        )}
        <span className="spacer" />
        {run.busy && (
          <button
            type="button"
            className="btn btn-danger btn-small"
            onClick={run.cancelAll}
            aria-keyshortcuts="Escape"
            title="Cancel all (Esc)"
            data-testid="cancel-all-button"
          >
            Cancel all
          </button>
        )}
      </header>
      {run.openError && (
        <div className="alert alert-error" role="alert" data-testid="comparison-error">
          Could not start the comparison: {run.openError}
        </div>
      )}
      <ComparisonColumns
        comparisonId={run.comparisonId}
        columns={columns}
        comparison={comparison}
        onCancel={run.cancel}
        onWinner={onWinner}
        followUp={followUp}
      />
    </section>
  );
}

/** A comparison of one model on several prompt versions (issue 27), told from its records. */
export function ofVersions(records: ExecutionRecord[]): boolean {
  const models = new Set(records.map((r) => r.requested_model ?? r.model));
  const versions = new Set(records.map((r) => r.prompt_version ?? null));
  return records.length > 1 && models.size === 1 && versions.size > 1;
}

/** A comparison reopened from the history: its runs' records side by side, with the winner. */
export function ComparisonDetail({
  id,
  records,
  comparison,
  onWinner,
  onClose,
  followUp,
}: {
  id: string;
  records: ExecutionRecord[];
  comparison: Comparison | null;
  onWinner: OnWinner;
  onClose: () => void;
  followUp?: ColumnFollowUp;
}) {
  const ordered = orderColumns(records, comparison?.models);
  const columns: ColumnData[] = ordered.map((r) => ({
    key: r.id,
    model: r.requested_model ?? r.model,
    state: stateOfRecord(r),
    record: r,
  }));
  const missing = (comparison?.models.length ?? 0) - records.length;
  return (
    <article className="run-detail" data-testid="comparison-detail" data-comparison-id={id} aria-label="Comparison">
      <header className="panel-header">
        <h4>Comparison of {columns.length} {ofVersions(ordered) ? 'versions' : 'models'}</h4>
        {comparison?.winner_model && (
          <span className="muted small" data-testid="comparison-winner">
            Winner: <code>{comparison.winner_model}</code>
          </span>
        )}
        <span className="spacer" />
        <button type="button" className="btn btn-small" onClick={onClose} data-testid="detail-close">
          Close
        </button>
      </header>
      {missing > 0 && (
        <p className="muted small">
          {missing} of its runs are older than the history shows, or never started.
        </p>
      )}
      <ComparisonColumns
        comparisonId={id}
        columns={columns}
        comparison={comparison}
        onWinner={ofVersions(ordered) ? undefined : onWinner}
        followUp={followUp}
      />
    </article>
  );
}
