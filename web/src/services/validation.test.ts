import { describe, expect, it } from 'vitest';
import type { PromptVariable } from '../types';
import { checkRun } from './validation';

const VARS: PromptVariable[] = [
  { name: 'topic', required: true, default: null },
  { name: 'tone', required: true, default: 'friendly' },
  { name: 'extra', required: false, default: null },
];

const ok = { values: { topic: 'SSE' }, maxTokens: '', temperature: '' };

describe('checkRun', () => {
  it('accepts a filled required variable, blank optional ones and blank numbers', () => {
    expect(checkRun(VARS, ok)).toEqual([]);
  });

  it.each([
    ['empty', '', 'topic is required.'],
    ['only spaces', '   \t', 'topic holds only spaces; enter a value.'],
  ])('refuses a required variable that is %s', (_what, value, message) => {
    expect(checkRun(VARS, { ...ok, values: { topic: value } })).toEqual([{ field: 'var:topic', message }]);
  });

  it('lets the default stand in for a blank required variable, as the server does', () => {
    expect(checkRun(VARS, { ...ok, values: { topic: 'x', tone: '  ' } })).toEqual([]);
  });

  it.each([
    ['0', false],
    ['1', true],
    ['32000', true],
    ['32001', false],
    ['2.5', false],
    ['abc', false],
  ])('max_tokens %s is accepted: %s', (maxTokens, accepted) => {
    const problems = checkRun(VARS, { ...ok, maxTokens });
    expect(problems.length === 0).toBe(accepted);
    if (!accepted) expect(problems[0]!.field).toBe('max_tokens');
  });

  it.each([
    ['-0.1', false],
    ['0', true],
    ['2', true],
    ['2.01', false],
    ['1.3', true],
  ])('temperature %s is accepted: %s', (temperature, accepted) => {
    const problems = checkRun(VARS, { ...ok, temperature });
    expect(problems.length === 0).toBe(accepted);
    if (!accepted) expect(problems[0]!.field).toBe('temperature');
  });

  it('reports every problem in the order of the form', () => {
    const fields = checkRun(VARS, { values: {}, maxTokens: '0', temperature: '3' }).map((p) => p.field);
    expect(fields).toEqual(['var:topic', 'max_tokens', 'temperature']);
  });
});
