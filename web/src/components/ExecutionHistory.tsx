import { useEffect, useState } from 'react';
import { db } from '../firebase';
import { watchExecutions } from '../services/prompts';
import type { ExecutionRecord } from '../types';
import { formatCost, formatMs } from './UsageSummary';

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat;
}

export function ExecutionHistory({ uid, promptId }: { uid: string; promptId: string }) {
  const [rows, setRows] = useState<ExecutionRecord[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setRows(null);
    setError(null);
    return watchExecutions(db, uid, promptId, setRows, (e) => setError(e.message));
  }, [uid, promptId]);

  return (
    <section className="card history" data-testid="execution-history">
      <h3>Recent runs</h3>
      {error && <div className="alert alert-error">Could not load the history: {error}</div>}
      {rows === null && !error && <p className="muted small">Loading…</p>}
      {rows !== null && rows.length === 0 && <p className="muted small">No runs yet.</p>}
      {rows !== null && rows.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>When</th>
              <th>Status</th>
              <th>Model</th>
              <th>Tokens</th>
              <th>Cost</th>
              <th>TTFT</th>
              <th>Output</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-testid="history-row" data-execution-id={r.id} data-status={r.status}>
                <td className="nowrap">{r.createdAtMs ? new Date(r.createdAtMs).toLocaleString() : '…'}</td>
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
                <td>{formatCost(r.usage?.cost)}</td>
                <td className="nowrap">{formatMs(r.ttft_ms)}</td>
                <td className="preview">{preview(r.output) || <span className="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
