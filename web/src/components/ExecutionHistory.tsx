import { useState } from 'react';
import { RouteLink } from './RouteLink';
import type { Executions } from '../hooks/useExecutions';
import { Markdown } from '../markdown/Markdown';
import { SourcesList, SourcesProvider } from '../markdown/Sources';
import { allFailed } from '../services/attempts';
import { groupHistory, orderColumns, type HistoryEntry } from '../services/comparisons';
import type { Comparison, ExecutionRecord, ExecutionStatus } from '../types';
import { ComparisonDetail, ofVersions, type OnWinner } from './ComparisonView';
import { CopyButton } from './CopyButton';
import { formatCost, formatTokens, recordTokens, Timings } from './UsageSummary';

const STATUSES: ExecutionStatus[] = ['streaming', 'completed', 'error', 'cancelled', 'interrupted'];

/** An interrupted run's record holds the text of its last checkpoint, not the whole answer. */
const INTERRUPTED_TITLE = 'The server running it stopped mid-answer; the text is what it had saved.';

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat;
}

function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleString() : '…';
}

interface Props extends Executions {
  onRerun: (record: ExecutionRecord) => void;
  /** The user's comparisons of this prompt: their models and winners. */
  comparisons?: Comparison[];
  onWinner?: OnWinner;
}

const entryKey = (e: HistoryEntry): string => (e.kind === 'run' ? e.record.id : `comparison:${e.id}`);
const NO_WINNER: OnWinner = async () => undefined;

/**
 * The user's runs of this prompt, live; a row opens into the whole run, which can run again. The
 * runs of one comparison are one row, which opens into its columns side by side.
 */
export function ExecutionHistory({ rows, error, onRerun, comparisons = [], onWinner = NO_WINNER }: Props) {
  const [filter, setFilter] = useState<ExecutionStatus | 'all'>('all');
  const [openId, setOpenId] = useState<string | null>(null);
  const matches = (r: ExecutionRecord) => filter === 'all' || r.status === filter;
  const shown = groupHistory(rows ?? []).filter((e) => (e.kind === 'run' ? matches(e.record) : e.records.some(matches)));
  const openEntry = groupHistory(rows ?? []).find((e) => entryKey(e) === openId) ?? null;
  const comparisonOf = (id: string) => comparisons.find((c) => c.id === id) ?? null;
  const toggle = (key: string) => setOpenId(key === openId ? null : key);

  return (
    <section className="card history" data-testid="execution-history">
      <header className="panel-header">
        <h3>Recent runs</h3>
        <span className="spacer" />
        <label className="inline small">
          Status
          <select
            value={filter}
            onChange={(e) => setFilter(e.target.value as ExecutionStatus | 'all')}
            data-testid="history-filter"
          >
            <option value="all">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </header>
      {error && <div className="alert alert-error">Could not load the history: {error}</div>}
      {rows === null && !error && <p className="muted small">Loading…</p>}
      {rows !== null && shown.length === 0 && (
        <p className="muted small">{rows.length === 0 ? 'No runs yet.' : `No ${filter} runs.`}</p>
      )}
      {shown.length > 0 && (
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th>When</th>
                <th>Status</th>
                <th>Model</th>
                <th>Tokens</th>
                <th className="col-preview">Output</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((e) =>
                e.kind === 'comparison' ? (
                  <ComparisonRow
                    key={entryKey(e)}
                    entry={e}
                    comparison={comparisonOf(e.id)}
                    open={entryKey(e) === openId}
                    onToggle={() => toggle(entryKey(e))}
                  />
                ) : (
                  <RunRow key={e.record.id} record={e.record} open={e.record.id === openId} onToggle={() => toggle(e.record.id)} />
                ),
              )}
            </tbody>
          </table>
        </div>
      )}
      {openEntry?.kind === 'run' && (
        <ExecutionDetail record={openEntry.record} onClose={() => setOpenId(null)} onRerun={() => onRerun(openEntry.record)} />
      )}
      {openEntry?.kind === 'comparison' && (
        <ComparisonDetail
          id={openEntry.id}
          records={openEntry.records}
          comparison={comparisonOf(openEntry.id)}
          onWinner={onWinner}
          onClose={() => setOpenId(null)}
        />
      )}
    </section>
  );
}

/** The prompt version a run used; nothing for a record older than versions. */
function VersionBadge({ version }: { version: number | null | undefined }) {
  if (version == null) return null;
  return (
    <span className="badge badge-version" data-testid="history-version" title={`Prompt version ${version}`}>
      v{version}
    </span>
  );
}

function RunRow({ record, open, onToggle }: { record: ExecutionRecord; open: boolean; onToggle: () => void }) {
  return (
    <tr
      className={open ? 'selected' : undefined}
      data-testid="history-row"
      data-execution-id={record.id}
      data-status={record.status}
    >
      <td className="nowrap">
        <button
          type="button"
          className="link-button"
          aria-expanded={open}
          onClick={onToggle}
          data-testid="history-open"
        >
          {when(record.createdAtMs)}
        </button>
      </td>
      <td>
        <span
          className={`badge badge-${record.status}`}
          title={record.status === 'interrupted' ? INTERRUPTED_TITLE : undefined}
        >
          {record.status}
        </span>
        {record.error_code && record.error_code !== record.status && (
          <code className="error-code" title={record.error_message ?? ''} data-testid="history-error-code">
            {record.error_code}
          </code>
        )}
      </td>
      <td className="nowrap">
        {record.model}
        <VersionBadge version={record.prompt_version} />
        {(record.turn ?? 1) > 1 && (
          <span className="badge" data-testid="history-turn">
            turn {record.turn}
          </span>
        )}
      </td>
      <td data-testid="history-tokens" title={record.usage ? undefined : 'estimated: the model sent no usage'}>
        {recordTokens(record) ?? '—'}
      </td>
      <td className="preview col-preview">{preview(record.output) || <span className="muted">—</span>}</td>
    </tr>
  );
}

/** One row for a whole comparison: its models, each run's status, the winner. */
function ComparisonRow({
  entry,
  comparison,
  open,
  onToggle,
}: {
  entry: Extract<HistoryEntry, { kind: 'comparison' }>;
  comparison: Comparison | null;
  open: boolean;
  onToggle: () => void;
}) {
  const records = orderColumns(entry.records, comparison?.models);
  const tokens = records.reduce((sum, r) => sum + (recordTokens(r) ?? 0), 0);
  const winner = comparison?.winner_model;
  return (
    <tr
      className={open ? 'selected' : undefined}
      data-testid="history-comparison"
      data-comparison-id={entry.id}
      data-runs={entry.records.length}
    >
      <td className="nowrap">
        <button type="button" className="link-button" aria-expanded={open} onClick={onToggle} data-testid="history-open">
          {when(entry.createdAtMs)}
        </button>
      </td>
      <td>
        <span className="badge badge-compare">comparison</span>{' '}
        {records.map((r) => (
          <span key={r.id} className={`badge badge-${r.status}`} title={r.requested_model ?? r.model}>
            {r.status}
          </span>
        ))}
      </td>
      <td data-testid="history-comparison-models">
        {ofVersions(records) ? (
          <>
            {records[0]!.requested_model ?? records[0]!.model}{' '}
            {records.map((r) => (
              <VersionBadge key={r.id} version={r.prompt_version} />
            ))}
          </>
        ) : (
          records.map((r) => r.requested_model ?? r.model).join(', ')
        )}
      </td>
      <td>{tokens || '—'}</td>
      <td className="preview col-preview">
        {winner ? (
          <span data-testid="history-winner">★ {winner}</span>
        ) : (
          <span className="muted">no winner yet</span>
        )}
      </td>
    </tr>
  );
}

function ExecutionDetail({
  record,
  onClose,
  onRerun,
}: {
  record: ExecutionRecord;
  onClose: () => void;
  onRerun: () => void;
}) {
  const variables = Object.entries(record.variables);
  const tried = allFailed(record.attempts ?? []);
  return (
    <article className="run-detail" data-testid="execution-detail" data-execution-id={record.id} aria-label="Run">
      <header className="panel-header">
        <h4>Run of {when(record.createdAtMs)}</h4>
        <span className={`badge badge-${record.status}`} data-testid="detail-status">
          {record.status}
        </span>
        <span className="spacer" />
        <RouteLink to={`/runs/${record.id}`} className="btn btn-small" testId="detail-link">
          {(record.turn ?? 1) > 1 ? 'Open conversation' : 'Open / follow up'}
        </RouteLink>
        <button type="button" className="btn btn-small btn-primary" onClick={onRerun} data-testid="rerun-button">
          Run again
        </button>
        <button type="button" className="btn btn-small" onClick={onClose} data-testid="detail-close">
          Close
        </button>
      </header>
      {record.status === 'interrupted' && (
        <div className="alert alert-warning" data-testid="detail-interrupted">
          <strong>Interrupted.</strong> {INTERRUPTED_TITLE}
        </div>
      )}
      {record.error_code && record.error_code !== 'interrupted' && (
        <div className="alert alert-error" data-testid="detail-error">
          <code>{record.error_code}</code> {record.error_message}
          {tried && <span data-testid="detail-error-tried"> {tried}</span>}
        </div>
      )}
      <dl className="usage">
        <div>
          <dt>Model</dt>
          <dd data-testid="detail-model">{record.model}</dd>
        </div>
        {record.prompt_version != null && (
          <div>
            <dt>Prompt version</dt>
            <dd data-testid="detail-version">v{record.prompt_version}</dd>
          </div>
        )}
        <div>
          <dt>Tokens</dt>
          <dd data-testid="detail-tokens">{formatTokens(record.usage, record.tokens_debited ?? null)}</dd>
        </div>
        <div>
          <dt>Cost</dt>
          <dd data-testid="detail-cost">{formatCost(record.usage?.cost)}</dd>
        </div>
        <Timings record={record} />
      </dl>
      <h5>Variables</h5>
      {variables.length === 0 ? (
        <p className="muted small">None.</p>
      ) : (
        <dl className="variables-list" data-testid="detail-variables">
          {variables.map(([name, value]) => (
            <div key={name}>
              <dt>{name}</dt>
              <dd>{value || <span className="muted">(empty)</span>}</dd>
            </div>
          ))}
        </dl>
      )}
      <div className="output-tools">
        <h5>Output</h5>
        <span className="spacer" />
        {record.output !== '' && <CopyButton getText={() => record.output} label="Copy answer" testId="copy-answer" />}
      </div>
      <SourcesProvider sources={record.sources} runKey={record.id}>
        <div className={record.status === 'interrupted' ? 'partial' : undefined}>
          {record.status === 'interrupted' && record.output !== '' && (
            <span className="badge badge-partial" data-testid="detail-partial-badge">
              Partial output
            </span>
          )}
          <div className="output markdown" data-testid="detail-output">
            {record.output !== '' ? <Markdown text={record.output} /> : <span className="muted">No output.</span>}
          </div>
        </div>
        <SourcesList />
      </SourcesProvider>
    </article>
  );
}
