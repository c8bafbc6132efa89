/** The `attempts` list of a run (end and error events, the JSON answer, the record), read defensively. */
import type { Attempt } from '../types';

const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Keeps the well-formed entries in order; anything that is not a list reads as none. */
export function attemptsOf(raw: unknown): Attempt[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((a): Attempt[] => {
    if (typeof a !== 'object' || a === null || typeof (a as { model?: unknown }).model !== 'string') return [];
    const r = a as Record<string, unknown>;
    return [
      {
        model: r.model as string,
        outcome: strOrNull(r.outcome) ?? 'failed',
        error_code: strOrNull(r.error_code),
        status: typeof r.status === 'number' ? r.status : null,
        message: strOrNull(r.message),
      },
    ];
  });
}

/** The models tried before the one that answered, with why each was passed over. */
export function passedOver(attempts: Attempt[]): Attempt[] {
  return attempts.filter((a) => a.outcome !== 'answered');
}

/** One attempt as the UI names it: the model, and why it failed when the server said. */
export function attemptLabel(a: Attempt): string {
  return a.error_code ? `${a.model} (${a.error_code}${a.status ? ` · HTTP ${a.status}` : ''})` : a.model;
}

/**
 * When more than one model was tried and none answered: a sentence naming each, in order, with
 * why it failed; null otherwise (one model's failure is the error itself).
 */
export function allFailed(attempts: Attempt[]): string | null {
  if (attempts.length <= 1 || attempts.some((a) => a.outcome === 'answered')) return null;
  return `Every model was tried in turn and none answered: ${attempts.map(attemptLabel).join(', ')}.`;
}
