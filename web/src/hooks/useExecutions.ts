import { useEffect, useState } from 'react';
import { db } from '../firebase';
import { watchExecutions } from '../services/prompts';
import type { ExecutionRecord } from '../types';

export interface Executions {
  /** Null until the first snapshot. */
  rows: ExecutionRecord[] | null;
  error: string | null;
}

/** The user's last runs of one prompt, kept live by a Firestore listener. */
export function useExecutions(uid: string, promptId: string): Executions {
  const [state, setState] = useState<Executions & { key: string }>({ rows: null, error: null, key: '' });
  const key = `${uid}/${promptId}`;

  useEffect(
    () =>
      watchExecutions(
        db,
        uid,
        promptId,
        (rows) => setState({ rows, error: null, key }),
        (e) => setState((s) => ({ ...s, error: e.message, key })),
      ),
    [uid, promptId, key],
  );

  // Rows of the prompt shown before are not this prompt's.
  return state.key === key ? { rows: state.rows, error: state.error } : { rows: null, error: null };
}
