import type { ExecutionState } from '../hooks/executionState';
import { SourcesList, SourcesProvider } from '../markdown/Sources';
import { ErrorBanner } from './ErrorBanner';
import type { ExecutionRecord } from '../types';
import { OutputText, PhaseBadge, Spinner, WAITING_LABEL } from './ExecutionOutput';
import { hasUsage, UsageSummary } from './UsageSummary';

interface Props {
  state: ExecutionState;
  onCancel: () => void;
  /** This run's Firestore record, once the history listener has it. */
  record: ExecutionRecord | null;
}

/** Shows a non-streaming run: a spinner, then the whole answer at once. */
export function StandardExecutionPanel({ state, onCancel, record }: Props) {
  const busy = state.phase === 'connecting';
  return (
    <section className="card panel" data-testid="standard-panel" data-execution-id={state.executionId ?? ''}>
      <header className="panel-header">
        <h3>Output</h3>
        <PhaseBadge phase={state.phase} mode="standard" />
        <span className="spacer" />
        {busy && (
          <button type="button" className="btn btn-danger btn-small" onClick={onCancel} data-testid="cancel-button">
            Cancel
          </button>
        )}
      </header>
      {busy && <Spinner label={WAITING_LABEL.standard} />}
      <SourcesProvider sources={state.sources} runKey={state.executionId}>
        {state.content !== '' && <OutputText state={state} testId="standard-output" cursor={false} />}
        <SourcesList />
      </SourcesProvider>
      {state.error && <ErrorBanner error={state.error} />}
      {hasUsage(state, record) && <UsageSummary state={state} record={record} />}
    </section>
  );
}
