import { useEffect, useRef } from 'react';
import type { ExecutionRecord } from '../types';

/**
 * The run to show again when a page opens on a prompt (a reload, another tab): the newest of the
 * user's runs of it still streaming that asked to be resumable. A comparison's columns are not
 * reattached, nor a conversation's follow-up (its answer belongs to its run's page, not to the
 * prompt's run form); each stays in the history until it ends.
 */
export function runToReattach(records: readonly ExecutionRecord[]): ExecutionRecord | null {
  return (
    records.find((r) => r.status === 'streaming' && r.resumable === true && !r.comparison_id && (r.turn ?? 1) <= 1) ?? null
  );
}

/** On a conversation's page: its turn still streaming, whichever turn it is. */
export function turnToReattach(records: readonly ExecutionRecord[]): ExecutionRecord | null {
  return records.find((r) => r.status === 'streaming' && r.resumable === true) ?? null;
}

/**
 * Once per mount, the first time the user's runs of the prompt are known (the history listener's
 * first rows), reattaches to one still streaming when `idle`. After that a run streaming is one
 * this page started, or chose not to show.
 */
export function useReattach(
  records: readonly ExecutionRecord[],
  idle: boolean,
  attach: (executionId: string) => void,
  pick: (records: readonly ExecutionRecord[]) => ExecutionRecord | null = runToReattach,
): void {
  const decided = useRef(false);
  useEffect(() => {
    // An empty list is a prompt with no runs, or rows not loaded yet: either way nothing to attach.
    if (decided.current || records.length === 0) return;
    decided.current = true;
    const run = idle ? pick(records) : null;
    if (run !== null) attach(run.id);
  }, [records, idle, attach]);
}
