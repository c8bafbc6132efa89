import type { ReactNode } from 'react';
import { MAX_FALLBACKS } from '../services/comparisons';
import type { GroupProps } from './fieldProblems';
import { ModelChecklist } from './ModelChecklist';

/**
 * The prompt's fallback models (0–3): tried in the order picked when the model of a run fails
 * before its first chunk. The server drops one equal to the run's model, and those it does not allow.
 */
export function FallbackPicker({
  value,
  onChange,
  group,
  error,
}: {
  value: string[];
  onChange: (models: string[]) => void;
  /** The editor's marks for the group (its id and message), when it checks the draft. */
  group?: GroupProps;
  error?: ReactNode;
}) {
  return (
    <ModelChecklist
      legend={
        <>
          Fallback models{' '}
          <span className="muted small">(up to {MAX_FALLBACKS}, tried in this order when the model fails before answering)</span>
        </>
      }
      value={value}
      onChange={onChange}
      max={MAX_FALLBACKS}
      testId="fallback"
      group={group}
      error={error}
      order={value.length > 0 ? `Order: ${value.join(' → ')}` : 'None: a failing model ends the run.'}
    />
  );
}
