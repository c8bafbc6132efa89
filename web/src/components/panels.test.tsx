// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_STATE, type ExecutionState } from '../hooks/executionState';
import { ExecutionError } from '../services/errors';
import type { ExecutionRecord, Prompt } from '../types';
import { ExecutionHistory } from './ExecutionHistory';
import { StandardExecutionPanel } from './StandardExecutionPanel';
import { UsageMeterView } from './UsageMeter';
import { buildRequest } from '../services/request';
import { DemoModeNote } from './DemoModeNote';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';
import { toExecution } from '../services/prompts';

afterEach(cleanup);

const PROMPT: Prompt = {
  id: 'p1',
  owner_uid: 'u1',
  title: 't',
  content: '{{a}} {{b}}',
  variables: [],
  public: false,
  updatedAtMs: null,
};

describe('buildRequest', () => {
  it('sends snake_case fields only, and leaves out blank optional ones', () => {
    expect(buildRequest(PROMPT, { a: 'x', b: '' }, ['a', 'b'], 'demo/local-model', '', '', '')).toEqual({
      prompt_id: 'p1',
      variables: { a: 'x' },
      model: 'demo/local-model',
    });
    expect(buildRequest(PROMPT, {}, ['a', 'b'], 'm', 'ctx', '256', '0.7')).toEqual({
      prompt_id: 'p1',
      variables: {},
      model: 'm',
      context: 'ctx',
      max_tokens: 256,
      temperature: 0.7,
    });
  });
});

describe('the demo-mode note', () => {
  it('lists the models in one run of text, so no line of it can start with a comma', () => {
    render(<DemoModeNote models={['demo/local-model', 'demo/fast-model', 'demo/careful-model']} />);
    const note = screen.getByTestId('demo-mode-note');
    // The alert is a wrapping flex row: each child node is a flex item that starts a line of its own.
    expect(note.childNodes).toHaveLength(1);
    expect(note.textContent).toMatch(/LLM: demo\/local-model, demo\/fast-model, demo\/careful-model\.$/);
    // Each comma follows its model in the same run of text.
    const commas = [...note.querySelectorAll('*')].flatMap((e) => [...e.childNodes]).filter((n) => n.textContent === ', ');
    expect(commas.map((c) => c.previousSibling?.nodeName)).toEqual(['CODE', 'CODE']);
  });
});

function panel(state: Partial<ExecutionState>, record: ExecutionRecord | null = null) {
  render(<StreamingExecutionPanel state={{ ...IDLE_STATE, ...state }} onCancel={() => undefined} record={record} />);
}

const RECORD: ExecutionRecord = {
  id: 'ex1',
  prompt_id: 'p1',
  model: 'demo/local-model',
  status: 'completed',
  output: '# Done\n\n| a | b |\n|---|---|\n| 1 | 2 |\n',
  reasoning: '',
  variables: { topic: 'SSE' },
  finish_reason: 'stop',
  error_code: null,
  error_message: null,
  usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0.00012 },
  ttft_ms: 321.4,
  duration_ms: 2400,
  createdAtMs: 1_700_000_000_000,
  finishedAtMs: 1_700_000_002_400,
};

describe('StreamingExecutionPanel', () => {
  it('shows a spinner and a cancel button before the first token', () => {
    panel({ phase: 'connecting' });
    expect(screen.getByTestId('spinner')).toBeTruthy();
    expect(screen.getByTestId('cancel-button')).toBeTruthy();
    expect(screen.queryByTestId('stream-output')).toBeNull();
  });

  it('keeps the partial text of a mid-stream failure and marks it partial', () => {
    panel({
      phase: 'error',
      content: 'half an answer',
      error: new ExecutionError('upstream_error', 'Provider returned error', { status: 200, midStream: true }),
    });
    expect(screen.getByTestId('stream-output').textContent).toBe('half an answer');
    expect(screen.getByTestId('stream-output').getAttribute('data-partial')).toBe('true');
    expect(screen.getByTestId('partial-badge')).toBeTruthy();
    expect(screen.getByTestId('execution-error').getAttribute('data-code')).toBe('upstream_error');
    expect(screen.queryByTestId('cancel-button')).toBeNull();
  });

  it('shows the retry delay of a rate limit', () => {
    panel({ phase: 'error', error: new ExecutionError('rate_limited', 'x', { status: 429, retryAfter: 20 }) });
    expect(screen.getByTestId('execution-error-title').textContent).toBe('Rate limited');
    expect(screen.getByTestId('execution-error-detail').textContent).toContain('20 s');
  });

  const DONE: Partial<ExecutionState> = {
    phase: 'completed',
    content: 'done',
    model: 'demo/local-model',
    usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0.00012 },
  };

  it('shows usage, model and the server-measured timings of the run record when done', () => {
    panel(DONE, RECORD);
    expect(screen.getByTestId('usage-model').textContent).toBe('demo/local-model');
    expect(screen.getByTestId('usage-tokens').textContent).toBe('9 in · 2 out · 11 total');
    expect(screen.getByTestId('usage-cost').textContent).toBe('$0.00012');
    expect(screen.getByText('First token (server)')).toBeTruthy();
    expect(screen.getByTestId('usage-ttft').textContent).toBe('321 ms');
    expect(screen.getByTestId('usage-duration').textContent).toBe('2.40 s');
    expect(screen.getByTestId('stream-output').getAttribute('data-partial')).toBe('false');
  });

  it('waits for the record to be final before showing timings', () => {
    panel(DONE, { ...RECORD, status: 'streaming' });
    expect(screen.getByTestId('usage-ttft').textContent).toBe('…');
  });

  it('says it waits for the first token only when streaming', () => {
    panel({ phase: 'connecting' });
    expect(screen.getByTestId('execution-status').textContent).toBe('Waiting for the first token…');
    cleanup();
    render(<StandardExecutionPanel state={{ ...IDLE_STATE, phase: 'connecting' }} onCancel={() => undefined} record={null} />);
    expect(screen.getByTestId('execution-status').textContent).toBe('Waiting for the whole answer…');
    expect(screen.queryByText(/first token/)).toBeNull();
  });
});

describe('ExecutionHistory', () => {
  it('opens a row into the whole run, filters by status, and asks to run it again', () => {
    const rerun = vi.fn();
    const failed: ExecutionRecord = { ...RECORD, id: 'ex2', status: 'error', error_code: 'upstream_error', error_message: 'boom' };
    render(<ExecutionHistory rows={[RECORD, failed]} error={null} onRerun={rerun} />);
    expect(screen.getAllByTestId('history-row')).toHaveLength(2);

    fireEvent.click(screen.getAllByTestId('history-open')[0]!);
    const detail = screen.getByTestId('execution-detail');
    expect(detail.querySelector('table td')?.textContent).toBe('1');
    expect(screen.getByTestId('detail-variables').textContent).toContain('SSE');
    expect(screen.getByTestId('detail-model').textContent).toBe('demo/local-model');
    expect(screen.getByTestId('detail-cost').textContent).toBe('$0.00012');
    expect(screen.getByTestId('usage-ttft').textContent).toBe('321 ms');
    fireEvent.click(screen.getByTestId('rerun-button'));
    expect(rerun).toHaveBeenCalledWith(RECORD);

    fireEvent.change(screen.getByTestId('history-filter'), { target: { value: 'error' } });
    const rows = screen.getAllByTestId('history-row');
    expect(rows.map((r) => r.getAttribute('data-execution-id'))).toEqual(['ex2']);
  });
});

describe('a cancelled run', () => {
  // What the server writes when the client leaves: no usage from the model, its estimate debited.
  const CANCELLED: ExecutionRecord = toExecution({
    id: 'ex3',
    data: () => ({ ...RECORD, status: 'cancelled', usage: null, tokens_debited: 1234 }),
  });

  it('shows the tokens the server debited for it in the live panel, once its record is final', () => {
    panel({ phase: 'cancelled', content: 'half', model: 'demo/local-model' }, { ...CANCELLED, status: 'streaming' });
    expect(screen.queryByTestId('usage-tokens')).toBeNull();
    cleanup();
    panel({ phase: 'cancelled', content: 'half', model: 'demo/local-model' }, CANCELLED);
    expect(screen.getByTestId('usage-tokens').textContent).toBe('1,234 debited (estimated)');
  });

  it('shows them in the history row and the opened run, not "—"', () => {
    render(<ExecutionHistory rows={[CANCELLED]} error={null} onRerun={() => undefined} />);
    expect(screen.getByTestId('history-tokens').textContent).toBe('1234');
    fireEvent.click(screen.getByTestId('history-open'));
    expect(screen.getByTestId('detail-tokens').textContent).toBe('1,234 debited (estimated)');
  });
});

describe('UsageMeterView', () => {
  it('draws today\'s tokens against the budget', () => {
    render(<UsageMeterView used={125_000} budget={500_000} />);
    const meter = screen.getByTestId('usage-meter');
    expect(meter.querySelector('meter')?.getAttribute('value')).toBe('125000');
    expect(meter.textContent).toContain('125,000 / 500,000 tokens today');
  });
});
