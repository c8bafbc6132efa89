import type { PromptVariable } from '../types';

// Same pattern as functions/promptstream/_templates.py, so the form asks for exactly the names
// the backend will look for.
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*\}\}/g;

/** Variable names used in the templates, in order of first use. */
export function placeholders(...templates: Array<string | undefined | null>): string[] {
  const seen = new Set<string>();
  for (const template of templates) {
    if (!template) continue;
    for (const match of template.matchAll(PLACEHOLDER)) seen.add(match[1]!);
  }
  return [...seen];
}

/**
 * The inputs the run form shows: declared variables first (with their required flag and
 * default), then any `{{name}}` the templates use without declaring it (required, as the
 * backend treats them).
 */
export function formVariables(
  declared: PromptVariable[],
  content: string,
  systemPrompt?: string,
): PromptVariable[] {
  const out = declared.map((v) => ({ ...v }));
  const known = new Set(out.map((v) => v.name));
  for (const name of placeholders(content, systemPrompt)) {
    if (!known.has(name)) {
      out.push({ name, required: true, default: null });
      known.add(name);
    }
  }
  return out;
}

/** The `variables` to send: only the fields the person filled in, so defaults apply server-side. */
export function filledVariables(values: Record<string, string>, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = values[name];
    if (value !== undefined && value.trim() !== '') out[name] = value;
  }
  return out;
}
