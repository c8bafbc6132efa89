import type { ExecutionState } from '../hooks/executionState';
import { SourcesList, SourcesProvider } from '../markdown/Sources';
import { Routing } from './ComparisonView';
import { ErrorBanner } from './ErrorBanner';
import type { ExecutionRecord } from '../types';
import { OutputText, PhaseBadge, ReconnectingNotice, Spinner, WAITING_LABEL } from './ExecutionOutput';
import { hasUsage, UsageSummary } from './UsageSummary';

interface Props {
  state: ExecutionState;
  onCancel: () => void;
  /** This run's Firestore record, once the history listener has it. */
  record: ExecutionRecord | null;
}

/** Shows a streaming run: spinner until the first token, the text as it grows, then usage. */
export function StreamingExecutionPanel({ state, onCancel, record }: Props) {
  const busy = state.phase === 'connecting' || state.phase === 'streaming';
  return (
    <section
      className="card panel"
      data-testid="streaming-panel"
      data-execution-id={state.executionId ?? ''}
      aria-live="polite"
    >
      <header className="panel-header">
        <h3>Output</h3>
        <PhaseBadge phase={state.phase} mode={state.usedFallback ? 'standard' : 'streaming'} />
        {state.usedFallback && (
          <span className="badge" data-testid="fallback-badge" title="This browser cannot read streams">
            non-streaming fallback
          </span>
        )}
        {record?.prompt_version != null && (
          <span className="badge badge-version" data-testid="run-version" title="The prompt version this run used">
            v{record.prompt_version}
          </span>
        )}
        <span className="spacer" />
        {busy && (
          <button
            type="button"
            className="btn btn-danger btn-small"
            onClick={onCancel}
            data-testid="cancel-button"
            aria-keyshortcuts="Escape"
            title="Cancel (Esc)"
          >
            Cancel
          </button>
        )}
      </header>
      {state.models[0] && <Routing model={state.models[0]} state={state} />}
      <ReconnectingNotice reconnecting={state.reconnecting} />
      {state.phase === 'connecting' && (
        <Spinner label={state.usedFallback ? WAITING_LABEL.standard : WAITING_LABEL.streaming} />
      )}
      {/* Sources arrive before the first token: they show while the answer is awaited. */}
      <SourcesProvider sources={state.sources} runKey={state.executionId}>
        {(state.content !== '' || state.reasoning !== '' || state.phase === 'streaming') && (
          <OutputText state={state} testId="stream-output" cursor={state.phase === 'streaming'} />
        )}
        <SourcesList />
      </SourcesProvider>
      {state.phase === 'cancelled' && (
        <p className="muted small" data-testid="cancelled-notice">
          Cancelled. The server stopped the model; the text above is what arrived before.
        </p>
      )}
      {state.error && <ErrorBanner error={state.error} />}
      {hasUsage(state, record) && <UsageSummary state={state} record={record} />}
    </section>
  );
}
