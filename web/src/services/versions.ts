/**
 * Prompt versions (issue 27, contract C3): every save writes the prompt and its next version,
 * `prompts/{id}/versions/{n+1}`, in one batch with the prompt's `version` going n -> n+1, so the
 * rules can refuse a version out of sequence and a second save from the same n (the version
 * document exists by then, and versions are never updated). Labels are a map on the prompt.
 *
 * A prompt saved before versions were kept has no `version`: it runs as version 1 (the rules and
 * the backend agree), and the app shows its stored fields as version 1. Its first save writes, in
 * the same batch, versions/1 as a copy of the prompt as stored (dated with its `updated_at`) and
 * the edit as version 2.
 */
import {
  collection,
  deleteField,
  doc,
  FieldPath,
  limit,
  onSnapshot,
  orderBy,
  query,
  serverTimestamp,
  Timestamp,
  updateDoc,
  writeBatch,
  type DocumentData,
  type Firestore,
  type Unsubscribe,
  type WriteBatch,
} from 'firebase/firestore';
import type { Prompt, PromptDraft, PromptVariable, PromptVersion, VersionFields } from '../types';

/** The newest versions the list reads; older ones are not listed (a diff needs both in the list). */
export const VERSIONS_LISTED = 100;
/** The longest summary the app writes. */
export const MAX_SUMMARY = 200;
/** A label: a short name, lower case (`production`, `staging`, `eu-test`). */
export const LABEL = /^[a-z][a-z0-9_-]{0,31}$/;
export const SUGGESTED_LABELS = ['production', 'staging'];

/** One write of a commit: `set` creates the document, `update` changes the named fields. */
export interface Write {
  kind: 'set' | 'update';
  path: string[];
  data: Record<string, unknown>;
}

const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function toVariables(raw: unknown): PromptVariable[] {
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

/** The run-shaping fields of a stored prompt or version document. */
export function fieldsOfData(d: DocumentData): VersionFields {
  return {
    content: String(d.content ?? ''),
    system_prompt: strOrNull(d.system_prompt) ?? '',
    variables: toVariables(d.variables),
    document_ids: strings(d.document_ids),
    top_k: Number.isInteger(d.top_k) ? (d.top_k as number) : null,
    retrieval_query_variable: strOrNull(d.retrieval_query_variable),
    preferred_model: strOrNull(d.preferred_model),
    fallback_models: strings(d.fallback_models),
  };
}

export function fieldsOfPrompt(p: Prompt): VersionFields {
  return {
    content: p.content,
    system_prompt: p.system_prompt ?? '',
    variables: p.variables,
    document_ids: p.document_ids ?? [],
    top_k: p.top_k ?? null,
    retrieval_query_variable: p.retrieval_query_variable ?? null,
    preferred_model: p.preferred_model ?? null,
    fallback_models: p.fallback_models ?? [],
  };
}

/** What a save of `draft` makes the next version hold: the draft's fields and the prompt's preferred model. */
export function fieldsOfDraft(draft: PromptDraft, preferredModel: string | null): VersionFields {
  const ids = draft.document_ids ?? [];
  return {
    content: draft.content,
    system_prompt: draft.system_prompt,
    variables: draft.variables,
    document_ids: ids,
    top_k: ids.length > 0 ? (draft.top_k ?? null) : null,
    retrieval_query_variable: ids.length > 0 ? (draft.retrieval_query_variable ?? null) : null,
    preferred_model: preferredModel,
    fallback_models: draft.fallback_models ?? [],
  };
}

export function toVersion(snap: { id: string; data: () => DocumentData | undefined }): PromptVersion {
  const d = snap.data() ?? {};
  return {
    ...fieldsOfData(d),
    number: Number(snap.id),
    created_by: strOrNull(d.created_by),
    createdAtMs: d.created_at instanceof Timestamp ? d.created_at.toMillis() : null,
    summary: strOrNull(d.summary),
  };
}

/** Version 1 of a prompt saved before versions were kept: its own stored fields. */
export function implicitVersion(p: Prompt): PromptVersion {
  return {
    ...fieldsOfPrompt(p),
    number: 1,
    created_by: p.owner_uid,
    createdAtMs: p.updatedAtMs,
    summary: null,
    implicit: true,
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

/**
 * The run-shaping fields as the prompt and its versions store them: each optional one only when
 * set, and on an update of the prompt the unset ones deleted (the rules refuse null for them).
 */
export function storedFields(f: VersionFields, update: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { content: f.content, variables: storedVariables(f.variables) };
  const put = (key: string, value: unknown, set: boolean) => {
    if (set) out[key] = value;
    else if (update) out[key] = deleteField();
  };
  const docs = f.document_ids.length > 0;
  put('system_prompt', f.system_prompt, f.system_prompt.trim() !== '');
  put('document_ids', f.document_ids, docs);
  put('top_k', f.top_k, docs && f.top_k !== null);
  put('retrieval_query_variable', f.retrieval_query_variable, docs && !!f.retrieval_query_variable);
  put('preferred_model', f.preferred_model, f.preferred_model !== null);
  put('fallback_models', f.fallback_models, f.fallback_models.length > 0);
  return out;
}

function versionDoc(f: VersionFields, uid: string, summary: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { ...storedFields(f, false), created_at: serverTimestamp(), created_by: uid };
  const note = (summary ?? '').trim();
  if (note !== '') out.summary = note.slice(0, MAX_SUMMARY);
  return out;
}

/** The first commit: the prompt document (version 1) and its version 1. */
export function planCreate(id: string, uid: string, draft: PromptDraft): Write[] {
  const fields = fieldsOfDraft(draft, null);
  return [
    {
      kind: 'set',
      path: ['prompts', id],
      data: {
        owner_uid: uid,
        title: draft.title,
        public: draft.public,
        ...storedFields(fields, false),
        version: 1,
        created_at: serverTimestamp(),
        updated_at: serverTimestamp(),
      },
    },
    { kind: 'set', path: ['prompts', id, 'versions', '1'], data: versionDoc(fields, uid, draft.summary) },
  ];
}

/** The stored fields of a version, in the order a version document lists them. */
const VERSIONED = [
  'content',
  'system_prompt',
  'variables',
  'document_ids',
  'top_k',
  'retrieval_query_variable',
  'preferred_model',
  'fallback_models',
];

/** Version 1 of a prompt without versions: its fields and `updated_at` exactly as read (the rules compare them). */
function firstVersionOf(prompt: Prompt, uid: string): Record<string, unknown> {
  const stored = prompt.stored ?? storedFields(fieldsOfPrompt(prompt), false);
  const out: Record<string, unknown> = Object.fromEntries(VERSIONED.filter((k) => k in stored).map((k) => [k, stored[k]]));
  return { ...out, created_at: stored.updated_at ?? serverTimestamp(), created_by: uid };
}

/**
 * The batch that makes `fields` the prompt's next version: the prompt's update (version n -> n+1)
 * and the new version; for a prompt without versions also its version 1, as it was.
 */
export function planSave(
  prompt: Prompt,
  fields: VersionFields,
  uid: string,
  { summary, title, isPublic }: { summary?: string; title?: string; isPublic?: boolean } = {},
): Write[] {
  const writes: Write[] = [];
  const current = prompt.version ?? null;
  if (current === null) {
    writes.push({ kind: 'set', path: ['prompts', prompt.id, 'versions', '1'], data: firstVersionOf(prompt, uid) });
  }
  const next = (current ?? 1) + 1;
  const promptData: Record<string, unknown> = { ...storedFields(fields, true), version: next, updated_at: serverTimestamp() };
  if (title !== undefined) promptData.title = title;
  if (isPublic !== undefined) promptData.public = isPublic;
  writes.push(
    { kind: 'update', path: ['prompts', prompt.id], data: promptData },
    { kind: 'set', path: ['prompts', prompt.id, 'versions', String(next)], data: versionDoc(fields, uid, summary) },
  );
  return writes;
}

/** Adds the writes to a batch (a caller may add its own: a comparison's winner). */
export function addWrites(db: Firestore, batch: WriteBatch, writes: Write[]): WriteBatch {
  for (const w of writes) {
    const ref = doc(db, w.path[0]!, ...w.path.slice(1));
    if (w.kind === 'set') batch.set(ref, w.data);
    else batch.update(ref, w.data);
  }
  return batch;
}

/** Commits the writes in one batch: all or none. */
export async function commitAll(db: Firestore, writes: Write[]): Promise<void> {
  await addWrites(db, writeBatch(db), writes).commit();
}

/** Creates a prompt with its version 1; returns its id. */
export async function createPrompt(db: Firestore, uid: string, draft: PromptDraft): Promise<string> {
  const id = doc(collection(db, 'prompts')).id;
  await commitAll(db, planCreate(id, uid, draft));
  return id;
}

/**
 * Saves an edit begun at version `base` as the prompt's next version (with the draft's summary).
 * When another save made a newer version meanwhile, it is refused here in words (the rules would
 * refuse it too: the next version's document exists by then).
 */
export async function updatePrompt(db: Firestore, prompt: Prompt, draft: PromptDraft, uid: string, base: number | null): Promise<void> {
  const latest = prompt.version ?? null;
  if (latest !== base) {
    throw new Error(
      `version ${latest ?? 1} was saved since you began editing version ${base ?? 1}. Copy your changes, cancel, and edit the latest.`,
    );
  }
  const fields = fieldsOfDraft(draft, prompt.preferred_model ?? null);
  await commitAll(db, planSave(prompt, fields, uid, { summary: draft.summary, title: draft.title, isPublic: draft.public }));
}

/** A new version equal to an old one; the title and visibility stay as they are. */
export async function restoreVersion(db: Firestore, prompt: Prompt, version: PromptVersion, uid: string): Promise<void> {
  await commitAll(db, planSave(prompt, version, uid, { summary: `Restored version ${version.number}` }));
}

/** Points `name` at `version` (moving it when it pointed elsewhere); only the label changes. */
export async function setLabel(db: Firestore, promptId: string, name: string, version: number): Promise<void> {
  if (!LABEL.test(name)) throw new Error(`"${name}" is not a label: a letter, then up to 31 letters, digits, - or _.`);
  await updateDoc(doc(db, 'prompts', promptId), new FieldPath('labels', name), version);
}

export async function removeLabel(db: Firestore, promptId: string, name: string): Promise<void> {
  await updateDoc(doc(db, 'prompts', promptId), new FieldPath('labels', name), deleteField());
}

/** The labels map as stored: only whole positive numbers count. */
export function labelsOf(raw: unknown): Record<string, number> {
  if (typeof raw !== 'object' || raw === null) return {};
  return Object.fromEntries(
    Object.entries(raw).filter((e): e is [string, number] => Number.isInteger(e[1]) && (e[1] as number) > 0),
  );
}

/** The labels pointing at each version. */
export function labelsByVersion(labels: Record<string, number>): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const [name, n] of Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))) {
    out.set(n, [...(out.get(n) ?? []), name]);
  }
  return out;
}

/** The prompt's last VERSIONS_LISTED stored versions, live, in no particular order. */
export function watchVersions(
  db: Firestore,
  promptId: string,
  onChange: (versions: PromptVersion[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  const q = query(collection(db, 'prompts', promptId, 'versions'), orderBy('created_at', 'desc'), limit(VERSIONS_LISTED));
  return onSnapshot(
    q,
    (snap) => onChange(snap.docs.map(toVersion).filter((v) => Number.isInteger(v.number) && v.number > 0)),
    onError,
  );
}

/** The versions to list: the stored ones newest first, or the implicit version 1 when none is stored yet. */
export function listedVersions(prompt: Prompt, stored: PromptVersion[]): PromptVersion[] {
  if (stored.length === 0 && (prompt.version ?? null) === null) return [implicitVersion(prompt)];
  return [...stored].sort((a, b) => b.number - a.number);
}

/** What a run sends to pick its version: nothing for the latest, else `version` or `label`. */
export type RunTarget = { kind: 'latest' } | { kind: 'version'; version: number } | { kind: 'label'; label: string };

export const LATEST: RunTarget = { kind: 'latest' };

export function targetFields(target: RunTarget): { version?: number; label?: string } {
  if (target.kind === 'version') return { version: target.version };
  if (target.kind === 'label') return { label: target.label };
  return {};
}

/** The version a target runs now (a label resolves on the server at admission; this is what it points at). */
export function targetVersion(prompt: Prompt, target: RunTarget): number | null {
  if (target.kind === 'version') return target.version;
  if (target.kind === 'label') return prompt.labels?.[target.label] ?? null;
  return prompt.version ?? 1;
}

/** The prompt as the chosen version has it, so the run form asks for that version's variables. */
export function promptAt(prompt: Prompt, versions: PromptVersion[], target: RunTarget): Prompt {
  const n = targetVersion(prompt, target);
  const v = versions.find((x) => x.number === n);
  if (!v || n === (prompt.version ?? 1)) return prompt;
  const { number: _n, created_by: _by, createdAtMs: _at, summary: _s, implicit: _i, ...fields } = v;
  return { ...prompt, ...fields, system_prompt: fields.system_prompt || undefined };
}

/** An id of the form Firestore gives (20 letters and digits), for a comparison of versions, which has no document. */
export function autoId(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  return Array.from(bytes, (b) => chars[b % chars.length]).join('');
}

/** Several versions' variables as one form: each name once, the first declaration winning. */
export function unionPrompt(prompt: Prompt, versions: PromptVersion[]): Prompt {
  const seen = new Set<string>();
  const variables = versions.flatMap((v) => v.variables).filter((v) => !seen.has(v.name) && seen.add(v.name));
  return {
    ...prompt,
    variables,
    content: versions.map((v) => v.content).join('\n'),
    system_prompt: versions.map((v) => v.system_prompt).join('\n'),
  };
}
