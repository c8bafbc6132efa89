import { useState, type FormEvent } from 'react';
import { placeholders } from '../services/templates';
import type { KbDocument, PromptDraft, PromptVariable } from '../types';
import { MAX_FALLBACKS } from '../services/comparisons';
import { MAX_SUMMARY } from '../services/versions';
import type { FieldProblem } from '../services/validation';
import { checkKnowledge, DocumentPicker } from './DocumentPicker';
import { FallbackPicker } from './FallbackPicker';
import { useFieldProblems } from './fieldProblems';

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

/**
 * Client-side checks that mirror the schema (the rules check again): every problem, each on its
 * field, in the order of the form.
 */
export function checkDraft(draft: PromptDraft): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const title = draft.title.trim();
  if (title.length < 1 || title.length > 200) problems.push({ field: 'title', message: 'The title needs 1 to 200 characters.' });
  if (draft.content.length > 50_000) problems.push({ field: 'content', message: 'The content is over 50,000 characters.' });
  const seen = new Set<string>();
  draft.variables.forEach((v, i) => {
    const name = `var-name:${i}`;
    if (!NAME.test(v.name)) {
      problems.push({ field: name, message: `"${v.name}" is not a valid variable name (letters, digits, _ . -).` });
    } else if (RESERVED.test(v.name)) {
      problems.push({ field: name, message: `"${v.name}" is reserved: names may not both start and end with "__".` });
    } else if (seen.has(v.name)) {
      problems.push({ field: name, message: `The variable "${v.name}" is declared twice.` });
    } else if ((v.description ?? '').length > MAX_DESCRIPTION) {
      // The editor has no box for a description (one comes from a stored prompt): its name carries it.
      problems.push({ field: name, message: `The description of "${v.name}" is over ${MAX_DESCRIPTION} characters.` });
    }
    if ((v.default ?? '').length > MAX_DEFAULT) {
      problems.push({
        field: `var-default:${i}`,
        message: `The default of "${v.name}" is over ${MAX_DEFAULT.toLocaleString('en')} characters.`,
      });
    }
    seen.add(v.name);
  });
  if (draft.variables.length > MAX_DECLARED) {
    problems.push({
      field: 'variables',
      message:
        `At most ${MAX_DECLARED} variables can be declared. A placeholder needs no declaration ` +
        'unless it has a default, a description or is optional: remove the plain required ones.',
    });
  }
  problems.push(...checkKnowledge(draft));
  const fallbacks = draft.fallback_models ?? [];
  if (fallbacks.length > MAX_FALLBACKS) {
    problems.push({ field: 'fallback_models', message: `At most ${MAX_FALLBACKS} fallback models.` });
  } else if (new Set(fallbacks).size !== fallbacks.length) {
    problems.push({ field: 'fallback_models', message: 'A fallback model is named twice.' });
  }
  return problems;
}

export function PromptEditor({ initial, isNew, onSave, onCancel, documents = null }: Props) {
  const [draft, setDraft] = useState<PromptDraft>(initial);
  const [saving, setSaving] = useState(false);
  // A refused save (the rules, the network); the draft's own problems sit on their fields.
  const [error, setError] = useState<string | null>(null);
  const fields = useFieldProblems('editor-field');
  const { inputProps, fieldError } = fields;

  const set = <K extends keyof PromptDraft>(key: K, value: PromptDraft[K]) => {
    setDraft((d) => ({ ...d, [key]: value }));
    fields.clear(key);
  };
  const setVariable = (i: number, patch: Partial<PromptVariable>) => {
    setDraft((d) => ({ ...d, variables: d.variables.map((v, j) => (j === i ? { ...v, ...patch } : v)) }));
    fields.clear(patch.default !== undefined ? `var-default:${i}` : `var-name:${i}`);
  };

  function addDetected() {
    const known = new Set(draft.variables.map((v) => v.name));
    const extra = placeholders(draft.content, draft.system_prompt)
      .filter((n) => !known.has(n))
      .map((name): PromptVariable => ({ name, required: true, default: null }));
    set('variables', [...draft.variables, ...extra]);
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (fields.report(checkDraft(draft))) return;
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
        <input
          {...inputProps('title')}
          value={draft.title}
          maxLength={200}
          onChange={(e) => set('title', e.target.value)}
          data-testid="prompt-title-input"
        />
        {fieldError('title')}
      </label>
      <label>
        Content <span className="muted small">use {'{{name}}'} for variables</span>
        <textarea
          {...inputProps('content')}
          rows={6}
          value={draft.content}
          onChange={(e) => set('content', e.target.value)}
          data-testid="prompt-content-input"
        />
        {fieldError('content')}
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

      <fieldset className="variables" {...fields.groupProps('variables')}>
        <legend>Variables</legend>
        {draft.variables.length === 0 && <p className="muted small">No declared variables.</p>}
        {draft.variables.map((v, i) => (
          <div className="variable-row" key={i} data-testid="variable-row">
            <input
              {...inputProps(`var-name:${i}`)}
              aria-label="Variable name"
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
              {...inputProps(`var-default:${i}`)}
              aria-label={`Default of ${v.name || 'the variable'}`}
              placeholder="default"
              value={v.default ?? ''}
              onChange={(e) => setVariable(i, { default: e.target.value === '' ? null : e.target.value })}
              data-testid={`variable-default-${i}`}
            />
            <button
              type="button"
              className="btn btn-small"
              onClick={() => {
                set('variables', draft.variables.filter((_, j) => j !== i));
                // The rows below move up: their marks would sit on the wrong row. Save checks again.
                fields.report([]);
              }}
              aria-label={`Remove ${v.name}`}
            >
              ✕
            </button>
            {fieldError(`var-name:${i}`)}
            {fieldError(`var-default:${i}`)}
          </div>
        ))}
        {fieldError('variables')}
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

      <DocumentPicker
        draft={draft}
        documents={documents}
        onChange={(patch) => setDraft((d) => ({ ...d, ...patch }))}
        fields={fields}
      />

      <FallbackPicker
        value={draft.fallback_models ?? []}
        onChange={(models) => set('fallback_models', models)}
        group={fields.groupProps('fallback_models')}
        error={fieldError('fallback_models')}
      />

      <label className="inline">
        <input
          type="checkbox"
          checked={draft.public}
          onChange={(e) => set('public', e.target.checked)}
          data-testid="prompt-public-checkbox"
        />
        Public (everyone signed in can see and run it)
      </label>

      <label>
        Summary of this version <span className="muted small">optional, kept in the version list</span>
        <input
          value={draft.summary ?? ''}
          maxLength={MAX_SUMMARY}
          onChange={(e) => set('summary', e.target.value)}
          placeholder={isNew ? 'First version' : 'What changed'}
          data-testid="version-summary-input"
        />
      </label>

      {error && (
        <div className="alert alert-error" role="alert" data-testid="editor-error">
          Could not save: 
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
