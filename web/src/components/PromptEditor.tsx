import { useState, type FormEvent } from 'react';
import { placeholders } from '../services/templates';
import type { KbDocument, PromptDraft, PromptVariable } from '../types';
import { MAX_FALLBACKS } from '../services/comparisons';
import { DocumentPicker, validateKnowledge } from './DocumentPicker';
import { FallbackPicker } from './FallbackPicker';

interface Props {
  initial: PromptDraft;
  isNew: boolean;
  onSave: (draft: PromptDraft) => Promise<void>;
  onCancel: () => void;
  /** The user's documents, to attach; null while they load. */
  documents?: KbDocument[] | null;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
// What the rules accept (firestore.rules, validVariables; docs/adr/0301-rules-variables.md).
const RESERVED = /^__.*__$/;
const MAX_DECLARED = 10;
const MAX_DEFAULT = 5000;
const MAX_DESCRIPTION = 500;

export const EMPTY_DRAFT: PromptDraft = { title: '', content: '', system_prompt: '', variables: [], public: false };

/** Client-side checks that mirror the schema; the rules check again. */
export function validateDraft(draft: PromptDraft): string | null {
  const title = draft.title.trim();
  if (title.length < 1 || title.length > 200) return 'The title needs 1 to 200 characters.';
  if (draft.content.length > 50_000) return 'The content is over 50,000 characters.';
  if (draft.variables.length > MAX_DECLARED) {
    return (
      `At most ${MAX_DECLARED} variables can be declared. A placeholder needs no declaration ` +
      'unless it has a default, a description or is optional: remove the plain required ones.'
    );
  }
  const seen = new Set<string>();
  for (const v of draft.variables) {
    if (!NAME.test(v.name)) return `"${v.name}" is not a valid variable name (letters, digits, _ . -).`;
    if (RESERVED.test(v.name)) return `"${v.name}" is reserved: names may not both start and end with "__".`;
    if (seen.has(v.name)) return `The variable "${v.name}" is declared twice.`;
    if ((v.default ?? '').length > MAX_DEFAULT) {
      return `The default of "${v.name}" is over ${MAX_DEFAULT.toLocaleString('en')} characters.`;
    }
    if ((v.description ?? '').length > MAX_DESCRIPTION) {
      return `The description of "${v.name}" is over ${MAX_DESCRIPTION} characters.`;
    }
    seen.add(v.name);
  }
  const fallbacks = draft.fallback_models ?? [];
  if (fallbacks.length > MAX_FALLBACKS) return `At most ${MAX_FALLBACKS} fallback models.`;
  if (new Set(fallbacks).size !== fallbacks.length) return 'A fallback model is named twice.';
  return validateKnowledge(draft);
}

export function PromptEditor({ initial, isNew, onSave, onCancel, documents = null }: Props) {
  const [draft, setDraft] = useState<PromptDraft>(initial);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const set = <K extends keyof PromptDraft>(key: K, value: PromptDraft[K]) => setDraft((d) => ({ ...d, [key]: value }));
  const setVariable = (i: number, patch: Partial<PromptVariable>) =>
    set('variables', draft.variables.map((v, j) => (j === i ? { ...v, ...patch } : v)));

  function addDetected() {
    const known = new Set(draft.variables.map((v) => v.name));
    const extra = placeholders(draft.content, draft.system_prompt)
      .filter((n) => !known.has(n))
      .map((name): PromptVariable => ({ name, required: true, default: null }));
    set('variables', [...draft.variables, ...extra]);
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    const problem = validateDraft(draft);
    if (problem) {
      setError(problem);
      return;
    }
    setSaving(true);
    setError(null);
    try {
      await onSave({ ...draft, title: draft.title.trim() });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setSaving(false);
    }
  }

  return (
    <form className="card editor" onSubmit={(e) => void submit(e)} data-testid="prompt-editor">
      <h2>{isNew ? 'New prompt' : 'Edit prompt'}</h2>
      <label>
        Title
        <input value={draft.title} maxLength={200} onChange={(e) => set('title', e.target.value)} data-testid="prompt-title-input" />
      </label>
      <label>
        Content <span className="muted small">use {'{{name}}'} for variables</span>
        <textarea
          rows={6}
          value={draft.content}
          onChange={(e) => set('content', e.target.value)}
          data-testid="prompt-content-input"
        />
      </label>
      <label>
        System prompt <span className="muted small">optional</span>
        <textarea
          rows={2}
          value={draft.system_prompt}
          onChange={(e) => set('system_prompt', e.target.value)}
          data-testid="prompt-system-input"
        />
      </label>

      <fieldset className="variables">
        <legend>Variables</legend>
        {draft.variables.length === 0 && <p className="muted small">No declared variables.</p>}
        {draft.variables.map((v, i) => (
          <div className="variable-row" key={i} data-testid="variable-row">
            <input
              placeholder="name"
              value={v.name}
              onChange={(e) => setVariable(i, { name: e.target.value })}
              data-testid={`variable-name-${i}`}
            />
            <label className="inline">
              <input
                type="checkbox"
                checked={v.required}
                onChange={(e) => setVariable(i, { required: e.target.checked })}
                data-testid={`variable-required-${i}`}
              />
              required
            </label>
            <input
              placeholder="default"
              value={v.default ?? ''}
              onChange={(e) => setVariable(i, { default: e.target.value === '' ? null : e.target.value })}
              data-testid={`variable-default-${i}`}
            />
            <button
              type="button"
              className="btn btn-small"
              onClick={() => set('variables', draft.variables.filter((_, j) => j !== i))}
              aria-label={`Remove ${v.name}`}
            >
              ✕
            </button>
          </div>
        ))}
        <div className="row">
          <button
            type="button"
            className="btn btn-small"
            onClick={() => set('variables', [...draft.variables, { name: '', required: true, default: null }])}
            data-testid="add-variable"
          >
            + Add variable
          </button>
          <button type="button" className="btn btn-small" onClick={addDetected} data-testid="detect-variables">
            Detect from content
          </button>
        </div>
      </fieldset>

      <DocumentPicker draft={draft} documents={documents} onChange={(patch) => setDraft((d) => ({ ...d, ...patch }))} />

      <FallbackPicker value={draft.fallback_models ?? []} onChange={(models) => set('fallback_models', models)} />

      <label className="inline">
        <input
          type="checkbox"
          checked={draft.public}
          onChange={(e) => set('public', e.target.checked)}
          data-testid="prompt-public-checkbox"
        />
        Public (everyone signed in can see and run it)
      </label>

      {error && (
        <div className="alert alert-error" role="alert" data-testid="editor-error">
          {error}
        </div>
      )}
      <div className="row">
        <button type="submit" className="btn btn-primary" disabled={saving} data-testid="save-prompt">
          {saving ? 'Saving…' : 'Save'}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
