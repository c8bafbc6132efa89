// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_STATE } from '../hooks/executionState';
import { recordOf } from '../testing/records';
import type { Prompt, PromptVersion } from '../types';
import { fieldsOfPrompt, LATEST, type RunTarget } from '../services/versions';
import { ExecutionHistory } from './ExecutionHistory';
import { PromptExecutionForm } from './PromptExecutionForm';
import { PromptVersions } from './PromptVersions';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';
import { settingRows, VersionDiff } from './VersionDiff';

const spies = vi.hoisted(() => ({
  restoreVersion: vi.fn(async () => undefined),
  setLabel: vi.fn(async () => undefined),
  removeLabel: vi.fn(async () => undefined),
}));
vi.mock('../services/versions', async (importOriginal) => ({ ...(await importOriginal<object>()), ...spies }));
// The meter holds a Firestore listener; it has tests of its own.
vi.mock('./UsageMeter', () => ({ UsageMeter: () => null }));

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  for (const spy of Object.values(spies)) spy.mockClear();
});

const PROMPT: Prompt = {
  id: 'p1',
  owner_uid: 'u1',
  title: 'T',
  content: 'Three {{topic}}',
  variables: [],
  public: false,
  updatedAtMs: null,
  version: 3,
  labels: { production: 2 },
};

const version = (n: number, over: Partial<PromptVersion> = {}): PromptVersion => ({
  ...fieldsOfPrompt(PROMPT),
  number: n,
  created_by: 'u1',
  createdAtMs: n * 1000,
  summary: `summary ${n}`,
  ...over,
});

const VERSIONS = [
  version(3),
  version(2, { content: 'Two {{topic}}' }),
  version(1, { content: 'One {{subject}}', variables: [{ name: 'subject', required: true, default: null }], preferred_model: 'm/x' }),
];

describe('VersionDiff', () => {
  it('marks the settings that differ and leaves the rest plain', () => {
    const rows = settingRows(VERSIONS[2]!, VERSIONS[0]!);
    expect(rows.filter((r) => r.changed).map((r) => [r.key, r.left, r.right])).toEqual([
      ['variables', 'subject (required)', '—'],
      ['preferred_model', 'm/x', '—'],
    ]);
  });

  it('draws both texts side by side, line numbers and kinds', () => {
    render(<VersionDiff before={VERSIONS[2]!} after={VERSIONS[0]!} onClose={() => undefined} />);
    const row = screen.getAllByTestId('diff-row');
    expect(row.map((r) => r.getAttribute('data-kind'))).toEqual(['changed']);
    expect(within(row[0]!).getByTestId('diff-left').textContent).toBe('One {{subject}}');
    expect(within(row[0]!).getByTestId('diff-right').textContent).toBe('Three {{topic}}');
    expect(screen.queryByTestId('diff-system')).toBeNull();
  });
});

describe('PromptVersions', () => {
  const versions = { rows: VERSIONS, error: null };

  it('lists each version with its labels, who and summary; the latest is marked', () => {
    render(<PromptVersions prompt={PROMPT} uid="u1" versions={versions} onRun={() => undefined} />);
    const rows = screen.getAllByTestId('version-row');
    expect(rows.map((r) => r.getAttribute('data-version'))).toEqual(['3', '2', '1']);
    expect(rows[0]!.textContent).toMatch(/latest/);
    expect(within(rows[1]!).getByTestId('version-label').getAttribute('data-label')).toBe('production');
    expect(within(rows[2]!).getByTestId('version-summary').textContent).toBe('summary 1');
    expect(rows[2]!.textContent).toMatch(/you ·/);
  });

  it('runs a chosen version (the latest as the latest), and restores an older one', async () => {
    const onRun = vi.fn<(t: RunTarget) => void>();
    render(<PromptVersions prompt={PROMPT} uid="u1" versions={versions} onRun={onRun} />);
    const [latest, , first] = screen.getAllByTestId('version-row');
    fireEvent.click(within(first!).getByTestId('version-run'));
    fireEvent.click(within(latest!).getByTestId('version-run'));
    expect(onRun.mock.calls).toEqual([[{ kind: 'version', version: 1 }], [LATEST]]);
    expect(within(latest!).queryByTestId('version-restore')).toBeNull();
    await act(async () => fireEvent.click(within(first!).getByTestId('version-restore')));
    expect(spies.restoreVersion).toHaveBeenCalledWith(expect.anything(), PROMPT, VERSIONS[2], 'u1');
  });

  it('sets and moves a label, and refuses a name the rules would not take', async () => {
    render(<PromptVersions prompt={PROMPT} uid="u1" versions={versions} onRun={() => undefined} />);
    const button = screen.getByTestId('label-set');
    // production points at 2 already: choosing 2 again changes nothing.
    fireEvent.change(screen.getByTestId('label-version'), { target: { value: '2' } });
    expect((button as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(screen.getByTestId('label-version'), { target: { value: '3' } });
    expect(button.textContent).toBe('Move label');
    await act(async () => fireEvent.click(button));
    expect(spies.setLabel).toHaveBeenCalledWith(expect.anything(), 'p1', 'production', 3);
    fireEvent.change(screen.getByTestId('label-name'), { target: { value: 'Bad.Name' } });
    expect(screen.getByTestId('label-invalid')).toBeTruthy();
    expect((button as HTMLButtonElement).disabled).toBe(true);
    await act(async () => fireEvent.click(screen.getByTestId('label-remove')));
    expect(spies.removeLabel).toHaveBeenCalledWith(expect.anything(), 'p1', 'production');
  });

  it("offers no restore and no labels on someone else's prompt", () => {
    render(<PromptVersions prompt={PROMPT} uid="u2" versions={versions} onRun={() => undefined} />);
    expect(screen.queryByTestId('version-restore')).toBeNull();
    expect(screen.queryByTestId('label-form')).toBeNull();
    expect(screen.queryByTestId('label-remove')).toBeNull();
    expect(screen.getAllByTestId('version-row')[0]!.textContent).toMatch(/the owner ·/);
  });
});

describe('the run form and versions', () => {
  let bodies: Array<Record<string, unknown>>;
  beforeEach(() => {
    bodies = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
        bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
        return new Response(new ReadableStream({ start: (c) => c.close() }), {
          status: 200,
          headers: { 'Content-Type': 'text/event-stream' },
        });
      }),
    );
  });

  function renderForm(target: RunTarget, onTarget = vi.fn()) {
    render(
      <PromptExecutionForm
        prompt={PROMPT}
        uid="u1"
        getIdToken={async () => 'tok'}
        records={[]}
        rerun={null}
        versions={VERSIONS}
        target={target}
        onTarget={onTarget}
      />,
    );
    return onTarget;
  }

  it('offers the latest, each label and each older version', () => {
    const onTarget = renderForm(LATEST);
    const select = screen.getByTestId('version-select') as HTMLSelectElement;
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([
      ['latest', 'Latest (v3)'],
      ['l:production', 'Label production (now v2)'],
      ['v:2', 'v2 — summary 2'],
      ['v:1', 'v1 — summary 1'],
    ]);
    fireEvent.change(select, { target: { value: 'l:production' } });
    fireEvent.change(select, { target: { value: 'v:1' } });
    expect(onTarget.mock.calls).toEqual([[{ kind: 'label', label: 'production' }], [{ kind: 'version', version: 1 }]]);
  });

  it("asks for the chosen version's variables and sends its number", async () => {
    renderForm({ kind: 'version', version: 1 });
    expect(screen.queryByTestId('var-input-topic')).toBeNull();
    fireEvent.change(screen.getByTestId('var-input-subject'), { target: { value: 'tides' } });
    await act(async () => fireEvent.click(screen.getByTestId('run-button')));
    await waitFor(() => expect(bodies).toHaveLength(1));
    expect(bodies[0]).toMatchObject({ prompt_id: 'p1', variables: { subject: 'tides' }, version: 1 });
    expect('label' in bodies[0]!).toBe(false);
  });

  it('sends a label as a label (the server resolves it), and nothing for the latest', async () => {
    renderForm({ kind: 'label', label: 'production' });
    fireEvent.change(screen.getByTestId('var-input-topic'), { target: { value: 'tides' } });
    await act(async () => fireEvent.click(screen.getByTestId('run-button')));
    await waitFor(() => expect(bodies).toHaveLength(1));
    expect(bodies[0]).toMatchObject({ label: 'production' });
    expect('version' in bodies[0]!).toBe(false);
    cleanup();
    renderForm(LATEST);
    fireEvent.change(screen.getByTestId('var-input-topic'), { target: { value: 'tides' } });
    await act(async () => fireEvent.click(screen.getByTestId('run-button')));
    await waitFor(() => expect(bodies).toHaveLength(2));
    expect('version' in bodies[1]! || 'label' in bodies[1]!).toBe(false);
  });

  it('compares versions: one request per version on one model, each with only its own variables, one comparison id', async () => {
    renderForm(LATEST);
    fireEvent.click(screen.getByTestId('compare-versions-toggle'));
    const boxes = screen.getAllByTestId('compare-version') as HTMLInputElement[];
    fireEvent.click(boxes.find((b) => b.value === '1')!);
    fireEvent.click(boxes.find((b) => b.value === '3')!);
    expect(screen.getByTestId('run-button').textContent).toBe('Compare 2 versions');
    fireEvent.change(screen.getByTestId('var-input-subject'), { target: { value: 'tides' } });
    fireEvent.change(screen.getByTestId('var-input-topic'), { target: { value: 'seas' } });
    await act(async () => fireEvent.click(screen.getByTestId('run-button')));
    await waitFor(() => expect(bodies).toHaveLength(2));
    expect(bodies.map((b) => [b.version, b.variables])).toEqual([
      [1, { subject: 'tides' }],
      [3, { topic: 'seas' }],
    ]);
    expect(bodies[0]!.model).toBe(bodies[1]!.model);
    expect(bodies[0]!.comparison_id).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(bodies[1]!.comparison_id).toBe(bodies[0]!.comparison_id);
    const columns = await screen.findAllByTestId('comparison-column');
    expect(columns.map((c) => c.getAttribute('data-version'))).toEqual(['1', '3']);
    expect(screen.queryByTestId('mark-winner-button')).toBeNull();
  });
});

describe('the history names the version each run used', () => {
  it('on a run and on a comparison of versions', () => {
    const rows = [
      recordOf('e3', { prompt_version: 2 }),
      recordOf('c2', { comparison_id: 'c', requested_model: 'm/a', prompt_version: 3 }),
      recordOf('c1', { comparison_id: 'c', requested_model: 'm/a', prompt_version: 1 }),
      recordOf('old'),
    ];
    render(<ExecutionHistory rows={rows} error={null} onRerun={() => undefined} />);
    const runs = screen.getAllByTestId('history-row');
    expect(within(runs[0]!).getByTestId('history-version').textContent).toBe('v2');
    expect(within(runs[1]!).queryByTestId('history-version')).toBeNull();
    const models = screen.getByTestId('history-comparison-models');
    expect(models.textContent).toBe('m/a v1v3');
  });
});

describe('the live panel names the version its run used', () => {
  it('once the record says', () => {
    const state = { ...IDLE_STATE, phase: 'completed' as const, executionId: 'e1' };
    const { rerender } = render(<StreamingExecutionPanel state={state} onCancel={() => undefined} record={null} />);
    expect(screen.queryByTestId('run-version')).toBeNull();
    rerender(<StreamingExecutionPanel state={state} onCancel={() => undefined} record={recordOf('e1', { prompt_version: 4 })} />);
    expect(screen.getByTestId('run-version').textContent).toBe('v4');
  });
});
