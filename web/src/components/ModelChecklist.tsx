import type { ReactNode } from 'react';
import { availableModels } from '../config';
import type { GroupProps } from './fieldProblems';

interface Props {
  legend: ReactNode;
  /** The ticked models, in the order they were ticked (the order that matters). */
  value: string[];
  onChange: (models: string[]) => void;
  max: number;
  disabled?: boolean;
  /** data-testid of the fieldset; each box is `${testId}-model`, the order line `${testId}-order`. */
  testId: string;
  /** The line under the boxes that says what the order means. */
  order: ReactNode;
  /** A form's marks for the group: its id, focus and message. */
  group?: GroupProps;
  error?: ReactNode;
}

/** Ticks up to `max` of the offered models, remembering the order they were ticked. */
export function ModelChecklist({ legend, value, onChange, max, disabled = false, testId, order, group, error }: Props) {
  return (
    <fieldset className="compare-models" data-testid={testId} {...group}>
      <legend>{legend}</legend>
      {error}
      {availableModels.map((m) => {
        const checked = value.includes(m);
        return (
          <label key={m}>
            <input
              type="checkbox"
              checked={checked}
              disabled={disabled || (!checked && value.length >= max)}
              onChange={(e) => onChange(e.target.checked ? [...value, m].slice(0, max) : value.filter((x) => x !== m))}
              data-testid={`${testId}-model`}
              value={m}
            />
            {m}
          </label>
        );
      })}
      <span className="muted small compare-order" data-testid={`${testId}-order`}>
        {order}
      </span>
    </fieldset>
  );
}
