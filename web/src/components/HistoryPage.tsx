import type { User } from 'firebase/auth';
import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useAllExecutions } from '../hooks/useRuns';
import { linksOf } from '../services/conversation';
import { historyItems, matchesQuery, promptIdOf, type HistoryItem } from '../services/history';
import type { Prompt } from '../types';
import { PageLoading } from './NotFound';

const PAGE = 100;

function when(ms: number | null | undefined): string {
  return ms ? new Date(ms).toLocaleString() : '…';
}

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 140 ? `${flat.slice(0, 140)}…` : flat;
}

function Item({ item, prompt }: { item: HistoryItem; prompt: Prompt | undefined }) {
  const newest = item.records[0];
  const to = item.kind === 'conversation' ? `/runs/${item.id}` : `/comparisons/${item.id}`;
  const turns = item.kind === 'conversation' ? Math.max(...item.records.map((r) => linksOf(r).turn)) : 0;
  const lastMessage = item.records.find((r) => r.message)?.message;
  return (
    <li className="history-item" data-testid="history-item" data-kind={item.kind} data-id={item.id}>
      <Link to={to} className="history-item-link" data-testid="history-item-link">
        <span className="history-item-title">
          {prompt ? prompt.title : <span className="muted" data-testid="history-prompt-gone">Deleted or unshared prompt</span>}
        </span>
        <span className="muted small">{when(newest?.createdAtMs)}</span>
      </Link>
      <div className="row small wrap">
        {item.kind === 'comparison' ? (
          <span className="badge badge-compare">comparison · {item.records.length} models</span>
        ) : (
          <span className="badge" data-testid="history-turns">
            {turns === 1 ? 'run' : `conversation · ${turns} turns`}
          </span>
        )}
        {newest && <span className={`badge badge-${newest.status}`}>{newest.status}</span>}
        <code className="muted">{newest?.model}</code>
      </div>
      <p className="preview small muted">{preview(lastMessage ?? newest?.output ?? '') || '—'}</p>
    </li>
  );
}

/** `/history`: every run and conversation of the user, across prompts (deleted ones too); `?q=` searches. */
export function HistoryPage({ user, prompts }: { user: User; prompts: Prompt[] }) {
  const [params, setParams] = useSearchParams();
  const query = params.get('q') ?? '';
  const [count, setCount] = useState(PAGE);
  const runs = useAllExecutions(user.uid, count);
  const byId = new Map(prompts.map((p) => [p.id, p]));
  const items = historyItems(runs.rows ?? []);
  const shown = items.filter((item) => matchesQuery(item, byId.get(promptIdOf(item)), query));

  return (
    <section className="card history-page" data-testid="history-page">
      <header className="panel-header wrap">
        <h2>History</h2>
        <span className="spacer" />
        <label className="inline small search">
          Search
          <input
            type="search"
            value={query}
            placeholder="prompt title or text"
            // Typing replaces the entry: Back leaves the page, not one letter.
            onChange={(e) => setParams(e.target.value ? { q: e.target.value } : {}, { replace: true })}
            data-testid="history-search"
          />
        </label>
      </header>
      {runs.error && <div className="alert alert-error">Could not load the history: {runs.error}</div>}
      {runs.rows === undefined && !runs.error && <PageLoading />}
      {runs.rows !== undefined && shown.length === 0 && (
        <p className="muted small" data-testid="history-empty">
          {items.length === 0 ? 'No runs yet.' : `Nothing matches “${query}”.`}
        </p>
      )}
      <ul className="history-list">
        {shown.map((item) => (
          <Item key={`${item.kind}:${item.id}`} item={item} prompt={byId.get(promptIdOf(item))} />
        ))}
      </ul>
      {runs.rows !== undefined && runs.rows.length >= count && (
        <button type="button" className="btn btn-small" onClick={() => setCount((c) => c + PAGE)} data-testid="history-more">
          Show older runs
        </button>
      )}
    </section>
  );
}
