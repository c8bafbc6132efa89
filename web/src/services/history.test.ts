import { describe, expect, it } from 'vitest';
import { recordOf } from '../testing/records';
import type { Prompt } from '../types';
import { historyItems, matchesQuery } from './history';

const PROMPT: Prompt = {
  id: 'p1',
  owner_uid: 'u1',
  title: 'Harbour guide',
  content: 'Describe {{place}}',
  variables: [],
  public: false,
  updatedAtMs: null,
};

// Newest first, as the listener gives them.
const ROWS = [
  recordOf('t3', { conversation_id: 'c1', parent_execution_id: 't2', turn: 3, message: 'and neap tides?' }),
  recordOf('x2', { comparison_id: 'cmp', conversation_id: 'x2' }),
  recordOf('solo', { prompt_id: 'gone', output: 'The keeper was Grace Darling.' }),
  recordOf('t2', { conversation_id: 'c1', parent_execution_id: 'c1', turn: 2, message: 'and the moon?' }),
  recordOf('x1', { comparison_id: 'cmp', conversation_id: 'x1' }),
  recordOf('c1', { conversation_id: 'c1', turn: 1, output: 'Tides rise twice a day.' }),
];

describe('historyItems', () => {
  it('makes one item of a conversation and one of a comparison, each where its newest run is', () => {
    const items = historyItems(ROWS);
    expect(items.map((i) => `${i.kind}:${i.id}`)).toEqual(['conversation:c1', 'comparison:cmp', 'conversation:solo']);
    expect(items[0]!.records.map((r) => r.id)).toEqual(['t3', 't2', 'c1']);
    expect(items[1]!.records.map((r) => r.id)).toEqual(['x1', 'x2']);
  });

  it('puts the follow-ups of a comparison column in a conversation of their own', () => {
    const followUp = recordOf('f1', { conversation_id: 'x1', parent_execution_id: 'x1', turn: 2, message: 'shorter' });
    const items = historyItems([followUp, ...ROWS]);
    expect(items[0]).toMatchObject({ kind: 'conversation', id: 'x1' });
    expect(items.find((i) => i.kind === 'comparison')!.records).toHaveLength(2);
  });
});

describe('matchesQuery', () => {
  const [conversation, , solo] = historyItems(ROWS);

  it('finds by the prompt’s title and text, any case, every word', () => {
    expect(matchesQuery(conversation!, PROMPT, 'harbour GUIDE')).toBe(true);
    expect(matchesQuery(conversation!, PROMPT, 'describe')).toBe(true);
    expect(matchesQuery(conversation!, PROMPT, 'harbour lighthouse')).toBe(false);
  });

  it('finds by the runs’ own text: answers and follow-ups, with no prompt (a deleted one)', () => {
    expect(matchesQuery(conversation!, undefined, 'neap')).toBe(true);
    expect(matchesQuery(solo!, undefined, 'grace darling')).toBe(true);
    expect(matchesQuery(solo!, undefined, 'harbour')).toBe(false);
  });

  it('keeps everything for an empty query', () => {
    expect(matchesQuery(solo!, undefined, '   ')).toBe(true);
  });
});
