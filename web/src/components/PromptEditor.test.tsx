// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PromptDraft, PromptVariable } from '../types';
import { checkDraft, EMPTY_DRAFT, PromptEditor } from './PromptEditor';

afterEach(cleanup);

/** The draft's problems as one text, null when none (the older tests read a single message). */
const validateDraft = (d: PromptDraft): string | null => checkDraft(d).map((p) => p.message).join('\n') || null;

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

describe('the editor marks each faulty field, as the run form does', () => {
  async function save(initial: PromptDraft) {
    const onSave = vi.fn(async () => undefined);
    render(<PromptEditor initial={initial} isNew onSave={onSave} onCancel={() => undefined} documents={[]} />);
    fireEvent.click(screen.getByTestId('save-prompt'));
    // The first field is focused on the next frame, once it is marked.
    await act(() => new Promise((resolve) => requestAnimationFrame(() => resolve(undefined))));
    return onSave;
  }

  it('puts each message under its field, with aria-invalid, and focuses the first one; nothing is saved', async () => {
    const onSave = await save({ ...EMPTY_DRAFT, title: '  ', content: 'c', variables: [v('ok'), v('bad name'), v('ok')] });
    expect(onSave).not.toHaveBeenCalled();
    const title = screen.getByTestId('prompt-title-input');
    expect(title.getAttribute('aria-invalid')).toBe('true');
    expect(document.getElementById(title.getAttribute('aria-describedby')!)?.textContent).toBe(
      'The title needs 1 to 200 characters.',
    );
    expect(document.activeElement).toBe(title);
    expect(screen.getByTestId('variable-name-0').getAttribute('aria-invalid')).toBeNull();
    const bad = screen.getByTestId('variable-name-1');
    expect(bad.getAttribute('aria-invalid')).toBe('true');
    expect(document.getElementById(bad.getAttribute('aria-describedby')!)?.textContent).toMatch(/"bad name" is not a valid/);
    const twice = screen.getByTestId('variable-name-2');
    expect(document.getElementById(twice.getAttribute('aria-describedby')!)?.textContent).toMatch(/declared twice/);
    expect(screen.getAllByTestId('field-error')).toHaveLength(3);
    expect(screen.queryByTestId('editor-error')).toBeNull();
  });

  it('focuses the first faulty field when the title is fine, and clears a mark once its field is edited', async () => {
    await save({ ...EMPTY_DRAFT, title: 'T', content: 'c', variables: [v('a', { default: 'd'.repeat(5001) })] });
    const def = screen.getByTestId('variable-default-0');
    expect(def.getAttribute('aria-invalid')).toBe('true');
    expect(document.activeElement).toBe(def);
    fireEvent.change(def, { target: { value: 'short' } });
    expect(def.getAttribute('aria-invalid')).toBeNull();
    expect(screen.queryByTestId('field-error')).toBeNull();
  });

  it('marks a group with no box of its own (eleven variables) by its message, and focuses it', async () => {
    await save({ ...EMPTY_DRAFT, title: 'T', content: 'c', variables: Array.from({ length: 11 }, (_, i) => v(`v${i}`)) });
    const group = document.activeElement as HTMLElement;
    expect(group.tagName).toBe('FIELDSET');
    expect(document.getElementById(group.getAttribute('aria-describedby')!)?.textContent).toMatch(/At most 10 variables/);
  });
});
