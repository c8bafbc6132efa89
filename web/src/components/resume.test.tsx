// @vitest-environment jsdom
import { cleanup, fireEvent, render, renderHook, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_STATE, stateOfRecord } from '../hooks/executionState';
import { runToReattach, useReattach } from '../hooks/useReattach';
import { describeError, ExecutionError } from '../services/errors';
import { toExecution } from '../services/prompts';
import { recordOf } from '../testing/records';
import type { ExecutionRecord } from '../types';
import { ExecutionHistory } from './ExecutionHistory';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';

afterEach(cleanup);

const streaming = (id: string, overrides: Partial<ExecutionRecord> = {}) =>
  recordOf(id, { status: 'streaming', resumable: true, ...overrides });

describe('Reconnecting…', () => {
  it('is said in a status region that is there, empty, before the drop', () => {
    const { rerender } = render(
      <StreamingExecutionPanel
        state={{ ...IDLE_STATE, phase: 'streaming', content: 'Hel' }}
        onCancel={() => undefined}
        record={null}
      />,
    );
    const region = screen.getByTestId('reconnecting');
    expect(region.getAttribute('role')).toBe('status');
    expect(region.textContent).toBe('');
    rerender(
      <StreamingExecutionPanel
        state={{ ...IDLE_STATE, phase: 'streaming', content: 'Hel', reconnecting: true }}
        onCancel={() => undefined}
        record={null}
      />,
    );
    expect(screen.getByTestId('reconnecting')).toBe(region);
    expect(region.textContent).toBe('Reconnecting…');
    // The text so far stays, and so does Cancel.
    expect(screen.getByTestId('stream-output').textContent).toContain('Hel');
    expect(screen.getByTestId('cancel-button')).toBeTruthy();
  });
});

describe('an interrupted run', () => {
  const INTERRUPTED = toExecution({
    id: 'ex9',
    data: () => ({ ...recordOf('ex9'), status: 'interrupted', output: 'The first half', resumable: true }),
  });

  it('is listed with a clear label, can be filtered, and opens with its partial text marked', () => {
    render(
      <ExecutionHistory
        rows={[INTERRUPTED, recordOf('ex1', { output: 'whole' })]}
        error={null}
        onRerun={() => undefined}
      />,
    );
    const row = screen.getAllByTestId('history-row')[0]!;
    expect(row.getAttribute('data-status')).toBe('interrupted');
    expect(row.querySelector('.badge-interrupted')?.getAttribute('title')).toMatch(/stopped mid-answer/);
    fireEvent.change(screen.getByTestId('history-filter'), { target: { value: 'interrupted' } });
    expect(screen.getAllByTestId('history-row').map((r) => r.getAttribute('data-execution-id'))).toEqual(['ex9']);

    fireEvent.click(screen.getByTestId('history-open'));
    expect(screen.getByTestId('detail-status').textContent).toBe('interrupted');
    expect(screen.getByTestId('detail-interrupted').textContent).toMatch(/Interrupted\..*what it had saved/);
    expect(screen.getByTestId('detail-partial-badge').textContent).toBe('Partial output');
    expect(screen.getByTestId('detail-output').textContent).toBe('The first half');
  });

  it('reopens as a failed column with its text and the interrupted words', () => {
    const state = stateOfRecord(INTERRUPTED);
    expect(state.phase).toBe('error');
    expect(state.content).toBe('The first half');
    expect(state.error?.code).toBe('interrupted');
    expect(describeError(state.error!).title).toBe('Interrupted');
  });

  it('reads resumable from the record', () => {
    expect(INTERRUPTED.resumable).toBe(true);
    expect(toExecution({ id: 'x', data: () => ({}) }).resumable).toBe(false);
  });
});

describe('describeError for durable streams', () => {
  it('words a resume of a run that is not the user’s', () => {
    expect(describeError(new ExecutionError('execution_not_found', 'No such execution.', { status: 404 })).title).toBe(
      'Run not found',
    );
  });
});

describe('reattaching on load', () => {
  it('picks the newest single run still streaming that asked to be resumable, not a follow-up', () => {
    expect(
      runToReattach([
        streaming('c1', { comparison_id: 'cmp' }),
        streaming('t2', { turn: 2, parent_execution_id: 'ex0', conversation_id: 'ex0' }),
        streaming('old', { resumable: false }),
        recordOf('done'),
        streaming('ex2'),
        streaming('ex1'),
      ])?.id,
    ).toBe('ex2');
    expect(runToReattach([recordOf('done'), streaming('x', { resumable: false })])).toBeNull();
  });

  it('attaches once, when the first rows arrive, and only to a page that runs nothing', () => {
    const attach = vi.fn();
    const { rerender } = renderHook(({ rows, idle }) => useReattach(rows, idle, attach), {
      initialProps: { rows: [] as ExecutionRecord[], idle: true },
    });
    expect(attach).not.toHaveBeenCalled();
    rerender({ rows: [streaming('ex1')], idle: true });
    expect(attach).toHaveBeenCalledWith('ex1');
    rerender({ rows: [streaming('ex2'), streaming('ex1')], idle: true });
    expect(attach).toHaveBeenCalledTimes(1);
  });

  it('leaves a run alone that the page itself started', () => {
    const attach = vi.fn();
    const { rerender } = renderHook(({ rows, idle }) => useReattach(rows, idle, attach), {
      initialProps: { rows: [] as ExecutionRecord[], idle: false },
    });
    rerender({ rows: [streaming('mine')], idle: false });
    rerender({ rows: [streaming('mine')], idle: true });
    expect(attach).not.toHaveBeenCalled();
  });
});
