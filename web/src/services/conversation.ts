/**
 * Conversations (issue 25): a run and its follow-ups are execution records linked by
 * `parent_execution_id` under one `conversation_id` (docs/api.md). This module turns a
 * conversation's records into the thread shown (one version of each turn) and builds the
 * requests that continue, regenerate or edit it. Pure: no Firestore, no React.
 */
import type { ExecuteRequest, ExecutionRecord } from '../types';

/** The server bounds a follow-up like a variable's value (`MAX_VARIABLE_CHARS`, 20,000). */
export const MAX_MESSAGE_CHARS = 20_000;

export interface TurnLinks {
  /** The first turn's id; a record older than the fields is the first turn of its own. */
  conversationId: string;
  parentId: string | null;
  turn: number;
  message: string | null;
}

export function linksOf(record: ExecutionRecord): TurnLinks {
  return {
    conversationId: record.conversation_id ?? record.id,
    parentId: record.parent_execution_id ?? null,
    turn: record.turn ?? 1,
    message: record.message ?? null,
  };
}

/** The versions of one turn share a parent; the first turn's "parent" is this key. */
const ROOT = '';
export const parentKey = (parentId: string | null): string => parentId ?? ROOT;

// Oldest first; a record still waiting for its server timestamp is the newest.
function byAge(a: ExecutionRecord, b: ExecutionRecord): number {
  const ta = a.createdAtMs ?? Number.MAX_SAFE_INTEGER;
  const tb = b.createdAtMs ?? Number.MAX_SAFE_INTEGER;
  if (ta !== tb) return ta - tb;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Each parent's children (the versions of the turn after it), oldest first. */
export function childrenOf(records: readonly ExecutionRecord[]): Map<string, ExecutionRecord[]> {
  const out = new Map<string, ExecutionRecord[]>();
  for (const r of records) {
    const key = parentKey(linksOf(r).parentId);
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  for (const list of out.values()) list.sort(byAge);
  return out;
}

export interface ThreadTurn {
  record: ExecutionRecord;
  /** Every version of this turn (the records sharing its parent), oldest first. */
  versions: ExecutionRecord[];
  /** This version's position among them. */
  index: number;
}

/** The version picked at a turn, by the key of its parent. */
export type Choices = Readonly<Record<string, string>>;

/**
 * The thread shown: from the first turn down, at each turn the version chosen, else the one on
 * the way to `focus` (a link to an earlier version opens that version), else the newest.
 */
export function threadOf(
  records: readonly ExecutionRecord[],
  { focus = null, chosen = {} }: { focus?: string | null; chosen?: Choices } = {},
): ThreadTurn[] {
  const children = childrenOf(records);
  const byId = new Map(records.map((r) => [r.id, r]));
  const onPath = new Set<string>();
  for (let id = focus; id !== null && !onPath.has(id); ) {
    onPath.add(id);
    const r = byId.get(id);
    id = r ? linksOf(r).parentId : null;
  }
  const thread: ThreadTurn[] = [];
  const seen = new Set<string>();
  for (let key = ROOT; ; ) {
    const versions = children.get(key) ?? [];
    const newest = versions[versions.length - 1];
    if (newest === undefined) break;
    const pick = versions.find((v) => v.id === chosen[key]) ?? versions.find((v) => onPath.has(v.id)) ?? newest;
    // A cycle is no conversation the backend writes; stop rather than loop.
    if (seen.has(pick.id)) break;
    seen.add(pick.id);
    thread.push({ record: pick, versions, index: versions.indexOf(pick) });
    key = pick.id;
  }
  return thread;
}

/** A turn asked for whose record the listener has not delivered yet. */
export interface PendingTurn {
  parentId: string | null;
  /** The user's text shown above the answer (null for the first turn). */
  message: string | null;
}

/**
 * Where a turn in flight goes: the thread up to its parent, then the live turn; once its record
 * has arrived (its id known and the listener caught up), the thread as it is, even when another
 * version of that turn is picked.
 */
export function threadWithPending(
  thread: ThreadTurn[],
  pending: PendingTurn | null,
  liveId: string | null,
  records: readonly ExecutionRecord[],
): { turns: ThreadTurn[]; showPending: boolean } {
  if (pending === null) return { turns: thread, showPending: false };
  if (liveId !== null && records.some((r) => r.id === liveId)) return { turns: thread, showPending: false };
  const cut = pending.parentId === null ? 0 : thread.findIndex((t) => t.record.id === pending.parentId) + 1;
  return { turns: thread.slice(0, cut), showPending: true };
}

/** A follow-up to `last`, the last turn shown. */
export function followUpRequest(last: ExecutionRecord, message: string, model: string): ExecuteRequest {
  return {
    prompt_id: last.prompt_id,
    conversation_id: linksOf(last).conversationId,
    parent_execution_id: last.id,
    message,
    model,
  };
}

/**
 * Another answer to the turn's question. The server answers a regenerate (same parent, no
 * message) with the text of the parent's newest child, so an older version shown is asked again
 * with its own text, as an edit would. The first turn has no parent: regenerating it is a new
 * run of the prompt with the same values (a new conversation).
 */
export function regenerateRequest(turn: ExecutionRecord, model: string, newest = true): ExecuteRequest {
  const { conversationId, parentId, message } = linksOf(turn);
  if (parentId === null) return { prompt_id: turn.prompt_id, variables: turn.variables, model };
  if (!newest && message !== null) return editRequest(turn, message, model);
  return {
    prompt_id: turn.prompt_id,
    conversation_id: conversationId,
    parent_execution_id: parentId,
    regenerate: true,
    model,
  };
}

/** The statuses a turn may be followed from (the server's): an error is regenerated instead. */
export const FOLLOWABLE: ReadonlySet<string> = new Set(['completed', 'cancelled', 'interrupted']);

/** The turn's question rewritten: a new version of the turn, under the same parent. */
export function editRequest(turn: ExecutionRecord, message: string, model: string): ExecuteRequest {
  const { conversationId, parentId } = linksOf(turn);
  if (parentId === null) throw new Error('the first turn is the prompt itself: edit the prompt or its variables');
  return { prompt_id: turn.prompt_id, conversation_id: conversationId, parent_execution_id: parentId, message, model };
}

/** What is wrong with a follow-up's text before it is sent, or null. */
export function messageProblem(message: string): string | null {
  if (message.trim() === '') return 'Write a message first.';
  if (message.length > MAX_MESSAGE_CHARS) {
    return `A message is limited to ${MAX_MESSAGE_CHARS.toLocaleString('en-US')} characters (this one has ${message.length.toLocaleString('en-US')}).`;
  }
  return null;
}
