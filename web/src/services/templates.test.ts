import { describe, expect, it } from 'vitest';
import { filledVariables, formVariables, placeholders } from './templates';

describe('placeholders', () => {
  it.each([
    ['Hello {{name}}', ['name']],
    ['{{ a }} and {{b}} and {{a}}', ['a', 'b']],
    ['{{user.first-name}}', ['user.first-name']],
    ['{{1bad}} {{}} {{ spaced name }} {single}', []],
    ['[[fake chunks=40 delay=0.1]] {{topic}}', ['topic']],
  ])('%s -> %j', (template, expected) => {
    expect(placeholders(template)).toEqual(expected);
  });

  it('reads the system prompt too, in order of first use', () => {
    expect(placeholders('{{b}} {{a}}', 'You are {{role}} about {{a}}')).toEqual(['b', 'a', 'role']);
  });
});

describe('formVariables', () => {
  it('keeps declared variables and adds undeclared placeholders as required', () => {
    const declared = [{ name: 'tone', required: false, default: 'friendly' }];
    expect(formVariables(declared, 'Write about {{topic}} in a {{tone}} tone', 'Act as {{role}}')).toEqual([
      { name: 'tone', required: false, default: 'friendly' },
      { name: 'topic', required: true, default: null },
      { name: 'role', required: true, default: null },
    ]);
  });
});

describe('filledVariables', () => {
  it('sends only non-blank values for the form names', () => {
    expect(filledVariables({ a: 'x', b: '', c: '  ', d: 'stale' }, ['a', 'b', 'c'])).toEqual({ a: 'x' });
  });
});
