import { useEffect, useState } from 'react';
import { db } from '../firebase';
import { watchComparisons } from '../services/comparisons';
import type { Comparison } from '../types';

/** The user's last comparisons of one prompt (models, winner), kept live by a Firestore listener. */
export function useComparisons(uid: string, promptId: string): Comparison[] {
  const [state, setState] = useState<{ rows: Comparison[]; key: string }>({ rows: [], key: '' });
  const key = `${uid}/${promptId}`;
  useEffect(
    () =>
      watchComparisons(
        db,
        uid,
        promptId,
        (rows) => setState({ rows, key }),
        // The history still shows the runs; only the winners are missing then.
        () => setState({ rows: [], key }),
      ),
    [uid, promptId, key],
  );
  return state.key === key ? state.rows : [];
}
