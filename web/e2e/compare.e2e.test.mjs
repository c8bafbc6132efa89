// Browser suite for issue 18: one prompt compared on three models side by side. One model
// fails mid-stream (the fake's per_model knobs), one column is cancelled, the comparison
// reopens from the history, and the winner becomes the prompt's default model.
// Same stack and helpers as the other suites; every failure here is one the test asks for
// and shows in the page, so the browser console must stay free of errors and warnings.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createPrompt,
  eventually,
  fakeConfig,
  fakeStats,
  finalRecord,
  layoutProblems,
  loadEnv,
  readDoc,
  screenshot,
  signedUpSession,
  tid,
} from './support.mjs';

const env = loadEnv();
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const [LOCAL, FAST, CAREFUL, BACKUP] = ['demo/local-model', 'demo/fast-model', 'demo/careful-model', 'demo/backup-model'];
const ERROR_AFTER = 3;
// Each model answers in its own words (the fake's per_model knobs), so a column showing
// another column's text would be seen.
const TEXT = {
  [LOCAL]: 'The **local** model says: a lighthouse is a tower whose lamp guides ships past the rocks at night.',
  [FAST]: 'The **fast** model says: tall tower, bright light, safe harbour.',
  [CAREFUL]: 'The **careful** model says: a lighthouse marks hazards and harbour entrances; its light pattern identifies it.',
};

let browser;
let page;
let consoleProblems;

before(async () => {
  ({ browser, page, consoleProblems } = await signedUpSession(env, 'cmp', { viewport: DESKTOP }));
});

after(async () => {
  // The fake's startup defaults, for the suites that run after this one.
  await fetch(`${env.fakeUrl}/_fake/reset`, { method: 'POST' }).catch(() => undefined);
  await browser?.close();
});

const column = (model) => `${tid('comparison-column')}[data-model="${model}"]`;

/** Turns compare mode on and checks exactly `models` (in the order given). */
async function chooseModels(models) {
  if (!(await page.isChecked(tid('compare-toggle')))) await page.check(tid('compare-toggle'));
  for (const box of await page.$$(tid('compare-model'))) await box.setChecked(false);
  for (const m of models) await page.check(`${tid('compare-model')}[value="${m}"]`);
}

async function waitForColumns(phases, timeout = 30_000) {
  await page.waitForFunction(
    (wanted) =>
      Object.entries(wanted).every(
        ([model, phase]) =>
          document.querySelector(`[data-testid="comparison-column"][data-model="${model}"]`)?.getAttribute('data-phase') === phase,
      ),
    phases,
    { timeout, polling: 50 },
  );
}


describe('comparing models (issue 18)', { concurrency: false }, () => {
  let promptId;
  let comparisonId;
  const ids = {};

  it('runs three models side by side; one fails mid-stream and keeps its partial text, the others complete', async () => {
    const before = await fakeStats(env);
    // Above every other source, for this model only: it fails after three chunks.
    await fakeConfig(env, {
      per_model: {
        [LOCAL]: { text: TEXT[LOCAL] },
        [FAST]: { text: TEXT[FAST] },
        [CAREFUL]: { text: TEXT[CAREFUL], error_after: ERROR_AFTER },
      },
    });
    promptId = await createPrompt(page, {
      title: 'Compare three',
      content: 'Describe {{thing}} in one paragraph. [[fake chunks=12 delay=0.05]]',
      variables: [{ name: 'thing', required: true }],
    });
    await page.fill(tid('var-input-thing'), 'a lighthouse');
    await chooseModels([LOCAL, FAST, CAREFUL]);
    assert.equal(await page.textContent(tid('run-button')), 'Compare 3 models');
    await page.click(tid('run-button'));

    await page.waitForSelector(tid('comparison-panel'));
    await waitForColumns({ [LOCAL]: 'completed', [FAST]: 'completed', [CAREFUL]: 'error' });
    comparisonId = await page.getAttribute(tid('comparison-panel'), 'data-comparison-id');
    assert.match(comparisonId, /^[A-Za-z0-9]{20}$/);
    const order = await page.$$eval(tid('comparison-column'), (els) => els.map((e) => e.getAttribute('data-model')));
    assert.deepEqual(order, [LOCAL, FAST, CAREFUL]);

    // The failed column: the error, in words, and the text that came before it, marked partial.
    const failed = column(CAREFUL);
    assert.equal(await page.getAttribute(`${failed} ${tid('execution-error')}`, 'data-code'), 'upstream_error');
    assert.equal(await page.getAttribute(`${failed} ${tid('column-output')}`, 'data-partial'), 'true');
    assert.ok(await page.isVisible(`${failed} ${tid('partial-badge')}`));
    const partial = (await page.textContent(`${failed} ${tid('column-output')}`)).trim();
    assert.ok(partial.length > 0, 'the partial text stays on screen');

    for (const model of [LOCAL, FAST, CAREFUL]) ids[model] = await page.getAttribute(column(model), 'data-execution-id');
    const records = Object.fromEntries(
      await Promise.all(Object.entries(ids).map(async ([model, id]) => [model, await finalRecord(env, id)])),
    );
    for (const [model, record] of Object.entries(records)) {
      assert.equal(record.comparison_id, comparisonId, `${model}: the record carries the comparison id`);
      assert.equal(record.requested_model, model);
      assert.equal(record.prompt_id, promptId);
      assert.deepEqual(record.variables, { thing: 'a lighthouse' }, 'same variables in every column');
    }
    assert.equal(records[LOCAL].status, 'completed');
    assert.equal(records[FAST].status, 'completed');
    assert.equal(records[CAREFUL].status, 'error');
    assert.ok(records[CAREFUL].output.length > 0 && TEXT[CAREFUL].startsWith(records[CAREFUL].output));
    assert.ok(records[CAREFUL].output.length < TEXT[CAREFUL].length, 'it stopped mid-answer');
    assert.ok(partial.startsWith('The careful model says'));
    // The completed columns show what the record holds, and the server's figures.
    for (const model of [LOCAL, FAST]) {
      const shown = (await page.textContent(`${column(model)} ${tid('column-output')}`)).trim();
      assert.equal(records[model].output, TEXT[model]);
      assert.equal(shown, TEXT[model].replaceAll('**', ''), `${model}: its own answer, rendered`);
      assert.equal(await page.textContent(`${column(model)} ${tid('column-output')} strong`), model.split('/')[1].split('-')[0]);
      await page.waitForFunction(
        (sel) => /\d/.test(document.querySelector(sel)?.textContent ?? ''),
        `${column(model)} ${tid('usage-ttft')}`,
      );
      assert.match(await page.textContent(`${column(model)} ${tid('column-tps')}`), /tok\/s$/);
      assert.match(await page.textContent(`${column(model)} ${tid('usage-tokens')}`), /\d+ in · \d+ out · \d+ total/);
      assert.notEqual(await page.textContent(`${column(model)} ${tid('usage-cost')}`), '—');
    }

    // The comparison document was written by the app, with the models in column order.
    const cmp = await readDoc(env, `comparisons/${comparisonId}`);
    assert.deepEqual(cmp.models, [LOCAL, FAST, CAREFUL]);
    assert.equal(cmp.prompt_id, promptId);
    assert.equal(cmp.winner_model, undefined);
    // One upstream attempt per model: each column asked its own model, and no fallback.
    const stats = await fakeStats(env);
    for (const model of [LOCAL, FAST, CAREFUL]) {
      assert.equal((stats.attempts?.[model] ?? 0) - (before.attempts?.[model] ?? 0), 1, `${model}: one attempt`);
    }
  });

  it('lays the columns out side by side on a desktop and stacked on a phone', async () => {
    try {
      for (const [name, size] of [
        ['comparison-desktop.png', DESKTOP],
        ['comparison-phone.png', PHONE],
      ]) {
        await page.setViewportSize(size);
        await page.waitForTimeout(200);
        const problems = await layoutProblems(page);
        assert.ok(problems.scrollWidth <= problems.innerWidth, `${name}: page ${problems.scrollWidth} px wide in ${problems.innerWidth}`);
        assert.deepEqual(problems.unreachable, [], `${name}: controls off screen`);
        const boxes = await page.$$eval(tid('comparison-column'), (els) => els.map((e) => e.getBoundingClientRect().top));
        const rows = new Set(boxes.map((top) => Math.round(top))).size;
        if (size === DESKTOP) assert.equal(rows, 1, 'three columns in one row');
        else assert.equal(rows, 3, 'one column a row on a phone');
        await page.$eval(tid('comparison-panel'), (el) => el.scrollIntoView());
        await screenshot(page, name);
      }
    } finally {
      await page.setViewportSize(DESKTOP);
    }
  });

  it('shows the comparison in the history as one entry, which reopens side by side', async () => {
    const entry = `${tid('history-comparison')}[data-comparison-id="${comparisonId}"]`;
    await page.waitForSelector(entry);
    assert.equal(await page.getAttribute(entry, 'data-runs'), '3');
    for (const id of Object.values(ids)) {
      assert.equal(await page.$(`${tid('history-row')}[data-execution-id="${id}"]`), null, 'no separate row per column');
    }
    assert.equal(await page.textContent(`${entry} ${tid('history-comparison-models')}`), [LOCAL, FAST, CAREFUL].join(', '));

    // A fresh page: the reopened comparison comes from the records alone.
    await page.reload();
    await page.click(`${tid('my-prompts')} ${tid('prompt-item')}[data-prompt-id="${promptId}"]`);
    await page.click(`${entry} ${tid('history-open')}`);
    const detail = `${tid('comparison-detail')}[data-comparison-id="${comparisonId}"]`;
    await page.waitForSelector(detail);
    const cols = await page.$$eval(`${detail} ${tid('comparison-column')}`, (els) =>
      els.map((e) => [e.getAttribute('data-model'), e.getAttribute('data-phase'), e.getAttribute('data-execution-id')]),
    );
    assert.deepEqual(cols, [
      [LOCAL, 'completed', ids[LOCAL]],
      [FAST, 'completed', ids[FAST]],
      [CAREFUL, 'error', ids[CAREFUL]],
    ]);
    const failed = `${detail} ${column(CAREFUL)}`;
    assert.equal(await page.getAttribute(`${failed} ${tid('execution-error')}`, 'data-code'), 'upstream_error');
    assert.equal(await page.getAttribute(`${failed} ${tid('column-output')}`, 'data-partial'), 'true');
    for (const model of [LOCAL, FAST]) {
      const shown = (await page.textContent(`${detail} ${column(model)} ${tid('column-output')}`)).trim();
      assert.equal(shown, TEXT[model].replaceAll('**', ''), `${model}: its own answer, from its record`);
    }
  });

  it('marks a winner; the prompt remembers the model, and the next run starts with it', async () => {
    const detail = `${tid('comparison-detail')}[data-comparison-id="${comparisonId}"]`;
    assert.equal(await page.inputValue(tid('model-select')).catch(() => null), LOCAL);
    await page.click(`${detail} ${column(FAST)} ${tid('mark-winner-button')}`);
    await page.waitForSelector(`${detail} ${column(FAST)} ${tid('winner-badge')}`);
    assert.equal(await page.getAttribute(`${detail} ${column(FAST)}`, 'data-winner'), 'true');
    assert.equal(await page.$(`${detail} ${column(LOCAL)} ${tid('winner-badge')}`), null);
    await page.waitForSelector(`${tid('history-comparison')}[data-comparison-id="${comparisonId}"] ${tid('history-winner')}`);

    const cmp = await eventually(async () => {
      const doc = await readDoc(env, `comparisons/${comparisonId}`);
      return doc?.winner_model ? doc : null;
    }, { what: 'the winner to be saved' });
    assert.equal(cmp.winner_model, FAST);
    assert.equal(cmp.winner_execution_id, ids[FAST]);
    assert.equal((await readDoc(env, `prompts/${promptId}`)).preferred_model, FAST);

    // The prompt's listener brings the preferred model back: the form starts with it.
    await page.uncheck(tid('compare-toggle'));
    await page.waitForFunction(
      (m) => document.querySelector('[data-testid="model-select"]')?.value === m,
      FAST,
    );
    await page.fill(tid('var-input-thing'), 'a lighthouse');
    await page.click(tid('run-button'));
    await page.waitForFunction(
      () => ['completed', 'error'].includes(document.querySelector('[data-testid="streaming-panel"] [data-testid="execution-status"]')?.getAttribute('data-phase')),
      null,
      { timeout: 30_000 },
    );
    const runId = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
    const run = await finalRecord(env, runId);
    assert.equal(run.status, 'completed');
    assert.equal(run.requested_model, FAST);
    assert.equal(run.model, FAST);
    assert.equal(run.comparison_id, undefined, 'a single run belongs to no comparison');

    // A new comparison starts with the preferred model too, as its first column.
    await page.check(tid('compare-toggle'));
    assert.match(await page.textContent(tid('compare-order')), new RegExp(`^Columns: ${FAST}, `));
    await page.uncheck(tid('compare-toggle'));
  });

  it('names a fallback model in the editor; when the model fails before answering, the fallback answers', async () => {
    await page.click(tid('edit-prompt-button'));
    await page.check(`${tid('fallback-model')}[value="${BACKUP}"]`);
    assert.equal(await page.textContent(tid('fallback-order')), `Order: ${BACKUP}`);
    await page.click(tid('save-prompt'));
    await page.waitForSelector(tid('prompt-view'));
    const saved = await eventually(async () => {
      const doc = await readDoc(env, `prompts/${promptId}`);
      return doc?.fallback_models ? doc : null;
    }, { what: 'the fallback models to be saved' });
    assert.deepEqual(saved.fallback_models, [BACKUP]);
    assert.equal(saved.preferred_model, FAST, 'editing the prompt keeps its preferred model');

    // The preferred model is refused upstream before its first byte: the fake routes on.
    await fakeConfig(env, { per_model: { [FAST]: { status: 429 } } });
    await page.waitForFunction((m) => document.querySelector('[data-testid="model-select"]')?.value === m, FAST);
    await page.fill(tid('var-input-thing'), 'a lighthouse');
    await page.click(tid('run-button'));
    await page.waitForFunction(
      (old) => {
        const panel = document.querySelector('[data-testid="streaming-panel"]');
        const phase = panel?.querySelector('[data-testid="execution-status"]')?.getAttribute('data-phase');
        return panel?.getAttribute('data-execution-id') !== old && ['completed', 'error'].includes(phase);
      },
      await page.getAttribute(tid('streaming-panel'), 'data-execution-id'),
      { timeout: 30_000 },
    );
    assert.equal(await page.textContent(`${tid('streaming-panel')} ${tid('usage-model')}`), BACKUP);
    assert.match(await page.textContent(`${tid('streaming-panel')} ${tid('column-answered-by')}`), new RegExp(BACKUP));
    assert.equal(await page.getAttribute(`${tid('streaming-panel')} ${tid('column-skipped')}`, 'data-model'), FAST);
    const run = await finalRecord(env, await page.getAttribute(tid('streaming-panel'), 'data-execution-id'));
    assert.equal(run.status, 'completed');
    assert.equal(run.requested_model, FAST);
    assert.equal(run.model, BACKUP);
    assert.deepEqual(run.models, [FAST, BACKUP]);
    assert.deepEqual(run.attempts.map((a) => [a.model, a.outcome]), [[FAST, 'skipped'], [BACKUP, 'answered']]);
  });

  it('cancels one column; the others complete and its record ends cancelled', async () => {
    await fetch(`${env.fakeUrl}/_fake/reset`, { method: 'POST' });
    // Long enough (8 s) that a cancel landing on another instance, which takes effect at the
    // generator's next checkpoint (C1: about CHECKPOINT_SECONDS later), still comes before the end.
    await createPrompt(page, { title: 'Compare and cancel', content: 'Go on at length. [[fake chunks=100 delay=0.08]]' });
    await chooseModels([LOCAL, FAST, CAREFUL]);
    await page.click(tid('run-button'));
    await waitForColumns({ [LOCAL]: 'streaming', [FAST]: 'streaming', [CAREFUL]: 'streaming' });
    await page.click(`${column(FAST)} ${tid('column-cancel')}`);
    await waitForColumns({ [FAST]: 'cancelled' });
    assert.ok(await page.isVisible(`${column(FAST)} ${tid('cancelled-notice')}`));
    const shown = (await page.$(`${column(FAST)} ${tid('column-output')}`)) ? await page.textContent(`${column(FAST)} ${tid('column-output')}`) : '';
    await waitForColumns({ [LOCAL]: 'completed', [FAST]: 'cancelled', [CAREFUL]: 'completed' });
    assert.equal(await page.$(tid('cancel-all-button')), null);

    const cancelled = await finalRecord(env, await page.getAttribute(column(FAST), 'data-execution-id'));
    assert.equal(cancelled.status, 'cancelled');
    // C1 promises the shown text as a prefix, not how much more the generator wrote before it stopped.
    assert.ok(cancelled.output.startsWith(shown), 'the record holds the text the column showed');
    for (const model of [LOCAL, CAREFUL]) {
      const record = await finalRecord(env, await page.getAttribute(column(model), 'data-execution-id'));
      assert.equal(record.status, 'completed', `${model} was not held up by the cancelled column`);
    }
  });

  it('cancels every column at once', async () => {
    await chooseModels([LOCAL, FAST]);
    await page.click(tid('run-button'));
    await waitForColumns({ [LOCAL]: 'streaming', [FAST]: 'streaming' });
    await page.click(tid('cancel-all-button'));
    await waitForColumns({ [LOCAL]: 'cancelled', [FAST]: 'cancelled' });
    for (const model of [LOCAL, FAST]) {
      const record = await finalRecord(env, await page.getAttribute(column(model), 'data-execution-id'));
      assert.equal(record.status, 'cancelled');
    }
  });

  it('left no error or warning in the browser console', () => {
    assert.deepEqual(consoleProblems, []);
  });
});
