import { useState, type FormEvent } from 'react';
import { db } from '../firebase';
import type { Versions } from '../hooks/useVersions';
import { LABEL, labelsByVersion, removeLabel, restoreVersion, setLabel, SUGGESTED_LABELS, type RunTarget } from '../services/versions';
import type { Prompt, PromptVersion } from '../types';
import { VersionDiff } from './VersionDiff';

interface Props {
  prompt: Prompt;
  uid: string;
  versions: Versions;
  /** Picks the version the run form runs. */
  onRun: (target: RunTarget) => void;
}

function when(ms: number | null): string {
  return ms ? new Date(ms).toLocaleString() : '…';
}

function who(v: PromptVersion, uid: string, owner: string): string {
  if (v.created_by === uid) return 'you';
  return v.created_by === owner ? 'the owner' : 'another user';
}

/** The default pair to compare: the one before the latest, and the latest. */
function defaultPair(rows: PromptVersion[]): [number, number] {
  const latest = rows[0]?.number ?? 1;
  return [rows[1]?.number ?? latest, latest];
}

/** Runs an action, keeping its error for the panel. */
function useAction(): [string | null, boolean, (work: () => Promise<void>) => Promise<void>] {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function run(work: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }
  return [error, busy, run];
}

/**
 * A prompt's versions (issue 27): who saved each and when, with its summary and labels; run one,
 * restore one (a new version equal to it), point a label at one, and diff any two.
 */
export function PromptVersions({ prompt, uid, versions, onRun }: Props) {
  const rows = versions.rows ?? [];
  const isOwner = prompt.owner_uid === uid;
  const latest = rows[0]?.number ?? null;
  const byVersion = labelsByVersion(prompt.labels ?? {});
  const [pair, setPair] = useState<[number, number] | null>(null);
  const [diff, setDiff] = useState<[number, number] | null>(null);
  const [error, busy, act] = useAction();
  const shownPair = pair ?? defaultPair(rows);
  const find = (n: number) => rows.find((v) => v.number === n) ?? null;
  const diffBefore = diff && find(diff[0]);
  const diffAfter = diff && find(diff[1]);

  const labelNames = Object.entries(prompt.labels ?? {}).map(([name, n]) => `${name} v${n}`);
  // Folded by default: the run form stays near the top of the page (a phone above all).
  return (
    <details className="card versions" data-testid="versions-panel" aria-label="Versions">
      <summary className="panel-header" data-testid="versions-toggle">
        <h3>Versions</h3>
        <span className="muted small" data-testid="versions-count">
          {versions.rows === null
            ? 'Loading…'
            : [`${rows.length} ${rows.length === 1 ? 'version' : 'versions'}`, latest !== null ? `latest v${latest}` : null, ...labelNames]
                .filter((x) => x !== null)
                .join(' · ')}
        </span>
      </summary>
      {versions.error && <div className="alert alert-error">Could not load the versions: {versions.error}</div>}
      {error && (
        <div className="alert alert-error" role="alert" data-testid="versions-error">
          {error}
        </div>
      )}
      <ol className="version-list">
        {rows.map((v) => (
          <li key={v.number} className="version-row" data-testid="version-row" data-version={v.number}>
            <div className="version-head">
              <strong>v{v.number}</strong>
              {v.number === latest && <span className="badge badge-latest">latest</span>}
              {(byVersion.get(v.number) ?? []).map((name) => (
                <span key={name} className="badge badge-label" data-testid="version-label" data-label={name}>
                  {name}
                  {isOwner && (
                    <button
                      type="button"
                      className="badge-remove"
                      aria-label={`Remove the label ${name}`}
                      disabled={busy}
                      onClick={() => void act(() => removeLabel(db, prompt.id, name))}
                      data-testid="label-remove"
                    >
                      ✕
                    </button>
                  )}
                </span>
              ))}
              <span className="muted small">
                {who(v, uid, prompt.owner_uid)} · {v.implicit ? 'saved before versions were kept' : when(v.createdAtMs)}
              </span>
            </div>
            {v.summary && (
              <p className="version-summary small" data-testid="version-summary">
                {v.summary}
              </p>
            )}
            <div className="row">
              <button
                type="button"
                className="btn btn-small"
                onClick={() => onRun(v.number === latest ? { kind: 'latest' } : { kind: 'version', version: v.number })}
                data-testid="version-run"
              >
                Run this version
              </button>
              {isOwner && v.number !== latest && (
                <button
                  type="button"
                  className="btn btn-small"
                  disabled={busy}
                  onClick={() => void act(() => restoreVersion(db, prompt, v, uid))}
                  data-testid="version-restore"
                  title="Save a new version equal to this one"
                >
                  Restore
                </button>
              )}
            </div>
          </li>
        ))}
      </ol>
      {rows.length >= 2 && (
        <div className="row wrap version-tools" data-testid="diff-form">
          <span className="small">Compare</span>
          <VersionSelect rows={rows} value={shownPair[0]} onChange={(n) => setPair([n, shownPair[1]])} label="Older version" testId="diff-from" />
          <span className="small">with</span>
          <VersionSelect rows={rows} value={shownPair[1]} onChange={(n) => setPair([shownPair[0], n])} label="Newer version" testId="diff-to" />
          <button type="button" className="btn btn-small" onClick={() => setDiff(shownPair)} data-testid="diff-button">
            Show differences
          </button>
        </div>
      )}
      {isOwner && rows.length > 0 && <LabelForm prompt={prompt} rows={rows} busy={busy} act={act} />}
      {diffBefore && diffAfter && <VersionDiff before={diffBefore} after={diffAfter} onClose={() => setDiff(null)} />}
    </details>
  );
}

function VersionSelect({
  rows,
  value,
  onChange,
  label,
  testId,
}: {
  rows: PromptVersion[];
  value: number;
  onChange: (n: number) => void;
  label: string;
  testId: string;
}) {
  return (
    <select aria-label={label} value={value} onChange={(e) => onChange(Number(e.target.value))} data-testid={testId}>
      {rows.map((v) => (
        <option key={v.number} value={v.number}>
          v{v.number}
        </option>
      ))}
    </select>
  );
}

/** Points a label at a version: a new label, or one moved from where it pointed. */
function LabelForm({
  prompt,
  rows,
  busy,
  act,
}: {
  prompt: Prompt;
  rows: PromptVersion[];
  busy: boolean;
  act: (work: () => Promise<void>) => Promise<void>;
}) {
  const [name, setName] = useState('production');
  const [version, setVersion] = useState<number>(rows[0]!.number);
  const valid = LABEL.test(name);
  const current = prompt.labels?.[name];
  function submit(event: FormEvent) {
    event.preventDefault();
    if (valid) void act(() => setLabel(db, prompt.id, name, version));
  }
  return (
    <form className="row wrap version-tools" onSubmit={submit} data-testid="label-form">
      <label className="inline small">
        Label
        <input
          value={name}
          onChange={(e) => setName(e.target.value.trim())}
          list="label-suggestions"
          maxLength={32}
          aria-invalid={valid ? undefined : 'true'}
          size={12}
          data-testid="label-name"
        />
      </label>
      <datalist id="label-suggestions">
        {SUGGESTED_LABELS.map((l) => (
          <option key={l} value={l} />
        ))}
      </datalist>
      <span className="small">→</span>
      <VersionSelect rows={rows} value={version} onChange={setVersion} label="Version the label points at" testId="label-version" />
      <button type="submit" className="btn btn-small" disabled={busy || !valid || current === version} data-testid="label-set">
        {current === undefined ? 'Set label' : 'Move label'}
      </button>
      {!valid && name !== '' && (
        <span className="field-error small" data-testid="label-invalid">
          A letter, then up to 31 lower-case letters, digits, - or _.
        </span>
      )}
    </form>
  );
}
