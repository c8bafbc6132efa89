/**
 * Comparisons (issue 18): one prompt run on 2–4 models at once. Each column is an ordinary
 * streaming run carrying the comparison's id; `comparisons/{id}` (written here, under
 * firestore.rules) names the models and, once the user picks one, the winner.
 */
import {
  collection,
  doc,
  serverTimestamp,
  setDoc,
  Timestamp,
  writeBatch,
  type DocumentData,
  type Firestore,
  type Unsubscribe,
} from 'firebase/firestore';
import type { Comparison, ExecutionRecord, Prompt } from '../types';
import { watchOwnOfPrompt } from './prompts';
import { addWrites, fieldsOfPrompt, planSave, type Write } from './versions';

export const MIN_COMPARED = 2;
export const MAX_COMPARED = 4;
/** The backend's MAX_FALLBACK_MODELS, and the rules' bound on a prompt's `fallback_models`. */
export const MAX_FALLBACKS = 3;

const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function toComparison(snap: { id: string; data: () => DocumentData | undefined }): Comparison {
  const d = snap.data() ?? {};
  return {
    id: snap.id,
    owner_uid: String(d.owner_uid ?? ''),
    prompt_id: String(d.prompt_id ?? ''),
    models: Array.isArray(d.models) ? d.models.filter((m: unknown): m is string => typeof m === 'string') : [],
    winner_model: strOrNull(d.winner_model),
    winner_execution_id: strOrNull(d.winner_execution_id),
    createdAtMs: d.created_at instanceof Timestamp ? d.created_at.toMillis() : null,
  };
}

/**
 * Writes `comparisons/{id}` before any of its runs starts (so the history can always name the
 * models and hold a winner) and returns the new id, which every column's request then carries.
 */
export async function createComparison(db: Firestore, uid: string, promptId: string, models: string[]): Promise<string> {
  const ref = doc(collection(db, 'comparisons'));
  await setDoc(ref, {
    owner_uid: uid,
    prompt_id: promptId,
    models,
    created_at: serverTimestamp(),
    updated_at: serverTimestamp(),
  });
  return ref.id;
}

export interface Winner {
  comparisonId: string;
  /** The model that answered in the winning column. */
  model: string;
  executionId: string;
  /**
   * Only the owner may write the prompt: then it also remembers the model for later runs, as a
   * new version of the prompt (issue 27: a change of what shapes a run is a version); else empty.
   */
  promptWrites: Write[];
}

/** Records the winner on the comparison and, for the prompt's owner, as the prompt's preferred model; both or neither. */
export async function markWinner(db: Firestore, winner: Winner): Promise<void> {
  const batch = writeBatch(db);
  batch.update(doc(db, 'comparisons', winner.comparisonId), {
    winner_model: winner.model,
    winner_execution_id: winner.executionId,
    updated_at: serverTimestamp(),
  });
  await addWrites(db, batch, winner.promptWrites).commit();
}

/** The new version a winner makes for the prompt's owner: the latest with `preferred_model` set. */
export function preferredModelWrites(prompt: Prompt, uid: string, model: string): Write[] {
  if (prompt.owner_uid !== uid || prompt.preferred_model === model) return [];
  return planSave(prompt, { ...fieldsOfPrompt(prompt), preferred_model: model }, uid, { summary: `Preferred model: ${model}` });
}

/** Live list of the user's last comparisons of one prompt (their models and winners). */
export function watchComparisons(
  db: Firestore,
  uid: string,
  promptId: string,
  onChange: (comparisons: Comparison[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  return watchOwnOfPrompt(db, 'comparisons', uid, promptId, toComparison, onChange, onError);
}

/** The model a run starts with: the prompt's preferred one when it may be picked, else the app's default. */
export function defaultModelFor(prompt: Pick<Prompt, 'preferred_model'>, available: readonly string[], fallback: string): string {
  const preferred = prompt.preferred_model;
  return preferred && available.includes(preferred) ? preferred : fallback;
}

/** The models a new comparison starts with: the default first, then the next offered ones, up to three. */
export function defaultCompared(first: string, available: readonly string[]): string[] {
  return [first, ...available.filter((m) => m !== first)].slice(0, Math.min(3, available.length));
}

/**
 * The fallbacks one column sends: the prompt's, less the column's own model and the other compared
 * models (a fallback that is itself a column would answer twice), less any the app does not offer.
 */
export function columnFallbacks(prompt: Pick<Prompt, 'fallback_models'>, compared: string[], available: readonly string[]): string[] {
  return (prompt.fallback_models ?? []).filter((m) => !compared.includes(m) && available.includes(m)).slice(0, MAX_FALLBACKS);
}

/**
 * Generation speed: output tokens over the time from the first token to the end, both as the
 * server measured them (the same clock as the time to first token the app shows). Null until
 * the record is final, or when a figure is missing.
 */
export function tokensPerSecond(record: ExecutionRecord | null): number | null {
  if (record === null || record.status === 'streaming') return null;
  const tokens = record.usage?.completion_tokens;
  const { ttft_ms: ttft, duration_ms: duration } = record;
  if (typeof tokens !== 'number' || ttft === null || duration === null || duration <= ttft) return null;
  return tokens / ((duration - ttft) / 1000);
}

export type HistoryEntry =
  | { kind: 'run'; record: ExecutionRecord }
  /** The runs of one comparison, oldest first (the order the columns started). */
  | { kind: 'comparison'; id: string; records: ExecutionRecord[]; createdAtMs: number | null };

/**
 * The history as a person reads it: a comparison is one entry, where its newest run would be,
 * holding all its runs; a run without a comparison id is an entry of its own. `rows` are newest first.
 */
export function groupHistory(rows: ExecutionRecord[]): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  const groups = new Map<string, ExecutionRecord[]>();
  for (const record of rows) {
    const id = record.comparison_id;
    if (!id) {
      entries.push({ kind: 'run', record });
      continue;
    }
    const group = groups.get(id);
    if (group) {
      group.push(record);
      continue;
    }
    const records = [record];
    groups.set(id, records);
    entries.push({ kind: 'comparison', id, records, createdAtMs: null });
  }
  return entries.map((e) => {
    if (e.kind === 'run') return e;
    const records = [...e.records].reverse();
    return { ...e, records, createdAtMs: records[0]?.createdAtMs ?? null };
  });
}

/** The columns of a reopened comparison: in the order its document names the models, then any other run. */
export function orderColumns(records: ExecutionRecord[], models: string[] | undefined): ExecutionRecord[] {
  if (!models || models.length === 0) return records;
  const rank = (r: ExecutionRecord): number => {
    const i = models.indexOf(r.requested_model ?? r.model);
    return i === -1 ? models.length : i;
  };
  return [...records].sort((a, b) => rank(a) - rank(b));
}
