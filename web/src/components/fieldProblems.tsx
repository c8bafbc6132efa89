import { useState } from 'react';
import type { FieldProblem } from '../services/validation';

/**
 * A form's field checks as a person with a screen reader meets them: each faulty input gets
 * `aria-invalid` and its own message tied to it by `aria-describedby`, and the first one is
 * focused. The run form and the prompt editor both use it.
 */
export type FieldProblems = ReturnType<typeof useFieldProblems>;
export type GroupProps = ReturnType<FieldProblems['groupProps']>;

export function useFieldProblems(prefix: string) {
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const idOf = (field: string): string => `${prefix}-${field.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const problemOf = (field: string): FieldProblem | undefined => problems.find((p) => p.field === field);

  return {
    problems,
    /** Shows these problems (none clears them) and focuses the first one's field; true when there are any. */
    report(found: FieldProblem[]): boolean {
      setProblems(found);
      const first = found[0];
      // Focus after React has marked the field, so a screen reader reads the message with it.
      if (first) requestAnimationFrame(() => document.getElementById(idOf(first.field))?.focus());
      return first !== undefined;
    },
    /** The input's id and its invalid state. */
    inputProps(field: string) {
      const problem = problemOf(field);
      return {
        id: idOf(field),
        'aria-invalid': problem ? true : undefined,
        'aria-describedby': problem ? `${idOf(field)}-error` : undefined,
      } as const;
    },
    /** For a group of boxes (a fieldset): focusable and described by its message, as ARIA has no invalid group. */
    groupProps(field: string) {
      const problem = problemOf(field);
      return problem
        ? ({ id: idOf(field), tabIndex: -1, 'aria-describedby': `${idOf(field)}-error` } as const)
        : ({ id: idOf(field) } as const);
    },
    /** The field's message, under it; nothing when it is fine. */
    fieldError(field: string) {
      const problem = problemOf(field);
      return problem ? (
        <span className="field-error" id={`${idOf(field)}-error`} data-testid="field-error">
          {problem.message}
        </span>
      ) : null;
    },
    /** Forgets a field's problem once it is edited. */
    clear(field: string) {
      if (problemOf(field)) setProblems((list) => list.filter((p) => p.field !== field));
    },
  };
}
