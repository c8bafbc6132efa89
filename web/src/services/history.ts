/**
 * The history across prompts (issue 25): the user's runs as a person reads them. A comparison is
 * one item (groupHistory), a conversation is one item holding all its turns; a run of a deleted
 * prompt stays, found by its own text.
 */
import { groupHistory, type HistoryEntry } from './comparisons';
import { linksOf } from './conversation';
import type { ExecutionRecord, Prompt } from '../types';

export type HistoryItem =
  /** A conversation's turns that the listener holds, newest first. */
  | { kind: 'conversation'; id: string; records: ExecutionRecord[] }
  | Extract<HistoryEntry, { kind: 'comparison' }>;

/** `rows` newest first; each item sits where its newest run is. */
export function historyItems(rows: ExecutionRecord[]): HistoryItem[] {
  const items: HistoryItem[] = [];
  const conversations = new Map<string, ExecutionRecord[]>();
  for (const entry of groupHistory(rows)) {
    if (entry.kind === 'comparison') {
      items.push(entry);
      continue;
    }
    const id = linksOf(entry.record).conversationId;
    const known = conversations.get(id);
    if (known) {
      known.push(entry.record);
      continue;
    }
    const records = [entry.record];
    conversations.set(id, records);
    items.push({ kind: 'conversation', id, records });
  }
  return items;
}

/** The prompt an item ran (its runs all share it). */
export const promptIdOf = (item: HistoryItem): string => item.records[0]?.prompt_id ?? '';

/**
 * True when every word of `query` is in the prompt's title or text, or in the item's own text
 * (answers, follow-ups, variables, models); case does not matter.
 */
export function matchesQuery(item: HistoryItem, prompt: Prompt | undefined, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) return true;
  const text = [
    prompt?.title ?? '',
    prompt?.content ?? '',
    ...item.records.flatMap((r) => [r.output, r.message ?? '', r.model, ...Object.values(r.variables)]),
  ]
    .join('\n')
    .toLowerCase();
  return words.every((w) => text.includes(w));
}
