import type { ReactNode } from 'react';
import { availableModels } from '../config';

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
}

/** Ticks up to `max` of the offered models, remembering the order they were ticked. */
export function ModelChecklist({ legend, value, onChange, max, disabled = false, testId, order }: Props) {
  return (
    <fieldset className="compare-models" data-testid={testId}>
      <legend>{legend}</legend>
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
