import { changedRows, diffLines, type DiffRow } from '../services/diff';
import type { PromptVariable, PromptVersion, VersionFields } from '../types';

export interface SettingRow {
  key: string;
  label: string;
  left: string;
  right: string;
  changed: boolean;
}

const variableText = (v: PromptVariable): string =>
  `${v.name}${v.required && v.default === null ? ' (required)' : ''}${v.default !== null ? ` = "${v.default}"` : ''}`;
const listText = (items: string[]): string => (items.length > 0 ? items.join(', ') : '—');

/** The settings of two versions, one row each, the ones that differ marked. */
export function settingRows(a: VersionFields, b: VersionFields): SettingRow[] {
  const rows: Array<[string, string, (f: VersionFields) => string]> = [
    ['variables', 'Variables', (f) => listText(f.variables.map(variableText))],
    ['document_ids', 'Documents', (f) => listText(f.document_ids)],
    ['top_k', 'Passages (top k)', (f) => (f.top_k === null ? '—' : String(f.top_k))],
    ['retrieval_query_variable', 'Search with', (f) => f.retrieval_query_variable ?? '—'],
    ['preferred_model', 'Preferred model', (f) => f.preferred_model ?? '—'],
    ['fallback_models', 'Fallback models', (f) => listText(f.fallback_models)],
  ];
  return rows.map(([key, label, text]) => {
    const left = text(a);
    const right = text(b);
    return { key, label, left, right, changed: left !== right };
  });
}

function Side({ line, side }: { line: DiffRow['left']; side: 'left' | 'right' }) {
  return (
    <>
      <span className="diff-n" aria-hidden="true">
        {line?.n ?? ''}
      </span>
      <span className={`diff-text diff-${side}`} data-testid={`diff-${side}`}>
        {line?.text ?? ''}
      </span>
    </>
  );
}

/** One text side by side: the older version left, the newer right, changed lines marked. */
function TextDiff({ title, before, after, testId }: { title: string; before: string; after: string; testId: string }) {
  const rows = diffLines(before, after);
  const changes = changedRows(rows);
  return (
    <div className="diff-block" data-testid={testId} data-changes={changes}>
      <h5>
        {title} <span className="muted small">{changes === 0 ? 'unchanged' : `${changes} ${changes === 1 ? 'line differs' : 'lines differ'}`}</span>
      </h5>
      <div className="diff-grid" role="table" aria-label={`${title}, side by side`}>
        {rows.map((r, i) => (
          <div key={i} className={`diff-row diff-${r.kind}`} role="row" data-testid="diff-row" data-kind={r.kind}>
            <Side line={r.left} side="left" />
            <Side line={r.right} side="right" />
          </div>
        ))}
      </div>
    </div>
  );
}

/** Two versions side by side: the content and system prompt line by line, then the settings. */
export function VersionDiff({ before, after, onClose }: { before: PromptVersion; after: PromptVersion; onClose: () => void }) {
  const settings = settingRows(before, after);
  const hasSystem = before.system_prompt !== '' || after.system_prompt !== '';
  return (
    <article className="version-diff" data-testid="version-diff" data-from={before.number} data-to={after.number} aria-label="Differences">
      <header className="panel-header">
        <h4>
          Version {before.number} → version {after.number}
        </h4>
        <span className="spacer" />
        <button type="button" className="btn btn-small" onClick={onClose} data-testid="diff-close">
          Close
        </button>
      </header>
      <TextDiff title="Content" before={before.content} after={after.content} testId="diff-content" />
      {hasSystem && <TextDiff title="System prompt" before={before.system_prompt} after={after.system_prompt} testId="diff-system" />}
      <h5>Settings</h5>
      {!settings.some((s) => s.changed) && (
        <p className="muted small" data-testid="diff-settings-same">
          No setting differs.
        </p>
      )}
      <dl className="diff-settings" data-testid="diff-settings">
        {settings.filter((s) => s.changed).map((s) => (
          <div key={s.key} className="diff-changed" data-testid="diff-setting" data-key={s.key}>
            <dt>{s.label}</dt>
            <dd className="diff-left">{s.left}</dd>
            <dd className="diff-right">{s.right}</dd>
          </div>
        ))}
      </dl>
    </article>
  );
}
