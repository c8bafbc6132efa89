// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import type { User } from 'firebase/auth';
import { StrictMode } from 'react';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_STATE, type ExecutionState } from '../hooks/executionState';
import { recordOf } from '../testing/records';
import type { ExecutionRecord, Prompt } from '../types';
import { ConversationPage } from './ConversationPage';

const MODEL = 'openai/gpt-4o-mini';
const OTHER = 'google/gemini-2.5-flash';

function turn(id: string, parent: string | null, n: number, at: number, extra: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return recordOf(id, {
    conversation_id: 'c1',
    parent_execution_id: parent,
    turn: n,
    message: parent === null ? null : `question ${id}`,
    output: `answer ${id}`,
    createdAtMs: at,
    requested_model: MODEL,
    model: MODEL,
    variables: { topic: 'tides' },
    ...extra,
  });
}

let records: ExecutionRecord[] = [];
const execute = vi.fn(async () => undefined);
let live: ExecutionState = IDLE_STATE;

vi.mock('../hooks/useRuns', () => ({
  useExecution: (id: string | null) => (id === null ? undefined : (records.find((r) => r.id === id) ?? null)),
  useRunsWhere: (_uid: string, _field: string, value: string | null) => ({
    rows: value === null ? undefined : records.filter((r) => (r.conversation_id ?? r.id) === value),
    error: null,
  }),
}));
const cancel = vi.fn();
const attach = vi.fn(async () => undefined);
vi.mock('../hooks/useStreamingExecution', () => ({
  useStreamingExecution: () => ({ ...live, isStreaming: false, execute, cancel, attach }),
}));

const PROMPT: Prompt = { id: 'p1', owner_uid: 'u1', title: 'Tides', content: 'Tell me', variables: [], public: false, updatedAtMs: null };
const USER = { uid: 'u1', getIdToken: async () => 'token' } as unknown as User;

function Where() {
  const location = useLocation();
  return <output data-testid="where" data-state={JSON.stringify(location.state)}>{location.pathname}</output>;
}

function open(path: string, state: unknown = null) {
  return render(
    <StrictMode>
      <MemoryRouter initialEntries={[{ pathname: path, state }]}>
        <Routes>
          <Route path="/runs/:executionId" element={<ConversationPage user={USER} prompts={[PROMPT]} />} />
        </Routes>
        <Where />
      </MemoryRouter>
    </StrictMode>,
  );
}

const sent = () => execute.mock.calls.map((c) => (c as unknown[])[0]);
const turns = () => screen.getAllByTestId('turn');

beforeEach(() => {
  // c1 -> t2 -> t3a, t3b: the last turn regenerated once.
  records = [turn('c1', null, 1, 1), turn('t2', 'c1', 2, 2), turn('t3a', 't2', 3, 3), turn('t3b', 't2', 3, 4)];
  live = IDLE_STATE;
  execute.mockClear();
  attach.mockClear();
});
afterEach(cleanup);

describe('ConversationPage', () => {
  it('reattaches once to the turn still streaming when it opens (a reload), whichever run the URL names', () => {
    records[3] = turn('t3b', 't2', 3, 4, { status: 'streaming', resumable: true, output: '' });
    open('/runs/c1');
    expect(attach.mock.calls.map((c) => (c as unknown[])[0])).toEqual(['t3b']);
  });

  it('reattaches to nothing when no turn is streaming', () => {
    open('/runs/t3b');
    expect(attach).not.toHaveBeenCalled();
  });

  it('says "not found" for a run the user cannot read', () => {
    open('/runs/someone-elses');
    expect(screen.getByTestId('not-found').getAttribute('data-what')).toBe('run');
  });

  it('shows the prompt, then each question and answer, the newest version of the last turn', () => {
    open('/runs/c1');
    expect(turns().map((t) => t.getAttribute('data-execution-id'))).toEqual(['c1', 't2', 't3b']);
    expect(within(turns()[0]!).getByTestId('turn-prompt').textContent).toContain('Tides');
    expect(within(turns()[1]!).getByTestId('turn-message').textContent).toContain('question t2');
    expect(within(turns()[2]!).getByTestId('version-position').textContent).toBe('2 / 2');
  });

  it('opens the version a link names, and pages through the versions', () => {
    open('/runs/t3a');
    expect(within(turns()[2]!).getByTestId('turn-output').textContent).toContain('answer t3a');
    fireEvent.click(screen.getByTestId('version-next'));
    expect(within(turns()[2]!).getByTestId('turn-output').textContent).toContain('answer t3b');
    expect(screen.getByTestId('version-position').textContent).toBe('2 / 2');
  });

  it('sends a follow-up after the last turn shown, on the model picked', () => {
    open('/runs/c1');
    fireEvent.change(screen.getByTestId('follow-up-model'), { target: { value: OTHER } });
    fireEvent.change(screen.getByTestId('follow-up-input'), { target: { value: 'and neap tides?' } });
    fireEvent.click(screen.getByTestId('follow-up-send'));
    expect(sent()).toEqual([
      { prompt_id: 'p1', conversation_id: 'c1', parent_execution_id: 't3b', message: 'and neap tides?', model: OTHER },
    ]);
    // The turn in flight shows at once, after the turn it follows.
    expect(turns().map((t) => t.getAttribute('data-turn'))).toEqual(['1', '2', '3', '4']);
    expect(within(turns()[3]!).getByTestId('turn-message').textContent).toContain('and neap tides?');
  });

  it('regenerates the last answer under its parent, and edits the last question', () => {
    open('/runs/c1');
    expect(screen.getByTestId('regenerate-button').textContent).toBe('Regenerate');
    fireEvent.click(screen.getByTestId('regenerate-button'));
    expect(sent()[0]).toEqual({ prompt_id: 'p1', conversation_id: 'c1', parent_execution_id: 't2', regenerate: true, model: MODEL });
    cleanup();
    execute.mockClear();
    open('/runs/c1');
    fireEvent.click(screen.getByTestId('edit-button'));
    fireEvent.change(screen.getByTestId('edit-input'), { target: { value: 'spring tides, really?' } });
    fireEvent.click(screen.getByTestId('edit-send'));
    expect(sent()).toEqual([
      { prompt_id: 'p1', conversation_id: 'c1', parent_execution_id: 't2', message: 'spring tides, really?', model: MODEL },
    ]);
  });

  it('offers no edit of the first turn (the prompt) and sends nothing empty', () => {
    records = [turn('c1', null, 1, 1)];
    open('/runs/c1');
    expect(screen.queryByTestId('edit-button')).toBeNull();
    fireEvent.click(screen.getByTestId('follow-up-send'));
    expect(screen.getByTestId('field-error').textContent).toMatch(/Write a message/);
    expect(execute).not.toHaveBeenCalled();
  });

  it('names the model a regenerate goes to when it is another one', () => {
    open('/runs/c1');
    fireEvent.change(screen.getByTestId('follow-up-model'), { target: { value: OTHER } });
    expect(screen.getByTestId('regenerate-button').textContent).toBe(`Regenerate on ${OTHER}`);
    fireEvent.click(screen.getByTestId('regenerate-button'));
    expect(sent()[0]).toMatchObject({ regenerate: true, model: OTHER });
  });

  it('regenerates an older version shown with its own question', () => {
    records = [...records, turn('t3c', 't2', 3, 5, { message: 'neap tides?' })];
    open('/runs/t3a');
    fireEvent.click(screen.getByTestId('regenerate-button'));
    expect(sent()).toEqual([
      { prompt_id: 'p1', conversation_id: 'c1', parent_execution_id: 't2', message: 'question t3a', model: MODEL },
    ]);
  });

  it('lets an earlier version be read once the answer just sent has arrived', () => {
    records = [...records, turn('t3c', 't2', 3, 5, { message: 'neap tides?' })];
    live = { ...IDLE_STATE, phase: 'completed', executionId: 't3c', content: 'answer t3c' };
    open('/runs/c1');
    fireEvent.click(screen.getByTestId('edit-button'));
    fireEvent.change(screen.getByTestId('edit-input'), { target: { value: 'neap tides?' } });
    fireEvent.click(screen.getByTestId('edit-send'));
    fireEvent.click(screen.getByTestId('version-previous'));
    expect(turns()[2]!.getAttribute('data-execution-id')).toBe('t3b');
    expect(within(turns()[2]!).getByTestId('version-position').textContent).toBe('2 / 3');
  });

  it('cancels the answer in flight with its button or Escape', () => {
    live = { ...IDLE_STATE, phase: 'streaming', executionId: 't3b' };
    cancel.mockClear();
    open('/runs/c1');
    fireEvent.keyDown(document, { key: 'Escape' });
    fireEvent.click(screen.getByTestId('cancel-button'));
    expect(cancel).toHaveBeenCalledTimes(2);
  });

  it('follows a cancelled answer’s partial text', () => {
    records = [turn('c1', null, 1, 1), turn('t2', 'c1', 2, 2, { status: 'cancelled' })];
    open('/runs/c1');
    expect(screen.getByTestId('follow-up-send').hasAttribute('disabled')).toBe(false);
  });

  it('asks for a regenerate, not a follow-up, after an answer that failed', () => {
    records = [turn('c1', null, 1, 1), turn('t2', 'c1', 2, 2, { status: 'error', error_code: 'upstream_error' })];
    open('/runs/c1');
    expect(screen.getByTestId('follow-up-send').hasAttribute('disabled')).toBe(true);
    expect(screen.getByTestId('follow-up-note').textContent).toMatch(/regenerate/);
    expect(screen.getByTestId('regenerate-button')).toBeTruthy();
  });

  it('sends the follow-up handed over from the prompt page once, and forgets it', async () => {
    vi.useFakeTimers();
    try {
      open('/runs/t2', { followUp: { message: 'more?', model: MODEL } });
      await act(async () => {
        await vi.runAllTimersAsync();
      });
      expect(sent()).toEqual([{ prompt_id: 'p1', conversation_id: 'c1', parent_execution_id: 't2', message: 'more?', model: MODEL }]);
      expect(screen.getByTestId('where').getAttribute('data-state')).toBe('null');
    } finally {
      vi.useRealTimers();
    }
  });
});
