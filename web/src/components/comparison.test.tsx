// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_STATE, stateOfRecord, type ExecutionState } from '../hooks/executionState';
import { ExecutionError } from '../services/errors';
import { recordOf } from '../testing/records';
import type { Comparison, ExecutionRecord } from '../types';
import { ComparisonColumns, type ColumnData } from './ComparisonView';
import { ExecutionHistory } from './ExecutionHistory';

afterEach(cleanup);

function record(id: string, overrides: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return recordOf(id, {
    output: `answer of ${id}`,
    variables: { x: '1' },
    finish_reason: 'stop',
    usage: { prompt_tokens: 4, completion_tokens: 20, total_tokens: 24, cost: 0.002 },
    ttft_ms: 200,
    duration_ms: 1200,
    createdAtMs: 1000,
    finishedAtMs: 2200,
    ...overrides,
  });
}

const COMPARISON: Comparison = {
  id: 'c1',
  owner_uid: 'u1',
  prompt_id: 'p1',
  models: ['m/a', 'm/b', 'm/c'],
  winner_model: null,
  winner_execution_id: null,
  createdAtMs: 1000,
};

const col = (model: string, state: Partial<ExecutionState>, rec: ExecutionRecord | null = null): ColumnData => ({
  key: model,
  model,
  state: { ...IDLE_STATE, ...state },
  record: rec,
});

const columnOf = (model: string) => screen.getAllByTestId('comparison-column').find((e) => e.dataset.model === model)!;

describe('ComparisonColumns', () => {
  it("shows each column's answer and figures; a failed one keeps its partial text beside the error", () => {
    render(
      <ComparisonColumns
        comparisonId="c1"
        comparison={COMPARISON}
        columns={[
          col('m/a', { phase: 'completed', content: '**bold** answer', executionId: 'ea', usage: record('ea').usage }, record('ea')),
          col('m/b', {
            phase: 'error',
            content: 'half an ans',
            executionId: 'eb',
            error: new ExecutionError('upstream_error', 'Provider disconnected', { midStream: true }),
          }),
          col('m/c', { phase: 'streaming', content: 'still going', executionId: 'ec' }),
        ]}
      />,
    );
    const a = within(columnOf('m/a'));
    expect(a.getByTestId('column-output').querySelector('strong')?.textContent).toBe('bold');
    expect(a.getByTestId('usage-ttft').textContent).toBe('200 ms');
    expect(a.getByTestId('column-tps').textContent).toBe('20 tok/s');
    expect(a.getByTestId('usage-tokens').textContent).toBe('4 in · 20 out · 24 total');
    expect(a.getByTestId('usage-cost').textContent).toBe('$0.0020');

    const b = within(columnOf('m/b'));
    expect(b.getByTestId('column-output').textContent).toContain('half an ans');
    expect(b.getByTestId('column-output').dataset.partial).toBe('true');
    expect(b.getByTestId('execution-error').dataset.code).toBe('upstream_error');
    expect(b.queryByTestId('mark-winner-button')).toBeNull();

    const c = within(columnOf('m/c'));
    expect(c.getByTestId('usage-ttft').textContent).toBe('…');
    expect(c.queryByTestId('mark-winner-button')).toBeNull();
  });

  it('says which model answered and why the ones before it were passed over', () => {
    const attempts = [
      { model: 'm/a', outcome: 'failed', error_code: 'rate_limited', status: 429, message: 'slow down' },
      { model: 'm/z', outcome: 'answered', error_code: null, status: null, message: null },
    ];
    render(<ComparisonColumns comparisonId="c1" comparison={null} columns={[col('m/a', { phase: 'completed', attempts })]} />);
    expect(screen.getByTestId('column-answered-by').textContent).toBe('Answered by m/z. ');
    expect(screen.getByTestId('column-skipped').textContent).toBe('Failed m/a (rate_limited · HTTP 429). ');
  });

  it('names every model tried in the error when all of them failed, and no routing line beside it', () => {
    const attempts = [
      { model: 'm/a', outcome: 'failed', error_code: 'rate_limited', status: 429, message: 'slow down' },
      { model: 'm/b', outcome: 'failed', error_code: 'upstream_unavailable', status: 503, message: null },
      { model: 'm/c', outcome: 'skipped', error_code: 'upstream_error', status: null, message: null },
    ];
    const error = new ExecutionError('upstream_error', 'Provider returned error', { status: 200, details: { attempts } });
    render(<ComparisonColumns comparisonId="c1" comparison={null} columns={[col('m/a', { phase: 'error', attempts, error })]} />);
    expect(screen.getByTestId('execution-error-tried').textContent).toBe(
      'Every model was tried in turn and none answered: m/a (rate_limited · HTTP 429), ' +
        'm/b (upstream_unavailable · HTTP 503), m/c (upstream_error).',
    );
    expect(screen.queryByTestId('column-routing')).toBeNull();
  });

  it('names every model tried in a reopened run whose fallbacks all failed', () => {
    const attempts = [
      { model: 'm/a', outcome: 'failed', error_code: 'rate_limited', status: 429, message: null },
      { model: 'm/b', outcome: 'failed', error_code: 'upstream_error', status: 502, message: null },
    ];
    const failed = record('ex9', { status: 'error', error_code: 'upstream_error', error_message: 'boom', attempts });
    render(<ComparisonColumns comparisonId="c1" comparison={null} columns={[col('m/a', stateOfRecord(failed), failed)]} />);
    expect(screen.getByTestId('execution-error-tried').textContent).toMatch(/m\/a \(rate_limited · HTTP 429\), m\/b/);
    cleanup();
    render(<ExecutionHistory rows={[failed]} error={null} onRerun={() => undefined} />);
    fireEvent.click(screen.getByTestId('history-open'));
    expect(screen.getByTestId('detail-error-tried').textContent).toContain('none answered: m/a (rate_limited · HTTP 429), m/b');
  });

  it('names no list when one model of several answered', () => {
    const attempts = [
      { model: 'm/a', outcome: 'failed', error_code: 'rate_limited', status: 429, message: null },
      { model: 'm/b', outcome: 'answered', error_code: null, status: null, message: null },
    ];
    const error = new ExecutionError('upstream_disconnected', 'cut', { status: 200, midStream: true, details: { attempts } });
    render(<ComparisonColumns comparisonId="c1" comparison={null} columns={[col('m/a', { phase: 'error', attempts, error })]} />);
    expect(screen.queryByTestId('execution-error-tried')).toBeNull();
    expect(screen.getByTestId('column-answered-by').textContent).toBe('Answered by m/b. ');
  });

  it('says nothing of routing when the column asked one model only', () => {
    const attempts = [{ model: 'm/a', outcome: 'failed', error_code: 'upstream_error', status: null, message: null }];
    render(<ComparisonColumns comparisonId="c1" comparison={null} columns={[col('m/a', { phase: 'error', attempts })]} />);
    expect(screen.queryByTestId('column-routing')).toBeNull();
  });

  it('marks the winner with the model that answered and its run, and shows it', async () => {
    const onWinner = vi.fn(async () => undefined);
    const columns = [
      col('m/a', { phase: 'completed', content: 'x', executionId: 'ea', model: 'm/a' }),
      col('m/b', { phase: 'completed', content: 'y', executionId: 'eb', model: 'm/z' }),
    ];
    const { rerender } = render(<ComparisonColumns comparisonId="c1" comparison={COMPARISON} columns={columns} onWinner={onWinner} />);
    fireEvent.click(within(columnOf('m/b')).getByTestId('mark-winner-button'));
    await waitFor(() => expect(onWinner).toHaveBeenCalledWith('c1', 'm/z', 'eb'));

    rerender(
      <ComparisonColumns
        comparisonId="c1"
        comparison={{ ...COMPARISON, winner_model: 'm/z', winner_execution_id: 'eb' }}
        columns={columns}
        onWinner={onWinner}
      />,
    );
    expect(columnOf('m/b').dataset.winner).toBe('true');
    expect(within(columnOf('m/b')).getByTestId('winner-badge')).toBeTruthy();
    expect(within(columnOf('m/b')).queryByTestId('mark-winner-button')).toBeNull();
    expect(within(columnOf('m/a')).queryByTestId('winner-badge')).toBeNull();
  });

  it('shows why a winner could not be saved', async () => {
    const onWinner = vi.fn(async () => {
      throw new Error('Missing or insufficient permissions.');
    });
    render(
      <ComparisonColumns
        comparisonId="c1"
        comparison={COMPARISON}
        columns={[col('m/a', { phase: 'completed', content: 'x', executionId: 'ea' })]}
        onWinner={onWinner}
      />,
    );
    fireEvent.click(screen.getByTestId('mark-winner-button'));
    expect((await screen.findByTestId('mark-winner-error')).textContent).toContain('Missing or insufficient permissions.');
  });

  it('cancels the column whose button is pressed', () => {
    const onCancel = vi.fn();
    render(
      <ComparisonColumns
        comparisonId="c1"
        comparison={null}
        columns={[col('m/a', { phase: 'streaming' }), col('m/b', { phase: 'streaming' })]}
        onCancel={onCancel}
      />,
    );
    fireEvent.click(within(columnOf('m/b')).getByTestId('column-cancel'));
    expect(onCancel).toHaveBeenCalledWith(1);
  });
});

describe('stateOfRecord', () => {
  it('draws a stored run like a live one; only a failed run shows an error', () => {
    const failed = stateOfRecord(record('e1', { status: 'error', error_code: 'upstream_error', error_message: 'gone', output: 'part' }));
    expect(failed.phase).toBe('error');
    expect(failed.error?.code).toBe('upstream_error');
    expect(failed.content).toBe('part');
    const cancelled = stateOfRecord(record('e2', { status: 'cancelled', error_code: 'client_disconnected' }));
    expect(cancelled.phase).toBe('cancelled');
    expect(cancelled.error).toBeNull();
  });
});

describe('ExecutionHistory with comparisons', () => {
  const rows = [
    record('single', { createdAtMs: 5000 }),
    record('eb', { comparison_id: 'c1', requested_model: 'm/b', model: 'm/b', createdAtMs: 1002 }),
    record('ec', {
      comparison_id: 'c1',
      requested_model: 'm/c',
      model: 'm/c',
      status: 'error',
      error_code: 'upstream_error',
      output: 'part',
      createdAtMs: 1001,
    }),
    record('ea', { comparison_id: 'c1', requested_model: 'm/a', createdAtMs: 1003 }),
  ];

  it('lists a comparison as one entry that reopens side by side, in the order of its models, with the winner', () => {
    const comparison = { ...COMPARISON, winner_model: 'm/b', winner_execution_id: 'eb' };
    render(<ExecutionHistory rows={rows} error={null} onRerun={() => undefined} comparisons={[comparison]} />);
    expect(screen.getAllByTestId('history-row').map((r) => r.dataset.executionId)).toEqual(['single']);
    const entry = screen.getByTestId('history-comparison');
    expect(entry.dataset.comparisonId).toBe('c1');
    expect(entry.dataset.runs).toBe('3');
    expect(within(entry).getByTestId('history-comparison-models').textContent).toBe('m/a, m/b, m/c');
    expect(within(entry).getByTestId('history-winner').textContent).toBe('★ m/b');

    fireEvent.click(within(entry).getByTestId('history-open'));
    const detail = screen.getByTestId('comparison-detail');
    const columns = within(detail).getAllByTestId('comparison-column');
    expect(columns.map((c) => [c.dataset.model, c.dataset.phase, c.dataset.winner])).toEqual([
      ['m/a', 'completed', 'false'],
      ['m/b', 'completed', 'true'],
      ['m/c', 'error', 'false'],
    ]);
    expect(within(columns[2]!).getByTestId('column-output').dataset.partial).toBe('true');
    expect(within(detail).getByTestId('comparison-winner').textContent).toBe('Winner: m/b');
  });

  it('shows a comparison under a status filter when one of its runs has that status', () => {
    render(<ExecutionHistory rows={rows} error={null} onRerun={() => undefined} />);
    fireEvent.change(screen.getByTestId('history-filter'), { target: { value: 'error' } });
    expect(screen.queryAllByTestId('history-row')).toEqual([]);
    expect(screen.getByTestId('history-comparison').dataset.comparisonId).toBe('c1');
    fireEvent.change(screen.getByTestId('history-filter'), { target: { value: 'cancelled' } });
    expect(screen.queryByTestId('history-comparison')).toBeNull();
  });
});
