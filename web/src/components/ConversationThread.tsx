import { useState, type ReactNode } from 'react';
import type { ExecutionState } from '../hooks/executionState';
import { SourcesList, SourcesProvider } from '../markdown/Sources';
import { messageProblem, type ThreadTurn } from '../services/conversation';
import type { ExecutionRecord } from '../types';
import { Routing } from './ComparisonView';
import { ErrorBanner } from './ErrorBanner';
import { OutputText, PhaseBadge, Spinner, WAITING_LABEL } from './ExecutionOutput';

/** The first turn's question is the prompt itself, rendered with these values. */
function PromptQuestion({ title, variables }: { title: string; variables: Record<string, string> }) {
  const entries = Object.entries(variables);
  return (
    <div className="bubble bubble-user" data-testid="turn-prompt">
      <span className="muted small">Prompt</span> <strong>{title}</strong>
      {entries.length > 0 && (
        <dl className="variables-list compact">
          {entries.map(([name, value]) => (
            <div key={name}>
              <dt>{name}</dt>
              <dd>{value || <span className="muted">(empty)</span>}</dd>
            </div>
          ))}
        </dl>
      )}
    </div>
  );
}

/** "‹ 2 / 3 ›": the versions of one turn (regenerated or edited), each readable. */
function Versions({ turn, onPick }: { turn: ThreadTurn; onPick: (id: string) => void }) {
  const { versions, index } = turn;
  if (versions.length < 2) return null;
  const go = (i: number) => {
    const target = versions[i];
    if (target) onPick(target.id);
  };
  return (
    <span className="versions small" data-testid="turn-versions" data-index={index + 1} data-count={versions.length}>
      <button
        type="button"
        className="btn btn-small"
        disabled={index === 0}
        onClick={() => go(index - 1)}
        aria-label="Earlier version"
        data-testid="version-previous"
      >
        ‹
      </button>
      <span data-testid="version-position">
        {index + 1} / {versions.length}
      </span>
      <button
        type="button"
        className="btn btn-small"
        disabled={index === versions.length - 1}
        onClick={() => go(index + 1)}
        aria-label="Later version"
        data-testid="version-next"
      >
        ›
      </button>
    </span>
  );
}

/** The user's follow-up text, or a box to rewrite it (edit: a new version of the turn). */
function Question({
  message,
  onEdit,
}: {
  message: string;
  onEdit?: (message: string) => void;
}) {
  const [draft, setDraft] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  if (draft !== null && onEdit) {
    return (
      <form
        className="bubble bubble-user editing"
        onSubmit={(e) => {
          e.preventDefault();
          const wrong = messageProblem(draft);
          setProblem(wrong);
          if (wrong) return;
          onEdit(draft);
          setDraft(null);
        }}
        data-testid="edit-form"
      >
        <textarea
          rows={3}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          aria-label="Edit your message"
          aria-invalid={problem ? 'true' : undefined}
          data-testid="edit-input"
        />
        {problem && (
          <span className="field-error" data-testid="field-error">
            {problem}
          </span>
        )}
        <div className="row">
          <span className="spacer" />
          <button type="button" className="btn btn-small" onClick={() => setDraft(null)} data-testid="edit-cancel">
            Cancel
          </button>
          <button type="submit" className="btn btn-small btn-primary" data-testid="edit-send">
            Send edited
          </button>
        </div>
      </form>
    );
  }
  return (
    <div className="bubble bubble-user" data-testid="turn-message">
      <p className="message-text">{message}</p>
      {onEdit && (
        <button type="button" className="btn btn-small" onClick={() => setDraft(message)} data-testid="edit-button">
          Edit
        </button>
      )}
    </div>
  );
}

/** One answer: rendered like the run panel's, with its sources, error and model. */
export function Answer({ state, model, actions }: { state: ExecutionState; model: string; actions?: ReactNode }) {
  const streaming = state.phase === 'streaming';
  return (
    <div className="bubble bubble-answer" data-testid="turn-answer" data-phase={state.phase} aria-live="polite">
      <header className="row small">
        <code data-testid="turn-model">{state.model ?? model}</code>
        <PhaseBadge phase={state.phase} mode="streaming" />
        <span className="spacer" />
        {actions}
      </header>
      <Routing model={model} state={state} />
      {state.phase === 'connecting' && <Spinner label={WAITING_LABEL.streaming} />}
      <SourcesProvider sources={state.sources} runKey={state.executionId}>
        {(state.content !== '' || state.reasoning !== '' || streaming) && (
          <OutputText state={state} testId="turn-output" cursor={streaming} />
        )}
        <SourcesList />
      </SourcesProvider>
      {state.phase === 'cancelled' && (
        <p className="muted small" data-testid="cancelled-notice">
          Cancelled; the text above is what arrived before.
        </p>
      )}
      {state.error && <ErrorBanner error={state.error} />}
    </div>
  );
}

export interface TurnView {
  key: string;
  /** The stored turn, or null for one in flight whose record has not arrived. */
  turn: ThreadTurn | null;
  /** The question: null for a first turn (the prompt). */
  message: string | null;
  variables: Record<string, string>;
  state: ExecutionState;
  model: string;
  turnNumber: number;
}

/** A conversation, turn by turn: the question, then its answer. */
export function ConversationThread({
  turns,
  promptTitle,
  onPick,
  lastActions,
  onEditLast,
}: {
  turns: TurnView[];
  promptTitle: string;
  onPick: (id: string) => void;
  /** Buttons on the last answer (regenerate). */
  lastActions?: ReactNode;
  /** Edits the last question; absent when it cannot be edited (the first turn, a run in flight). */
  onEditLast?: (message: string) => void;
}) {
  return (
    <ol className="thread" data-testid="thread">
      {turns.map((t, i) => {
        const last = i === turns.length - 1;
        return (
          <li
            key={t.key}
            className="turn"
            data-testid="turn"
            data-turn={t.turnNumber}
            data-execution-id={t.turn?.record.id ?? t.state.executionId ?? ''}
          >
            <div className="row turn-head small muted">
              <span>Turn {t.turnNumber}</span>
              {t.turn && <Versions turn={t.turn} onPick={onPick} />}
            </div>
            {t.message === null ? (
              <PromptQuestion title={promptTitle} variables={t.variables} />
            ) : (
              <Question message={t.message} onEdit={last ? onEditLast : undefined} />
            )}
            <Answer state={t.state} model={t.model} actions={last ? lastActions : undefined} />
          </li>
        );
      })}
    </ol>
  );
}

/** A stored turn's model as asked (a fallback may have answered). */
export const askedModel = (r: ExecutionRecord): string => r.requested_model ?? r.model;
