import { useId, useState, type FormEvent, type KeyboardEvent } from 'react';
import { Link, useInRouterContext, useNavigate } from 'react-router';
import { availableModels, config } from '../config';
import { messageProblem } from '../services/conversation';

/** The model a follow-up starts with: the turn's own when still offered. */
export function followUpModel(model: string | null | undefined): string {
  return model && availableModels.includes(model) ? model : config.defaultModel;
}

interface Props {
  /** Sends the text; the box empties once it resolves. */
  onSend: (message: string, model: string) => void | Promise<void>;
  model: string;
  onModel: (model: string) => void;
  disabled?: boolean;
  /** Why it is disabled, shown under it. */
  note?: string | null;
  compact?: boolean;
  label?: string;
}

/**
 * A follow-up question: a text box, the model it goes to, and Send (Ctrl/Cmd+Enter too). The
 * text is checked as the server checks it (not empty, at most MAX_MESSAGE_CHARS) before sending.
 */
export function FollowUpBox({ onSend, model, onModel, disabled = false, note = null, compact = false, label }: Props) {
  const [text, setText] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const id = useId();

  async function send(event?: FormEvent) {
    event?.preventDefault();
    if (disabled) return;
    const wrong = messageProblem(text);
    setProblem(wrong);
    if (wrong) return;
    await onSend(text, model);
    setText('');
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      void send();
    }
  }

  return (
    <form className={`follow-up${compact ? ' compact' : ''}`} onSubmit={(e) => void send(e)} noValidate data-testid="follow-up">
      <label htmlFor={`${id}-text`} className="small">
        {label ?? 'Ask a follow-up'}
      </label>
      <textarea
        id={`${id}-text`}
        rows={compact ? 2 : 3}
        value={text}
        placeholder="Ask more, or ask for a change…"
        onChange={(e) => {
          setText(e.target.value);
          setProblem(null);
        }}
        onKeyDown={onKeyDown}
        aria-invalid={problem ? 'true' : undefined}
        aria-describedby={problem ? `${id}-problem` : undefined}
        data-testid="follow-up-input"
      />
      {problem && (
        <span className="field-error" id={`${id}-problem`} data-testid="field-error">
          {problem}
        </span>
      )}
      <div className="row follow-up-row">
        <label className="inline small">
          Model
          <select value={model} onChange={(e) => onModel(e.target.value)} data-testid="follow-up-model">
            {availableModels.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <span className="spacer" />
        <button
          type="submit"
          className="btn btn-primary btn-small"
          disabled={disabled}
          aria-keyshortcuts="Control+Enter Meta+Enter"
          title="Send (Ctrl/Cmd+Enter)"
          data-testid="follow-up-send"
        >
          Send
        </button>
      </div>
      {note && (
        <p className="muted small" data-testid="follow-up-note">
          {note}
        </p>
      )}
    </form>
  );
}

/** What the prompt page hands the run's page: the follow-up to send once it opens. */
export interface FollowUpHandoff {
  followUp: { message: string; model: string };
}

export function handoffOf(state: unknown): FollowUpHandoff['followUp'] | null {
  const followUp = (state as Partial<FollowUpHandoff> | null)?.followUp;
  return followUp && typeof followUp.message === 'string' && typeof followUp.model === 'string' ? followUp : null;
}

/**
 * The follow-up box under a finished run on the prompt page (and under each comparison column):
 * sending opens the run's own page, which sends it as the conversation's next turn.
 */
export function RunFollowUp(props: { executionId: string; model: string | null; compact?: boolean }) {
  // A panel tested alone has no router, and no run page to go to.
  return useInRouterContext() ? <RoutedFollowUp {...props} /> : null;
}

function RoutedFollowUp({ executionId, model, compact }: { executionId: string; model: string | null; compact?: boolean }) {
  const navigate = useNavigate();
  const [chosen, setChosen] = useState(() => followUpModel(model));
  const send = (message: string, m: string) => {
    const state: FollowUpHandoff = { followUp: { message, model: m } };
    navigate(`/runs/${executionId}`, { state });
  };
  return (
    <div className="run-follow-up">
      <FollowUpBox compact={compact} model={chosen} onModel={setChosen} onSend={send} />
      <Link to={`/runs/${executionId}`} className="small" data-testid="run-link">
        Open this run’s page
      </Link>
    </div>
  );
}
