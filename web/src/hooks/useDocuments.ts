import { useCallback, useEffect, useRef, useState } from 'react';
import { db } from '../firebase';
import { uploadDocument, watchDocuments, type IngestResult, type UploadProgress } from '../services/documents';
import { ExecutionError } from '../services/errors';
import type { KbDocument } from '../types';

export interface Documents {
  /** Null until the first snapshot. */
  rows: KbDocument[] | null;
  error: string | null;
}

/** The user's knowledge-base documents, kept live by one Firestore listener. */
export function useDocuments(uid: string): Documents {
  const [state, setState] = useState<Documents>({ rows: null, error: null });
  useEffect(
    () =>
      watchDocuments(
        db,
        uid,
        (rows) => setState({ rows, error: null }),
        (e) => setState((s) => ({ ...s, error: e.message })),
      ),
    [uid],
  );
  return state;
}

/** One file on its way: sending, indexing, then done or failed. */
export interface Upload {
  key: number;
  filename: string;
  size: number;
  progress: UploadProgress | null;
  result: IngestResult | null;
  error: ExecutionError | null;
}

export interface Uploads {
  items: Upload[];
  add: (files: File[]) => void;
  dismiss: (key: number) => void;
}

/**
 * Uploads files one after another (each embeds on the server, and a user's uploads share one
 * budget). Lives above the pages, so switching to the prompts does not drop an upload's
 * progress; unmounting (signing out) stops waiting for the answers.
 */
export function useUploads(getIdToken: () => Promise<string>): Uploads {
  const [items, setItems] = useState<Upload[]>([]);
  const queue = useRef<Promise<void>>(Promise.resolve());
  const nextKey = useRef(1);
  const controller = useRef<AbortController | null>(null);
  const tokenRef = useRef(getIdToken);
  useEffect(() => {
    tokenRef.current = getIdToken;
  });

  useEffect(() => {
    const current = new AbortController();
    controller.current = current;
    return () => current.abort();
  }, []);

  const patch = useCallback((key: number, change: Partial<Upload>) => {
    setItems((list) => list.map((u) => (u.key === key ? { ...u, ...change } : u)));
  }, []);

  const add = useCallback(
    (files: File[]) => {
      for (const file of files) {
        const key = nextKey.current++;
        setItems((list) => [
          ...list,
          { key, filename: file.name, size: file.size, progress: null, result: null, error: null },
        ]);
        queue.current = queue.current.then(async () => {
          const signal = controller.current?.signal;
          if (!signal || signal.aborted) return;
          try {
            const idToken = await tokenRef.current().catch(() => '');
            const result = await uploadDocument(file, {
              idToken,
              signal,
              onProgress: (progress) => patch(key, { progress }),
            });
            patch(key, { result, progress: null });
          } catch (error) {
            if (signal.aborted) return;
            const err =
              error instanceof ExecutionError ? error : new ExecutionError('internal', String(error), { cause: error });
            patch(key, { error: err, progress: null });
          }
        });
      }
    },
    [patch],
  );

  const dismiss = useCallback((key: number) => setItems((list) => list.filter((u) => u.key !== key)), []);

  return { items, add, dismiss };
}
