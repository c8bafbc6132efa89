import { MAX_FALLBACKS } from '../services/comparisons';
import { ModelChecklist } from './ModelChecklist';

/**
 * The prompt's fallback models (0–3): tried in the order picked when the model of a run fails
 * before its first chunk. The server drops one equal to the run's model, and those it does not allow.
 */
export function FallbackPicker({ value, onChange }: { value: string[]; onChange: (models: string[]) => void }) {
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
      order={value.length > 0 ? `Order: ${value.join(' → ')}` : 'None: a failing model ends the run.'}
    />
  );
}
