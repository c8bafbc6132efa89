import { useState } from 'react';
import { count } from '../services/words';
import type { FieldProblem } from '../services/validation';
import type { KbDocument, PromptDraft } from '../types';
import type { FieldProblems } from './fieldProblems';

/** The backend's limits (MAX_DOCUMENTS_PER_PROMPT, RETRIEVAL_TOP_K_MAX); the rules hold the same. */
export const MAX_DOCUMENTS_PER_PROMPT = 10;
export const MAX_TOP_K = 10;

type Knowledge = Pick<PromptDraft, 'document_ids' | 'top_k' | 'retrieval_query_variable'>;

/** Checks of the knowledge-base fields that mirror the rules, each on its field; none when they are fine. */
export function checkKnowledge(draft: PromptDraft): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const ids = draft.document_ids ?? [];
  if (ids.length > MAX_DOCUMENTS_PER_PROMPT) {
    problems.push({ field: 'document_ids', message: `A prompt draws on at most ${MAX_DOCUMENTS_PER_PROMPT} documents.` });
  }
  const k = draft.top_k;
  if (k != null && (!Number.isInteger(k) || k < 1 || k > MAX_TOP_K)) {
    problems.push({ field: 'top_k', message: `Passages must be a whole number 1–${MAX_TOP_K}.` });
  }
  const q = draft.retrieval_query_variable;
  if (ids.length > 0 && q && !draft.variables.some((v) => v.name === q)) {
    problems.push({ field: 'retrieval_query_variable', message: `The search query variable "${q}" is not declared.` });
  }
  return problems;
}

interface Props {
  draft: PromptDraft;
  /** The user's documents; null while they load. */
  documents: KbDocument[] | null;
  onChange: (patch: Partial<Knowledge>) => void;
  /** The editor's field checks, to mark this part's fields. */
  fields?: FieldProblems;
}

/** The editor's knowledge-base part: which of the user's ready documents, how many passages, which query. */
export function DocumentPicker({ draft, documents, onChange, fields }: Props) {
  const ids = draft.document_ids ?? [];
  const ready = (documents ?? []).filter((d) => d.status === 'ready');
  const byId = new Map((documents ?? []).map((d) => [d.id, d]));
  // Attached documents that are not ready (or gone) stay listed, so they can be detached, and,
  // once detached, stay listed until the editor closes, so they can be attached again.
  const [attachedAtOpen] = useState(ids);
  const others = [...new Set([...attachedAtOpen, ...ids])].filter((id) => !ready.some((d) => d.id === id));
  const full = ids.length >= MAX_DOCUMENTS_PER_PROMPT;
  const toggle = (id: string, on: boolean) =>
    onChange({ document_ids: on ? [...ids, id] : ids.filter((x) => x !== id) });
  const names = draft.variables.map((v) => v.name).filter((n) => n !== '');

  return (
    <fieldset className="knowledge" data-testid="document-picker" {...fields?.groupProps('document_ids')}>
      <legend>Knowledge base</legend>
      {fields?.fieldError('document_ids')}
      {documents === null && <p className="muted small">Loading your documents…</p>}
      {documents !== null && ready.length === 0 && others.length === 0 && (
        <p className="muted small">No ready documents yet: upload some on the Documents page.</p>
      )}
      {(ready.length > 0 || others.length > 0) && (
        <ul className="doc-choices" aria-label="Documents this prompt draws on">
          {ready.map((d) => {
            const on = ids.includes(d.id);
            return (
              <li key={d.id}>
                <label className="inline">
                  <input
                    type="checkbox"
                    checked={on}
                    disabled={!on && full}
                    onChange={(e) => toggle(d.id, e.target.checked)}
                    data-testid="attach-document"
                    data-document-id={d.id}
                  />
                  <span>{d.title}</span>
                  <span className="muted small">{count(d.passage_count ?? 0, 'passage')}</span>
                </label>
              </li>
            );
          })}
          {others.map((id) => {
            const d = byId.get(id);
            return (
              <li key={id}>
                <label className="inline">
                  <input
                    type="checkbox"
                    checked={ids.includes(id)}
                    disabled={!ids.includes(id) && full}
                    onChange={(e) => toggle(id, e.target.checked)}
                    data-testid="attach-document"
                    data-document-id={id}
                  />
                  {d || documents === null ? (
                    <span>{d?.title ?? id}</span>
                  ) : (
                    <span data-testid="deleted-document">
                      deleted document <small className="muted">{id}</small>
                    </span>
                  )}
                  <span className="muted small">{d ? `${d.status}: not searched until ready` : 'missing: not searched'}</span>
                </label>
              </li>
            );
          })}
        </ul>
      )}
      {ids.length > 0 && (
        <div className="grid-2 tight">
          <label>
            Passages per run
            <input
              {...fields?.inputProps('top_k')}
              type="number"
              min={1}
              max={MAX_TOP_K}
              value={draft.top_k ?? ''}
              placeholder="default (5)"
              onChange={(e) => {
                onChange({ top_k: e.target.value === '' ? null : Number(e.target.value) });
                fields?.clear('top_k');
              }}
              data-testid="top-k-input"
            />
            {fields?.fieldError('top_k')}
          </label>
          <label>
            Search with
            <select
              {...fields?.inputProps('retrieval_query_variable')}
              value={draft.retrieval_query_variable ?? ''}
              onChange={(e) => {
                onChange({ retrieval_query_variable: e.target.value || null });
                fields?.clear('retrieval_query_variable');
              }}
              data-testid="query-variable-select"
            >
              <option value="">all the variables (the prompt if it has none)</option>
              {names.map((n) => (
                <option key={n} value={n}>
                  the variable {n}
                </option>
              ))}
            </select>
            {fields?.fieldError('retrieval_query_variable')}
          </label>
        </div>
      )}
    </fieldset>
  );
}
