/**
 * Firestore listeners behind the pages with a URL (issue 25): one prompt, one run and its
 * conversation, one comparison, and the history across prompts. Each query filters on
 * `owner_uid == uid`, which the rules require; the conversation's and comparison's are equality
 * filters only, so they need no composite index.
 */
import {
  collection,
  doc,
  limit,
  onSnapshot,
  orderBy,
  query,
  where,
  type DocumentData,
  type Firestore,
  type Unsubscribe,
} from 'firebase/firestore';
import { toComparison } from './comparisons';
import { toExecution, toPrompt } from './prompts';
import type { Comparison, ExecutionRecord, Prompt } from '../types';

/**
 * One document, or null when it is absent or the rules refuse it: both read "not found", so a
 * link to another user's private run says no more than a link to none.
 */
function watchDoc<T>(
  db: Firestore,
  path: [string, string],
  read: (snap: { id: string; data: () => DocumentData | undefined }) => T,
  onChange: (value: T | null) => void,
): Unsubscribe {
  return onSnapshot(
    doc(db, ...path),
    (snap) => onChange(snap.exists() ? read(snap) : null),
    () => onChange(null),
  );
}

export const watchPrompt = (db: Firestore, id: string, onChange: (p: Prompt | null) => void): Unsubscribe =>
  watchDoc(db, ['prompts', id], toPrompt, onChange);

export const watchExecution = (
  db: Firestore,
  id: string,
  onChange: (r: ExecutionRecord | null) => void,
): Unsubscribe => watchDoc(db, ['executions', id], toExecution, onChange);

export const watchComparison = (db: Firestore, id: string, onChange: (c: Comparison | null) => void): Unsubscribe =>
  watchDoc(db, ['comparisons', id], toComparison, onChange);

/** Every run of the user carrying `field == value` (a conversation's turns, a comparison's columns). */
export function watchRunsWhere(
  db: Firestore,
  uid: string,
  field: 'conversation_id' | 'comparison_id',
  value: string,
  onChange: (rows: ExecutionRecord[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  const q = query(collection(db, 'executions'), where('owner_uid', '==', uid), where(field, '==', value), limit(500));
  return onSnapshot(q, (snap) => onChange(snap.docs.map(toExecution)), onError);
}

/** The user's last `count` runs of every prompt, newest first (index: owner_uid, created_at). */
export function watchAllExecutions(
  db: Firestore,
  uid: string,
  count: number,
  onChange: (rows: ExecutionRecord[]) => void,
  onError: (error: Error) => void,
): Unsubscribe {
  const q = query(collection(db, 'executions'), where('owner_uid', '==', uid), orderBy('created_at', 'desc'), limit(count));
  return onSnapshot(q, (snap) => onChange(snap.docs.map(toExecution)), onError);
}
