import { useEffect, useState } from 'react';
import type { Unsubscribe } from 'firebase/firestore';
import { db } from '../firebase';
import { watchAllExecutions, watchComparison, watchExecution, watchPrompt, watchRunsWhere } from '../services/runs';
import type { Comparison, ExecutionRecord, Prompt } from '../types';

/**
 * A listener's latest value: undefined until its first answer, and again as soon as `key`
 * changes (a value of the page shown before is never the new page's).
 */
function useListener<T>(key: string | null, subscribe: (onValue: (value: T) => void) => Unsubscribe): T | undefined {
  const [state, setState] = useState<{ key: string | null; value: T | undefined }>({ key: null, value: undefined });
  useEffect(() => {
    if (key === null) return undefined;
    return subscribe((value) => setState({ key, value }));
    // `subscribe` is a new closure each render; `key` names everything it reads.
  }, [key]);
  return state.key === key ? state.value : undefined;
}

/** A prompt by id: undefined while loading, null when absent or not readable. */
export const usePrompt = (id: string | null): Prompt | null | undefined =>
  useListener(id, (set) => watchPrompt(db, id!, set));

/** A run's record: undefined while loading, null when absent or another user's. */
export const useExecution = (id: string | null): ExecutionRecord | null | undefined =>
  useListener(id, (set) => watchExecution(db, id!, set));

export const useComparisonDoc = (id: string | null): Comparison | null | undefined =>
  useListener(id, (set) => watchComparison(db, id!, set));

export interface RunList {
  /** Undefined until the first snapshot. */
  rows: ExecutionRecord[] | undefined;
  error: string | null;
}

type Listed = { rows: ExecutionRecord[]; error: null } | { rows: undefined; error: string };

function toRunList(value: Listed | undefined): RunList {
  return value ?? { rows: undefined, error: null };
}

/** The user's runs sharing a conversation or a comparison id, live. */
export function useRunsWhere(uid: string, field: 'conversation_id' | 'comparison_id', value: string | null): RunList {
  const key = value === null ? null : `${uid}/${field}/${value}`;
  return toRunList(
    useListener<Listed>(key, (set) =>
      watchRunsWhere(db, uid, field, value!, (rows) => set({ rows, error: null }), (e) => set({ rows: undefined, error: e.message })),
    ),
  );
}

/** The user's last `count` runs across prompts, live. */
export function useAllExecutions(uid: string, count: number): RunList {
  return toRunList(
    useListener<Listed>(`${uid}/all/${count}`, (set) =>
      watchAllExecutions(db, uid, count, (rows) => set({ rows, error: null }), (e) => set({ rows: undefined, error: e.message })),
    ),
  );
}
