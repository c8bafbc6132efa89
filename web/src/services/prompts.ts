/**
 * Firestore reads for `prompts` and `executions` and the prompt's delete, field names exactly as
 * docs/schema.md; saves go through services/versions.ts (each creates a version).
 */
import {
  collection,
  deleteDoc,
  doc,
  limit,
  onSnapshot,
  orderBy,
  query,
  Timestamp,
  where,
  type DocumentData,
  type Firestore,
  type QueryDocumentSnapshot,
  type Unsubscribe,
} from 'firebase/firestore';
import { attemptsOf } from './attempts';
import { sourcesOf } from './sources';
import { fieldsOfData, labelsOf } from './versions';
import type { ExecutionRecord, Prompt, Usage, UserLimits } from '../types';

function millis(value: unknown): number | null {
  return value instanceof Timestamp ? value.toMillis() : null;
}

export function toPrompt(snap: { id: string; data: () => DocumentData | undefined }): Prompt {
  const d = snap.data() ?? {};
  const fields = fieldsOfData(d);
  return {
    id: snap.id,
    owner_uid: String(d.owner_uid ?? ''),
    title: String(d.title ?? ''),
    public: d.public === true,
    ...fields,
    system_prompt: fields.system_prompt !== '' ? fields.system_prompt : undefined,
    updatedAtMs: millis(d.updated_at),
    version: Number.isInteger(d.version) && d.version > 0 ? (d.version as number) : null,
    labels: labelsOf(d.labels),
    stored: d,
  };
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function toStringMap(raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null) return {};
  return Object.fromEntries(Object.entries(raw).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

export function toExecution(snap: { id: string; data: () => DocumentData | undefined }): ExecutionRecord {
  const d = snap.data() ?? {};
  return {
    id: snap.id,
    prompt_id: String(d.prompt_id ?? ''),
    model: String(d.model ?? ''),
    status: String(d.status ?? ''),
    output: String(d.output ?? ''),
    reasoning: String(d.reasoning ?? ''),
    variables: toStringMap(d.variables),
    finish_reason: strOrNull(d.finish_reason),
    error_code: strOrNull(d.error_code),
    error_message: strOrNull(d.error_message),
    usage: typeof d.usage === 'object' && d.usage !== null ? (d.usage as Usage) : null,
    ttft_ms: num(d.ttft_ms),
    duration_ms: num(d.duration_ms),
    createdAtMs: millis(d.created_at),
    finishedAtMs: millis(d.finished_at),
    sources: sourcesOf(d.sources),
    comparison_id: strOrNull(d.comparison_id),
    requested_model: strOrNull(d.requested_model),
    attempts: attemptsOf(d.attempts),
    tokens_debited: num(d.tokens_debited),
    conversation_id: strOrNull(d.conversation_id),
    parent_execution_id: strOrNull(d.parent_execution_id),
    turn: num(d.turn),
    message: strOrNull(d.message),
    prompt_version: num(d.prompt_version),
    resumable: d.resumable === true,
  };
}

/** Deletes a prompt; the rules allow it for its owner only. Its runs stay in `executions`. */
export async function deletePrompt(db: Firestore, id: string): Promise<void> {
  await deleteDoc(doc(db, 'prompts', id));
}

/**
 * Live list of the user's prompts and the public ones: two queries (the rules allow each on its
 * own, not an OR), merged and de-duplicated, newest first.
 */
export function watchPrompts(
  db: Firestore,
  uid: string,
  onChange: (prompts: Prompt[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  let own: Prompt[] = [];
  let shared: Prompt[] = [];
  const emit = (): void => {
    const byId = new Map<string, Prompt>();
    for (const p of [...shared, ...own]) byId.set(p.id, p);
    onChange([...byId.values()].sort((a, b) => (b.updatedAtMs ?? Infinity) - (a.updatedAtMs ?? Infinity)));
  };
  const prompts = collection(db, 'prompts');
  const unsubOwn = onSnapshot(
    query(prompts, where('owner_uid', '==', uid)),
    (snap) => {
      own = snap.docs.map(toPrompt);
      emit();
    },
    onError,
  );
  const unsubPublic = onSnapshot(
    query(prompts, where('public', '==', true)),
    (snap) => {
      shared = snap.docs.map(toPrompt);
      emit();
    },
    onError,
  );
  return () => {
    unsubOwn();
    unsubPublic();
  };
}

/**
 * Live list of the user's last 20 documents of one prompt in `collectionName`, newest first
 * (the rules allow the query because it filters on owner_uid == uid).
 */
export function watchOwnOfPrompt<T>(
  db: Firestore,
  collectionName: 'executions' | 'comparisons',
  uid: string,
  promptId: string,
  read: (snap: QueryDocumentSnapshot<DocumentData>) => T,
  onChange: (rows: T[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  const q = query(
    collection(db, collectionName),
    where('owner_uid', '==', uid),
    where('prompt_id', '==', promptId),
    orderBy('created_at', 'desc'),
    limit(20),
  );
  return onSnapshot(q, (snap) => onChange(snap.docs.map(read)), onError);
}

/** Live list of the last 20 runs of one prompt by this user. */
export function watchExecutions(
  db: Firestore,
  uid: string,
  promptId: string,
  onChange: (executions: ExecutionRecord[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  return watchOwnOfPrompt(db, 'executions', uid, promptId, toExecution, onChange, onError);
}

/** Today's UTC date as the backend writes `user_limits.day` (YYYY-MM-DD). */
export function utcDay(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/** Tokens used today: `tokens_today` counts for the `day` it names, and is 0 on any other day. */
export function tokensToday(data: DocumentData | undefined, today: string = utcDay()): number {
  if (!data || data.day !== today) return 0;
  return typeof data.tokens_today === 'number' ? data.tokens_today : 0;
}

/** Live `user_limits/{uid}` (written by the backend as runs end; the owner may read it). */
export function watchUserLimits(
  db: Firestore,
  uid: string,
  onChange: (limits: UserLimits) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  return onSnapshot(
    doc(db, 'user_limits', uid),
    (snap) => onChange({ tokensToday: tokensToday(snap.data()) }),
    onError,
  );
}
