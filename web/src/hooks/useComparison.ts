import { useCallback, useRef, useState } from 'react';
import { MAX_COMPARED } from '../services/comparisons';
import type { ExecuteRequest } from '../types';
import { IDLE_STATE, isBusy, type ExecutionState } from './executionState';
import { useStreamingExecution, type ExecuteOptions } from './useStreamingExecution';

const OPENING: ExecutionState = { ...IDLE_STATE, phase: 'connecting' };

export interface ComparisonColumn {
  /** The model this column asked for. */
  model: string;
  /** The prompt version it asked for, in a comparison of versions. */
  version?: number;
  state: ExecutionState;
}

export interface StartComparison extends ExecuteOptions {
  /** Writes `comparisons/{id}` and returns its id; no run starts before it resolves. */
  open: (models: string[]) => Promise<string>;
  /** The request of column `index`, without the comparison id (the hook adds it). */
  requestFor: (model: string, index: number) => ExecuteRequest;
  /** A comparison of versions (issue 27): the version of each column, all on one model. */
  versions?: number[];
}

export interface ComparisonRun {
  /** Null before the first comparison, and while its document is being written. */
  comparisonId: string | null;
  columns: ComparisonColumn[];
  /** Writing the comparison document, before any run starts. */
  opening: boolean;
  /** Why the comparison could not start (its document was refused); the columns never ran. */
  openError: string | null;
  busy: boolean;
  start: (models: string[], options: StartComparison) => Promise<void>;
  cancel: (index: number) => void;
  cancelAll: () => void;
}

/**
 * Runs one prompt on 2–4 models at once: one useStreamingExecution per column, each its own
 * request and stream carrying the same comparison id, so a slow or failing model holds up no
 * other column and cancelling one closes only its request.
 */
export function useComparison(): ComparisonRun {
  // A fixed number of hooks (React needs the same calls each render); a comparison uses the first N.
  const slots = [useStreamingExecution(), useStreamingExecution(), useStreamingExecution(), useStreamingExecution()];
  const slotsRef = useRef(slots);
  slotsRef.current = slots;
  const [run, setRun] = useState<{ id: string | null; models: string[]; versions?: number[] }>({ id: null, models: [] });
  const [opening, setOpening] = useState(false);
  const [openError, setOpenError] = useState<string | null>(null);
  const generation = useRef(0);

  const cancel = useCallback((index: number) => slotsRef.current[index]?.cancel(), []);
  const cancelAll = useCallback(() => {
    generation.current += 1;
    setOpening(false);
    // Cancelled before any run started: nothing to show.
    setRun((r) => (r.id === null ? { id: null, models: [] } : r));
    for (const slot of slotsRef.current) slot.cancel();
  }, []);

  const start = useCallback(async (models: string[], { open, requestFor, versions, ...options }: StartComparison) => {
    if (models.length > MAX_COMPARED) throw new Error(`at most ${MAX_COMPARED} models`);
    const mine = ++generation.current;
    for (const slot of slotsRef.current) slot.cancel();
    setOpenError(null);
    setOpening(true);
    setRun({ id: null, models, versions });
    let id: string;
    try {
      id = await open(models);
    } catch (error) {
      if (generation.current === mine) {
        setOpening(false);
        setOpenError(error instanceof Error ? error.message : String(error));
      }
      return;
    }
    // Cancelled (or replaced) while the document was being written: start nothing.
    if (generation.current !== mine) return;
    setOpening(false);
    setRun({ id, models, versions });
    await Promise.all(
      models.map((model, i) => slotsRef.current[i]!.execute({ ...requestFor(model, i), model, comparison_id: id }, options)),
    );
  }, []);

  // While the document is written the slots still hold the last comparison's runs.
  const columns = run.models.map((model, i) => ({
    model,
    version: run.versions?.[i],
    state: opening ? OPENING : (slots[i]! as ExecutionState),
  }));
  return {
    comparisonId: run.id,
    columns,
    opening,
    openError,
    busy: opening || columns.some((c) => isBusy(c.state.phase)),
    start,
    cancel,
    cancelAll,
  };
}
