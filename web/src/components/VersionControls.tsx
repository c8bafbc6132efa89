import type { RunTarget } from '../services/versions';
import type { Prompt, PromptVersion } from '../types';

const encode = (t: RunTarget): string => (t.kind === 'version' ? `v:${t.version}` : t.kind === 'label' ? `l:${t.label}` : 'latest');

function decode(value: string): RunTarget {
  if (value.startsWith('v:')) return { kind: 'version', version: Number(value.slice(2)) };
  if (value.startsWith('l:')) return { kind: 'label', label: value.slice(2) };
  return { kind: 'latest' };
}

/** The run form's "Version": the latest, a label (resolved by the server when the run starts), or a number. */
export function VersionPicker({
  prompt,
  versions,
  value,
  onChange,
  disabled,
}: {
  prompt: Prompt;
  versions: PromptVersion[];
  value: RunTarget;
  onChange: (target: RunTarget) => void;
  disabled: boolean;
}) {
  const latest = prompt.version ?? 1;
  const labels = Object.entries(prompt.labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const older = versions.filter((v) => v.number !== latest);
  return (
    <label>
      Version
      <select value={encode(value)} onChange={(e) => onChange(decode(e.target.value))} disabled={disabled} data-testid="version-select">
        <option value="latest">Latest (v{latest})</option>
        {labels.map(([name, n]) => (
          <option key={name} value={`l:${name}`}>
            Label {name} (now v{n})
          </option>
        ))}
        {older.map((v) => (
          <option key={v.number} value={`v:${v.number}`}>
            v{v.number}
            {v.summary ? ` — ${v.summary}` : ''}
          </option>
        ))}
        {/* A version picked in the list that is older than the ones read still runs. */}
        {value.kind === 'version' && value.version !== latest && !older.some((v) => v.number === value.version) && (
          <option value={encode(value)}>v{value.version}</option>
        )}
      </select>
    </label>
  );
}

/** Ticks 2–`max` versions to run side by side, in the order ticked. */
export function VersionChecklist({
  versions,
  value,
  onChange,
  max,
  disabled,
  model,
}: {
  versions: PromptVersion[];
  value: number[];
  onChange: (numbers: number[]) => void;
  max: number;
  disabled: boolean;
  model: string;
}) {
  return (
    <fieldset className="compare-models" data-testid="compare-versions">
      <legend>
        Versions to compare <span className="muted small">(2–{max}, same variables, on {model})</span>
      </legend>
      {versions.map((v) => {
        const checked = value.includes(v.number);
        return (
          <label key={v.number}>
            <input
              type="checkbox"
              checked={checked}
              disabled={disabled || (!checked && value.length >= max)}
              onChange={(e) => onChange(e.target.checked ? [...value, v.number].slice(0, max) : value.filter((n) => n !== v.number))}
              data-testid="compare-version"
              value={v.number}
            />
            v{v.number}
          </label>
        );
      })}
      <span className="muted small compare-order" data-testid="compare-versions-order">
        Columns: {value.length > 0 ? value.map((n) => `v${n}`).join(', ') : 'none'}
      </span>
    </fieldset>
  );
}
