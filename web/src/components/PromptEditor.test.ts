import { describe, expect, it } from 'vitest';
import type { PromptDraft, PromptVariable } from '../types';
import { EMPTY_DRAFT, validateDraft } from './PromptEditor';

const draft = (variables: PromptVariable[]): PromptDraft => ({ ...EMPTY_DRAFT, title: 'T', content: 'c', variables });
const v = (name: string, extra: Partial<PromptVariable> = {}): PromptVariable => ({
  name,
  required: true,
  default: null,
  ...extra,
});

describe('validateDraft mirrors what the rules accept for variables', () => {
  it('accepts ten declared variables and refuses an eleventh, saying what to do', () => {
    const ten = Array.from({ length: 10 }, (_, i) => v(`v${i}`));
    expect(validateDraft(draft(ten))).toBeNull();
    const problem = validateDraft(draft([...ten, v('v10')]));
    expect(problem).toMatch(/At most 10 variables/);
    expect(problem).toMatch(/needs no declaration/);
  });

  it('refuses a reserved name, as Firestore and the backend do', () => {
    expect(validateDraft(draft([v('__x__')]))).toMatch(/reserved/);
    expect(validateDraft(draft([v('__x')]))).toBeNull();
  });

  it('bounds a default and a description as the rules do', () => {
    expect(validateDraft(draft([v('a', { default: 'd'.repeat(5000) })]))).toBeNull();
    expect(validateDraft(draft([v('a', { default: 'd'.repeat(5001) })]))).toMatch(/default of "a"/);
    expect(validateDraft(draft([v('a', { description: 'd'.repeat(500) })]))).toBeNull();
    expect(validateDraft(draft([v('a', { description: 'd'.repeat(501) })]))).toMatch(/description of "a"/);
  });
});

describe('validateDraft bounds the fallback models as the rules and the backend do', () => {
  it('accepts up to three distinct ones', () => {
    expect(validateDraft({ ...draft([]), fallback_models: ['a', 'b', 'c'] })).toBeNull();
    expect(validateDraft({ ...draft([]), fallback_models: ['a', 'b', 'c', 'd'] })).toMatch(/At most 3 fallback models/);
    expect(validateDraft({ ...draft([]), fallback_models: ['a', 'a'] })).toMatch(/named twice/);
  });
});
