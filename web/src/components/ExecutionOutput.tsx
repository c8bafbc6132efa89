import type { ExecutionState } from '../hooks/executionState';
import { Markdown } from '../markdown/Markdown';
import { CopyButton } from './CopyButton';

export type RunMode = 'streaming' | 'standard';

/** Waiting looks different per mode: a standard run has no first token to wait for. */
export const WAITING_LABEL: Record<RunMode, string> = {
  streaming: 'Waiting for the first token…',
  standard: 'Waiting for the whole answer…',
};

const PHASE_LABEL: Record<Exclude<ExecutionState['phase'], 'connecting'>, string> = {
  idle: 'Idle',
  streaming: 'Streaming',
  completed: 'Completed',
  cancelled: 'Cancelled',
  error: 'Failed',
};

export function PhaseBadge({ phase, mode }: { phase: ExecutionState['phase']; mode: RunMode }) {
  return (
    <span className={`badge badge-${phase}`} data-testid="execution-status" data-phase={phase}>
      {phase === 'connecting' ? WAITING_LABEL[mode] : PHASE_LABEL[phase]}
    </span>
  );
}

/**
 * "Reconnecting…" while a dropped stream is being resumed. The live region is there from the
 * first render, empty, because screen readers announce changes to a region they already know.
 */
export function ReconnectingNotice({ reconnecting }: { reconnecting: boolean }) {
  return (
    <p className="reconnecting small" role="status" data-testid="reconnecting" data-active={reconnecting}>
      {reconnecting ? 'Reconnecting…' : ''}
    </p>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <div className="spinner-row" data-testid="spinner" role="status">
      <span className="spinner" aria-hidden="true" />
      <span className="muted">{label}</span>
    </div>
  );
}

/**
 * The answer, rendered as Markdown. Text left by a failed or cancelled run stays on screen,
 * marked partial: it is what the model produced before the failure, and the backend keeps it too.
 */
export function OutputText({ state, testId, cursor }: { state: ExecutionState; testId: string; cursor: boolean }) {
  const partial = (state.phase === 'error' || state.phase === 'cancelled') && state.content !== '';
  return (
    <div className={`output-wrap${partial ? ' partial' : ''}`}>
      <div className="output-tools">
        {partial && (
          <span className="badge badge-partial" data-testid="partial-badge">
            Partial output
          </span>
        )}
        <span className="spacer" />
        {state.content !== '' && (
          <CopyButton getText={() => state.content} label="Copy answer" testId="copy-answer" />
        )}
      </div>
      {state.reasoning !== '' && (
        <details className="reasoning" data-testid="reasoning">
          <summary>Reasoning</summary>
          <pre>{state.reasoning}</pre>
        </details>
      )}
      <div className="output markdown" data-testid={testId} data-partial={partial ? 'true' : 'false'}>
        <Markdown text={state.content} streaming={cursor} />
        {cursor && <span className="cursor" aria-hidden="true" />}
      </div>
    </div>
  );
}
