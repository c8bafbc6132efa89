import { describe, expect, it } from 'vitest';
import { recordOf } from '../testing/records';
import { attemptsOf, passedOver } from './attempts';
import {
  columnFallbacks,
  defaultCompared,
  defaultModelFor,
  groupHistory,
  orderColumns,
  preferredModelWrites,
  tokensPerSecond,
} from './comparisons';
import type { Prompt } from '../types';

const AVAILABLE = ['m/a', 'm/b', 'm/c', 'm/d', 'm/e'];

const record = recordOf;

describe('groupHistory', () => {
  it("makes one entry of a comparison's runs, where its newest run is, oldest run first", () => {
    const rows = [
      record('single-new', { createdAtMs: 50 }),
      record('c1-b', { comparison_id: 'c1', createdAtMs: 41 }),
      record('c1-a', { comparison_id: 'c1', createdAtMs: 40 }),
      record('single-mid', { createdAtMs: 30 }),
      record('c2-a', { comparison_id: 'c2', createdAtMs: 20 }),
      record('c1-c', { comparison_id: 'c1', createdAtMs: 39 }),
    ];
    const entries = groupHistory(rows);
    expect(entries.map((e) => (e.kind === 'run' ? e.record.id : e.id))).toEqual(['single-new', 'c1', 'single-mid', 'c2']);
    const c1 = entries[1]!;
    expect(c1.kind === 'comparison' && c1.records.map((r) => r.id)).toEqual(['c1-c', 'c1-a', 'c1-b']);
    expect(c1.kind === 'comparison' && c1.createdAtMs).toBe(39);
  });

  it('keeps runs without a comparison id as they are', () => {
    const rows = [record('a'), record('b', { comparison_id: null }), record('c', { comparison_id: '' })];
    expect(groupHistory(rows).map((e) => e.kind)).toEqual(['run', 'run', 'run']);
  });
});

describe('orderColumns', () => {
  it("follows the comparison's models, by the model each run asked for", () => {
    const rows = [
      record('x', { requested_model: 'm/c', model: 'm/e' }),
      record('y', { requested_model: 'm/a' }),
      record('z', { requested_model: 'm/b' }),
    ];
    expect(orderColumns(rows, ['m/a', 'm/b', 'm/c']).map((r) => r.id)).toEqual(['y', 'z', 'x']);
    expect(orderColumns(rows, undefined).map((r) => r.id)).toEqual(['x', 'y', 'z']);
  });
});

describe('tokensPerSecond', () => {
  it('is output tokens over the time after the first token, both as the server measured them', () => {
    const r = record('r', { usage: { completion_tokens: 30 }, ttft_ms: 500, duration_ms: 2000 });
    expect(tokensPerSecond(r)).toBe(20);
  });

  it('is unknown while streaming, without figures, or with no time after the first token', () => {
    expect(tokensPerSecond(null)).toBeNull();
    expect(tokensPerSecond(record('r', { status: 'streaming', usage: { completion_tokens: 3 }, ttft_ms: 1, duration_ms: 9 }))).toBeNull();
    expect(tokensPerSecond(record('r', { usage: null, ttft_ms: 1, duration_ms: 9 }))).toBeNull();
    expect(tokensPerSecond(record('r', { usage: { completion_tokens: 3 }, ttft_ms: 9, duration_ms: 9 }))).toBeNull();
  });
});

describe('default models', () => {
  it("start a run with the prompt's preferred model when it may be picked", () => {
    expect(defaultModelFor({ preferred_model: 'm/c' }, AVAILABLE, 'm/a')).toBe('m/c');
    expect(defaultModelFor({ preferred_model: 'gone/model' }, AVAILABLE, 'm/a')).toBe('m/a');
    expect(defaultModelFor({}, AVAILABLE, 'm/a')).toBe('m/a');
  });

  it('start a comparison with the default model first, up to three', () => {
    expect(defaultCompared('m/c', AVAILABLE)).toEqual(['m/c', 'm/a', 'm/b']);
    expect(defaultCompared('m/a', ['m/a', 'm/b'])).toEqual(['m/a', 'm/b']);
  });

  it("send a column the prompt's fallbacks that are not compared and are offered", () => {
    const prompt = { fallback_models: ['m/b', 'other/x', 'm/d', 'm/e'] };
    expect(columnFallbacks(prompt, ['m/a', 'm/b'], AVAILABLE)).toEqual(['m/d', 'm/e']);
    expect(columnFallbacks({}, ['m/a', 'm/b'], AVAILABLE)).toEqual([]);
  });
});

describe('attemptsOf', () => {
  it('keeps the well-formed entries in order and fills what is missing', () => {
    const attempts = attemptsOf([
      { model: 'm/a', outcome: 'skipped', error_code: 'rate_limited', status: 429, message: 'slow' },
      { outcome: 'answered' },
      'junk',
      { model: 'm/b', outcome: 'answered' },
    ]);
    expect(attempts).toEqual([
      { model: 'm/a', outcome: 'skipped', error_code: 'rate_limited', status: 429, message: 'slow' },
      { model: 'm/b', outcome: 'answered', error_code: null, status: null, message: null },
    ]);
    expect(passedOver(attempts).map((a) => a.model)).toEqual(['m/a']);
    expect(attemptsOf({ model: 'm/a' })).toEqual([]);
  });
});

describe('preferredModelWrites', () => {
  const owned: Prompt = {
    id: 'p1',
    owner_uid: 'u1',
    title: 'T',
    content: 'c',
    variables: [],
    public: false,
    updatedAtMs: null,
    version: 4,
    preferred_model: 'm/a',
  };

  it("makes the owner's winner a new version of the prompt, equal to the latest but for the model", () => {
    const writes = preferredModelWrites(owned, 'u1', 'm/b');
    expect(writes.map((w) => `${w.kind} ${w.path.join('/')}`)).toEqual(['update prompts/p1', 'set prompts/p1/versions/5']);
    expect(writes[0]!.data).toMatchObject({ preferred_model: 'm/b', version: 5, content: 'c' });
    expect(writes[1]!.data).toMatchObject({ preferred_model: 'm/b', content: 'c', summary: 'Preferred model: m/b' });
  });

  it("writes nothing to someone else's prompt, or when the model is already the preferred one", () => {
    expect(preferredModelWrites(owned, 'u2', 'm/b')).toEqual([]);
    expect(preferredModelWrites(owned, 'u1', 'm/a')).toEqual([]);
  });
});
