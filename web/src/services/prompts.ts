/** Firestore reads and writes for `prompts` and `executions`, field names exactly as the README's schema. */
import {
  addDoc,
  collection,
  deleteDoc,
  deleteField,
  doc,
  limit,
  onSnapshot,
  orderBy,
  query,
  serverTimestamp,
  Timestamp,
  updateDoc,
  where,
  type DocumentData,
  type Firestore,
  type QueryDocumentSnapshot,
  type Unsubscribe,
} from 'firebase/firestore';
import { attemptsOf } from './attempts';
import { sourcesOf } from './sources';
import type { ExecutionRecord, Prompt, PromptDraft, PromptVariable, Usage, UserLimits } from '../types';

function millis(value: unknown): number | null {
  return value instanceof Timestamp ? value.toMillis() : null;
}

function toVariables(raw: unknown): PromptVariable[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((v): PromptVariable[] => {
    if (typeof v !== 'object' || v === null || typeof (v as { name?: unknown }).name !== 'string') return [];
    const r = v as Record<string, unknown>;
    const out: PromptVariable = {
      name: r.name as string,
      required: r.required === true,
      default: typeof r.default === 'string' ? r.default : null,
    };
    if (typeof r.description === 'string') out.description = r.description;
    return [out];
  });
}

export function toPrompt(snap: QueryDocumentSnapshot<DocumentData>): Prompt {
  const d = snap.data();
  return {
    id: snap.id,
    owner_uid: String(d.owner_uid ?? ''),
    title: String(d.title ?? ''),
    content: String(d.content ?? ''),
    system_prompt: typeof d.system_prompt === 'string' ? d.system_prompt : undefined,
    variables: toVariables(d.variables),
    public: d.public === true,
    ...knowledgeOf(d),
    preferred_model: typeof d.preferred_model === 'string' ? d.preferred_model : null,
    fallback_models: Array.isArray(d.fallback_models)
      ? d.fallback_models.filter((m: unknown): m is string => typeof m === 'string')
      : [],
    updatedAtMs: millis(d.updated_at),
  };
}

/** A prompt's knowledge-base fields as stored (README, "Firestore schema"). */
function knowledgeOf(d: DocumentData): Pick<Prompt, 'document_ids' | 'top_k' | 'retrieval_query_variable'> {
  return {
    document_ids: Array.isArray(d.document_ids)
      ? d.document_ids.filter((id: unknown): id is string => typeof id === 'string')
      : [],
    top_k: Number.isInteger(d.top_k) ? (d.top_k as number) : null,
    retrieval_query_variable: typeof d.retrieval_query_variable === 'string' ? d.retrieval_query_variable : null,
  };
}

/**
 * The knowledge-base fields of a write: each only when set, and on an update the unset ones
 * deleted (the rules refuse null for them).
 */
function storedKnowledge(draft: PromptDraft, update: boolean): Record<string, unknown> {
  const ids = draft.document_ids ?? [];
  const out: Record<string, unknown> = {};
  const put = (key: string, value: unknown, set: boolean) => {
    if (set) out[key] = value;
    else if (update) out[key] = deleteField();
  };
  put('document_ids', ids, ids.length > 0);
  put('top_k', draft.top_k, ids.length > 0 && draft.top_k != null);
  put('retrieval_query_variable', draft.retrieval_query_variable, ids.length > 0 && !!draft.retrieval_query_variable);
  return out;
}

/** `fallback_models` only when some are named; deleted on an update when none are. */
function storedFallbacks(draft: PromptDraft, update: boolean): Record<string, unknown> {
  const models = draft.fallback_models ?? [];
  if (models.length > 0) return { fallback_models: models };
  return update ? { fallback_models: deleteField() } : {};
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
    resumable: d.resumable === true,
  };
}

/** The variables list as stored: description only when given (the rules refuse unknown keys). */
function storedVariables(variables: PromptVariable[]): Array<Record<string, unknown>> {
  return variables.map((v) => {
    const out: Record<string, unknown> = { name: v.name, required: v.required, default: v.default };
    if (v.description) out.description = v.description;
    return out;
  });
}

export async function createPrompt(db: Firestore, uid: string, draft: PromptDraft): Promise<string> {
  const data: Record<string, unknown> = {
    owner_uid: uid,
    title: draft.title,
    content: draft.content,
    variables: storedVariables(draft.variables),
    public: draft.public,
    ...storedKnowledge(draft, false),
    ...storedFallbacks(draft, false),
    created_at: serverTimestamp(),
    updated_at: serverTimestamp(),
  };
  if (draft.system_prompt.trim() !== '') data.system_prompt = draft.system_prompt;
  const ref = await addDoc(collection(db, 'prompts'), data);
  return ref.id;
}

export async function updatePrompt(db: Firestore, id: string, draft: PromptDraft): Promise<void> {
  await updateDoc(doc(db, 'prompts', id), {
    title: draft.title,
    content: draft.content,
    system_prompt: draft.system_prompt.trim() !== '' ? draft.system_prompt : deleteField(),
    variables: storedVariables(draft.variables),
    public: draft.public,
    ...storedKnowledge(draft, true),
    ...storedFallbacks(draft, true),
    updated_at: serverTimestamp(),
  });
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
