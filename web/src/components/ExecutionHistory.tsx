import { useState } from 'react';
import type { Executions } from '../hooks/useExecutions';
import { Markdown } from '../markdown/Markdown';
import { SourcesList, SourcesProvider } from '../markdown/Sources';
import type { ExecutionRecord, ExecutionStatus } from '../types';
import { CopyButton } from './CopyButton';
import { formatCost, formatTokens, Timings } from './UsageSummary';

const STATUSES: ExecutionStatus[] = ['streaming', 'completed', 'error', 'cancelled'];

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat;
}

function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleString() : '…';
}

interface Props extends Executions {
  onRerun: (record: ExecutionRecord) => void;
}

/** The user's runs of this prompt, live; a row opens into the whole run, which can run again. */
export function ExecutionHistory({ rows, error, onRerun }: Props) {
  const [filter, setFilter] = useState<ExecutionStatus | 'all'>('all');
  const [openId, setOpenId] = useState<string | null>(null);
  const shown = rows?.filter((r) => filter === 'all' || r.status === filter) ?? [];
  const open = rows?.find((r) => r.id === openId) ?? null;

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
              {shown.map((r) => (
                <tr
                  key={r.id}
                  className={r.id === openId ? 'selected' : undefined}
                  data-testid="history-row"
                  data-execution-id={r.id}
                  data-status={r.status}
                >
                  <td className="nowrap">
                    <button
                      type="button"
                      className="link-button"
                      aria-expanded={r.id === openId}
                      onClick={() => setOpenId(r.id === openId ? null : r.id)}
                      data-testid="history-open"
                    >
                      {when(r.createdAtMs)}
                    </button>
                  </td>
                  <td>
                    <span className={`badge badge-${r.status}`}>{r.status}</span>
                    {r.error_code && (
                      <code className="error-code" title={r.error_message ?? ''} data-testid="history-error-code">
                        {r.error_code}
                      </code>
                    )}
                  </td>
                  <td className="nowrap">{r.model}</td>
                  <td>{r.usage?.total_tokens ?? '—'}</td>
                  <td className="preview col-preview">{preview(r.output) || <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {open && <ExecutionDetail record={open} onClose={() => setOpenId(null)} onRerun={() => onRerun(open)} />}
    </section>
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
  return (
    <article className="run-detail" data-testid="execution-detail" data-execution-id={record.id} aria-label="Run">
      <header className="panel-header">
        <h4>Run of {when(record.createdAtMs)}</h4>
        <span className={`badge badge-${record.status}`} data-testid="detail-status">
          {record.status}
        </span>
        <span className="spacer" />
        <button type="button" className="btn btn-small btn-primary" onClick={onRerun} data-testid="rerun-button">
          Run again
        </button>
        <button type="button" className="btn btn-small" onClick={onClose} data-testid="detail-close">
          Close
        </button>
      </header>
      {record.error_code && (
        <div className="alert alert-error" data-testid="detail-error">
          <code>{record.error_code}</code> {record.error_message}
        </div>
      )}
      <dl className="usage">
        <div>
          <dt>Model</dt>
          <dd data-testid="detail-model">{record.model}</dd>
        </div>
        <div>
          <dt>Tokens</dt>
          <dd data-testid="detail-tokens">{formatTokens(record.usage)}</dd>
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
        <div className="output markdown" data-testid="detail-output">
          {record.output !== '' ? <Markdown text={record.output} /> : <span className="muted">No output.</span>}
        </div>
        <SourcesList />
      </SourcesProvider>
    </article>
  );
}
