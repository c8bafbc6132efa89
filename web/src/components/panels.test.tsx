// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { IDLE_STATE, type ExecutionState } from '../hooks/executionState';
import { ExecutionError } from '../services/errors';
import type { Prompt } from '../types';
import { buildRequest } from './PromptExecutionForm';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';

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

function panel(state: Partial<ExecutionState>) {
  render(<StreamingExecutionPanel state={{ ...IDLE_STATE, ...state }} onCancel={() => undefined} />);
}

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

  it('shows usage, model and time to first token when done', () => {
    panel({
      phase: 'completed',
      content: 'done',
      model: 'demo/local-model',
      usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0.00012 },
      ttftMs: 321,
      totalMs: 2400,
    });
    expect(screen.getByTestId('usage-model').textContent).toBe('demo/local-model');
    expect(screen.getByTestId('usage-tokens').textContent).toBe('9 in · 2 out · 11 total');
    expect(screen.getByTestId('usage-cost').textContent).toBe('$0.00012');
    expect(screen.getByTestId('usage-ttft').textContent).toBe('321 ms');
    expect(screen.getByTestId('usage-total-time').textContent).toBe('2.40 s');
    expect(screen.getByTestId('stream-output').getAttribute('data-partial')).toBe('false');
  });
});
