import { describe, expect, it } from 'vitest';
import { recordOf } from '../testing/records';
import type { ExecutionRecord } from '../types';
import {
  editRequest,
  followUpRequest,
  MAX_MESSAGE_CHARS,
  messageProblem,
  regenerateRequest,
  threadOf,
  threadWithPending,
} from './conversation';

/** A turn of conversation c1: `parent` null for the first. */
function turn(id: string, parent: string | null, n: number, createdAtMs: number | null, message: string | null = null): ExecutionRecord {
  return recordOf(id, {
    conversation_id: 'c1',
    parent_execution_id: parent,
    turn: n,
    message,
    createdAtMs,
    variables: { topic: 'tides' },
    requested_model: 'm/a',
  });
}

// c1 -> t2 -> t3a, t3b (regenerated), t3c (edited); t3a -> t4 (a follow-up on the first version).
const C1 = turn('c1', null, 1, 1000);
const T2 = turn('t2', 'c1', 2, 2000, 'and the moon?');
const T3A = turn('t3a', 't2', 3, 3000, 'spring tides?');
const T3B = turn('t3b', 't2', 3, 4000, 'spring tides?');
const T3C = turn('t3c', 't2', 3, 5000, 'neap tides?');
const T4 = turn('t4', 't3a', 4, 3500, 'why?');
const ALL = [T4, T3C, C1, T3A, T2, T3B];
const ids = (thread: ReturnType<typeof threadOf>) => thread.map((t) => t.record.id);

describe('threadOf', () => {
  it('shows the newest version of each turn by default, whatever order the records come in', () => {
    const thread = threadOf(ALL);
    expect(ids(thread)).toEqual(['c1', 't2', 't3c']);
    expect(thread[2]).toMatchObject({ index: 2 });
    expect(thread[2]!.versions.map((v) => v.id)).toEqual(['t3a', 't3b', 't3c']);
  });

  it('follows a link to an earlier version, and the turns after it', () => {
    expect(ids(threadOf(ALL, { focus: 't3a' }))).toEqual(['c1', 't2', 't3a', 't4']);
    expect(ids(threadOf(ALL, { focus: 't4' }))).toEqual(['c1', 't2', 't3a', 't4']);
  });

  it('shows the version picked over the link and the default', () => {
    expect(ids(threadOf(ALL, { focus: 't4', chosen: { t2: 't3b' } }))).toEqual(['c1', 't2', 't3b']);
  });

  it('counts a record still waiting for its timestamp as the newest', () => {
    const fresh = turn('t3d', 't2', 3, null, 'again');
    expect(ids(threadOf([...ALL, fresh]))).toEqual(['c1', 't2', 't3d']);
  });

  it('reads a record older than the fields as a first turn of its own', () => {
    const old = recordOf('old', { createdAtMs: 1 });
    expect(ids(threadOf([old]))).toEqual(['old']);
  });

  it('stops at a cycle instead of looping', () => {
    const a = turn('a', 'b', 1, 1);
    const b = turn('b', 'a', 2, 2);
    const root = turn('r', null, 1, 0);
    expect(ids(threadOf([root, a, b]))).toEqual(['r']);
  });
});

describe('threadWithPending', () => {
  const thread = threadOf(ALL, { focus: 't3a' });

  it('cuts the thread after the parent of a turn in flight and shows it there', () => {
    const { turns, showPending } = threadWithPending(thread, { parentId: 't2', message: 'edited' }, null, ALL);
    expect(turns.map((t) => t.record.id)).toEqual(['c1', 't2']);
    expect(showPending).toBe(true);
  });

  it('shows only the turn in flight when it starts a conversation', () => {
    expect(threadWithPending(thread, { parentId: null, message: null }, null, ALL)).toEqual({ turns: [], showPending: true });
  });

  it('waits for the record when the id is known but the listener has not caught up', () => {
    const { showPending } = threadWithPending(thread, { parentId: 't3a', message: 'next' }, 't5', ALL);
    expect(showPending).toBe(true);
  });

  it('gives way to the record once it arrived, even with another version picked', () => {
    expect(threadWithPending(thread, { parentId: 't3a', message: 'why?' }, 't4', ALL)).toEqual({ turns: thread, showPending: false });
    const other = threadOf(ALL, { chosen: { t2: 't3b' } });
    expect(threadWithPending(other, { parentId: 't2', message: 'neap?' }, 't3c', ALL)).toEqual({ turns: other, showPending: false });
  });
});

describe('requests', () => {
  it('continues after the last turn shown, in its conversation', () => {
    expect(followUpRequest(T3B, 'more', 'm/b')).toEqual({
      prompt_id: 'p1',
      conversation_id: 'c1',
      parent_execution_id: 't3b',
      message: 'more',
      model: 'm/b',
    });
  });

  it('regenerates a later turn under the same parent with no new message', () => {
    expect(regenerateRequest(T3A, 'm/b')).toEqual({
      prompt_id: 'p1',
      conversation_id: 'c1',
      parent_execution_id: 't2',
      regenerate: true,
      model: 'm/b',
    });
  });

  it('asks an older version again with its own text (the server regenerates the newest one’s)', () => {
    expect(regenerateRequest(T3A, 'm/b', false)).toEqual({
      prompt_id: 'p1',
      conversation_id: 'c1',
      parent_execution_id: 't2',
      message: 'spring tides?',
      model: 'm/b',
    });
  });

  it('regenerates a first turn as a new run of the prompt with its values', () => {
    expect(regenerateRequest(C1, 'm/b')).toEqual({ prompt_id: 'p1', variables: { topic: 'tides' }, model: 'm/b' });
  });

  it('edits a turn as a new message under the same parent; a first turn cannot be edited', () => {
    expect(editRequest(T3A, 'neap?', 'm/a')).toEqual({
      prompt_id: 'p1',
      conversation_id: 'c1',
      parent_execution_id: 't2',
      message: 'neap?',
      model: 'm/a',
    });
    expect(() => editRequest(C1, 'x', 'm/a')).toThrow(/first turn/);
  });

  it('refuses an empty message and one longer than the server takes', () => {
    expect(messageProblem('  \n')).toMatch(/Write a message/);
    expect(messageProblem('x'.repeat(MAX_MESSAGE_CHARS))).toBeNull();
    expect(messageProblem('x'.repeat(MAX_MESSAGE_CHARS + 1))).toMatch(/20,000/);
  });
});
