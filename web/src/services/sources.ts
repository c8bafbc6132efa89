/** Reads the passages a run drew on, from `event: sources`, `execute_prompt` or the run record. */
import type { Source } from '../types';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const finite = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/**
 * The sources in `value`, in order, or null when it is not a list. An element that is not an
 * object stays in the list as an empty passage: dropping it would shift every later citation
 * number onto the wrong passage.
 */
export function sourcesOf(value: unknown): Source[] | null {
  if (!Array.isArray(value)) return null;
  return value.map((item): Source => {
    const r = isRecord(item) ? item : {};
    return {
      document_id: text(r.document_id) ?? '',
      title: text(r.title) ?? '',
      position: finite(r.position),
      heading: text(r.heading) || null,
      text: text(r.text) ?? '',
      score: finite(r.score),
    };
  });
}
