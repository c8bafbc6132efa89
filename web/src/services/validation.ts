/**
 * The run form's checks, the same as the server's (functions/promptstream: `resolve_variables`
 * and the request model), so a request the server would refuse is never sent.
 */
import type { PromptVariable } from '../types';

export interface FieldProblem {
  /** `var:<name>`, `max_tokens` or `temperature`: the input to mark and focus. */
  field: string;
  message: string;
}

export interface RunInputs {
  values: Record<string, string>;
  maxTokens: string;
  temperature: string;
}

export const MAX_TOKENS_RANGE = { min: 1, max: 32_000 } as const;
export const TEMPERATURE_RANGE = { min: 0, max: 2 } as const;

/** Every problem, in the order of the form's fields. */
export function checkRun(variables: PromptVariable[], inputs: RunInputs): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const v of variables) {
    const value = inputs.values[v.name] ?? '';
    // The server uses the default for a blank value, and refuses a required one with none.
    const hasDefault = v.default !== null && v.default.trim() !== '';
    if (!v.required || hasDefault || value.trim() !== '') continue;
    problems.push({
      field: `var:${v.name}`,
      message: value === '' ? `${v.name} is required.` : `${v.name} holds only spaces; enter a value.`,
    });
  }
  const maxTokens = inputs.maxTokens.trim();
  if (maxTokens !== '') {
    const n = Number(maxTokens);
    if (!Number.isInteger(n) || n < MAX_TOKENS_RANGE.min || n > MAX_TOKENS_RANGE.max) {
      problems.push({
        field: 'max_tokens',
        message: `Max tokens must be a whole number from ${MAX_TOKENS_RANGE.min} to ${MAX_TOKENS_RANGE.max.toLocaleString('en-US')}.`,
      });
    }
  }
  const temperature = inputs.temperature.trim();
  if (temperature !== '') {
    const t = Number(temperature);
    if (!Number.isFinite(t) || t < TEMPERATURE_RANGE.min || t > TEMPERATURE_RANGE.max) {
      problems.push({
        field: 'temperature',
        message: `Temperature must be from ${TEMPERATURE_RANGE.min} to ${TEMPERATURE_RANGE.max}.`,
      });
    }
  }
  return problems;
}
