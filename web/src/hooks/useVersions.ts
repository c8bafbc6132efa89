import { useEffect, useState } from 'react';
import { db } from '../firebase';
import { listedVersions, watchVersions } from '../services/versions';
import type { Prompt, PromptVersion } from '../types';

export interface Versions {
  /** Newest first; null until the first snapshot. */
  rows: PromptVersion[] | null;
  error: string | null;
}

/** A prompt's versions (issue 27), kept live by one Firestore listener. */
export function useVersions(prompt: Prompt): Versions {
  const [state, setState] = useState<{ stored: PromptVersion[] | null; error: string | null; key: string }>({
    stored: null,
    error: null,
    key: '',
  });
  const key = prompt.id;
  useEffect(
    () =>
      watchVersions(
        db,
        key,
        (stored) => setState({ stored, error: null, key }),
        (e) => setState((s) => ({ ...s, error: e.message, key })),
      ),
    [key],
  );
  if (state.key !== key) return { rows: null, error: null };
  return { rows: state.stored === null ? null : listedVersions(prompt, state.stored), error: state.error };
}
