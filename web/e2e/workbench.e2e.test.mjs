// Browser suite for issue 15: rendered answers, copy buttons, the layout on a phone and a
// desktop, live run history, delete, client checks, shortcuts, demo mode and the usage meter.
// Same stack and helpers as app.e2e.test.mjs; every run here is a normal one, so the browser
// console must stay free of errors and warnings.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  authUid,
  createPrompt,
  ensureDir,
  eventually,
  layoutProblems,
  loadEnv,
  readDoc,
  screenshot,
  signedUpSession,
  startRun,
  tid,
  waitForPhase,
} from './support.mjs';

const env = loadEnv();
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// The answer the fake model streams for the Markdown test (the directive's text= value: no
// `]` and no double quotes inside).
const CODE = "def greet(name):\n    return f'Hello, {name}'\n";
const MARKDOWN = [
  '# Release notes',
  '',
  'The **streaming** client is *faster* now; see https://example.com/docs for details.',
  '',
  '```python',
  CODE.trimEnd(),
  '```',
  '',
  '| Region | Requests | p50 ms | p95 ms | p99 ms | Errors | Retries | Notes |',
  '|---|---|---|---|---|---|---|---|',
  '| europe-west1 | 120000 | 41 | 88 | 140 | 12 | 30 | a-rather-long-cell-that-does-not-wrap-anywhere |',
  '| us-central1 | 98000 | 39 | 80 | 120 | 8 | 22 | another-long-cell-without-any-spaces-in-it |',
].join('\n');

const stamp = `${Date.now()}-${process.pid}`;

let browser;
let page;
let email;
let password;
let consoleProblems;

before(async () => {
  ({ browser, page, consoleProblems, email, password } = await signedUpSession(env, 'wb', {
    viewport: DESKTOP,
    permissions: ['clipboard-read', 'clipboard-write'],
  }));
  countRuns();
});

after(async () => {
  await browser?.close();
});

const clipboard = () => page.evaluate(() => navigator.clipboard.readText());

/** Sends of the run endpoints, counted by the browser. */
const runRequests = [];
function countRuns() {
  page.on('request', (req) => {
    if (/\/execute_prompt(_stream)?$/.test(new URL(req.url()).pathname) && req.method() === 'POST') runRequests.push(req.url());
  });
}

async function openPrompt(title) {
  await page.click(`${tid('my-prompts')} ${tid('prompt-item')}:has-text(${JSON.stringify(title)})`);
  await page.waitForSelector(`${tid('prompt-view')}:has-text(${JSON.stringify(title)})`);
}

describe('the workbench (issue 15)', { concurrency: false }, () => {
  it('shows the demo account on the local sign-in page, and it signs in', async () => {
    const demoEmail = process.env.E2E_DEMO_EMAIL;
    assert.ok(demoEmail, 'devstack sets E2E_DEMO_EMAIL');
    const other = await browser.newContext({ viewport: DESKTOP });
    try {
      const page2 = await other.newPage();
      page2.setDefaultTimeout(15_000);
      await page2.goto(env.webUrl);
      await page2.waitForSelector(tid('demo-account'));
      assert.equal(await page2.textContent(tid('demo-email')), demoEmail);
      assert.equal(await page2.textContent(tid('demo-password')), process.env.E2E_DEMO_PASSWORD);
      await page2.click(tid('use-demo-account'));
      assert.equal(await page2.inputValue(tid('email-input')), demoEmail);
      await page2.click(tid('sign-in-button'));
      await page2.waitForSelector(tid('user-email'));
      assert.equal(await page2.textContent(tid('user-email')), demoEmail);
    } finally {
      await other.close();
    }
  });

  it('says it is in demo mode and offers only the demo models', async () => {
    await createPrompt(page, { title: 'Demo check', content: 'Say hi. [[fake chunks=3 delay=0.01]]' });
    await page.waitForSelector(tid('demo-mode-note'));
    assert.match(await page.textContent(tid('demo-mode-note')), /demo\/local-model/);
    const options = await page.$$eval(`${tid('model-select')} option`, (els) => els.map((e) => e.value));
    assert.deepEqual(options, ['demo/local-model', 'demo/fast-model', 'demo/careful-model', 'demo/backup-model']);
  });

  let mdPromptId;
  let mdExecutionId;

  it('renders the streamed Markdown (heading, code block, table) and copies the answer and the code', async () => {
    mdPromptId = await createPrompt(page, {
      title: 'Markdown answer',
      content: `Release notes please. [[fake chunks=40 delay=0.03 text="${MARKDOWN}"]]`,
    });
    await startRun(page);
    assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed');
    mdExecutionId = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
    const out = tid('stream-output');
    assert.equal(await page.textContent(`${out} h1`), 'Release notes');
    assert.equal(await page.textContent(`${out} strong`), 'streaming');
    assert.equal(await page.textContent(`${out} pre code`), CODE);
    assert.equal(await page.$$eval(`${out} .md-table table tr`, (rows) => rows.length), 3);
    assert.equal(await page.getAttribute(`${out} a`, 'rel'), 'noopener noreferrer nofollow');
    assert.equal(await page.$(`${out} script`), null);

    await page.click(`${tid('streaming-panel')} ${tid('copy-code')}`);
    await page.waitForSelector(`${tid('streaming-panel')} ${tid('copy-code')}[data-state="copied"]`);
    assert.equal(await clipboard(), CODE);
    await page.click(`${tid('streaming-panel')} ${tid('copy-answer')}`);
    await page.waitForSelector(`${tid('streaming-panel')} ${tid('copy-answer')}[data-state="copied"]`);
    assert.equal(await clipboard(), MARKDOWN);

    const record = await eventually(async () => {
      const doc = await readDoc(env, `executions/${mdExecutionId}`);
      return doc?.status === 'completed' ? doc : null;
    }, { what: 'the record to be completed' });
    assert.equal(record.output, MARKDOWN);
  });

  it('shows one time to first token, the server-measured one, in the panel and the history alike', async () => {
    // The panel takes it from the run's record once the listener sees the record final.
    await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="usage-ttft"]')?.textContent ?? ''));
    const record = await readDoc(env, `executions/${mdExecutionId}`);
    const panelTtft = await page.textContent(`${tid('streaming-panel')} ${tid('usage-ttft')}`);
    assert.equal(panelTtft, record.ttft_ms < 1000 ? `${Math.round(record.ttft_ms)} ms` : `${(record.ttft_ms / 1000).toFixed(2)} s`);
    await page.click(`${tid('history-row')}[data-execution-id="${mdExecutionId}"] ${tid('history-open')}`);
    const detail = tid('execution-detail');
    assert.equal(await page.textContent(`${detail} ${tid('usage-ttft')}`), panelTtft);
    const labels = await page.$$eval('dt', (els) => els.map((e) => e.textContent).filter((t) => /first token/i.test(t)));
    assert.deepEqual([...new Set(labels)], ['First token (server)']);
  });

  it('opens a history row into the whole run, and runs it again; the new row updates live', async () => {
    const detail = tid('execution-detail');
    if (!(await page.$(`${detail}[data-execution-id="${mdExecutionId}"]`))) {
      await page.click(`${tid('history-row')}[data-execution-id="${mdExecutionId}"] ${tid('history-open')}`);
    }
    await page.waitForSelector(`${detail}[data-execution-id="${mdExecutionId}"]`);
    assert.equal(await page.textContent(`${detail} ${tid('detail-status')}`), 'completed');
    assert.equal(await page.textContent(`${detail} ${tid('detail-model')}`), 'demo/local-model');
    assert.match(await page.textContent(`${detail} ${tid('detail-tokens')}`), /\d+ in · \d+ out · \d+ total/);
    assert.notEqual(await page.textContent(`${detail} ${tid('detail-cost')}`), '—');
    assert.equal(await page.textContent(`${detail} h1`), 'Release notes', 'the full output, rendered');
    assert.equal(await page.textContent(`${detail} pre code`), CODE);

    const rowsBefore = await page.$$eval(tid('history-row'), (els) => els.length);
    await page.click(tid('rerun-button'));
    const newId = await eventually(async () => {
      const id = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
      return id && id !== mdExecutionId ? id : null;
    }, { what: 'a new run to start' });
    // The listener adds the row while it streams and turns it completed without a reload.
    await page.waitForSelector(`${tid('history-row')}[data-execution-id="${newId}"]`);
    await page.waitForSelector(`${tid('history-row')}[data-execution-id="${newId}"][data-status="completed"]`, {
      timeout: 30_000,
    });
    assert.equal(await page.$$eval(tid('history-row'), (els) => els.length), rowsBefore + 1);
    const record = await readDoc(env, `executions/${newId}`);
    assert.equal(record.prompt_id, mdPromptId);
    assert.equal(record.output, MARKDOWN);
  });

  it('keeps the page inside the screen at 1280×800 and at 390×844; the wide table scrolls in its own box', async () => {
    // The opened run is on screen too (it stays open from the test before).
    if (!(await page.$(tid('execution-detail')))) {
      await page.click(`${tid('history-row')}[data-execution-id="${mdExecutionId}"] ${tid('history-open')}`);
    }
    await page.waitForSelector(`${tid('execution-detail')}[data-execution-id="${mdExecutionId}"]`);
    try {
      for (const [name, size] of [
        ['layout-desktop.png', DESKTOP],
        ['layout-phone.png', PHONE],
      ]) {
        await page.setViewportSize(size);
        await page.waitForTimeout(200);
        const problems = await layoutProblems(page);
        assert.ok(problems.scrollWidth <= problems.innerWidth, `${name}: page ${problems.scrollWidth} px wide in ${problems.innerWidth}`);
        assert.deepEqual(problems.unreachable, [], `${name}: controls off screen`);
        if (size === PHONE) {
          for (const box of [tid('stream-output'), tid('detail-output')]) {
            const table = await page.$eval(`${box} .md-table`, (el) => ({
              scroll: el.scrollWidth,
              client: el.clientWidth,
              overflow: getComputedStyle(el).overflowX,
            }));
            assert.ok(table.scroll > table.client, `${box}: the wide table is wider than its box on a phone`);
            assert.equal(table.overflow, 'auto');
          }
          await page.$eval(tid('run-button'), (el) => el.scrollIntoView());
          assert.ok(await page.isVisible(tid('run-button')));
        }
        await screenshot(page, name);
      }
    } finally {
      await page.setViewportSize(DESKTOP);
    }
  });

  it('checks the fields as the server would: marks and focuses the faulty one and sends nothing', async () => {
    await createPrompt(page, {
      title: 'Checked inputs',
      content: 'Explain {{subject}} to {{audience}}. [[fake chunks=4 delay=0.01]]',
      variables: [
        { name: 'subject', required: true },
        { name: 'audience', required: true },
      ],
    });
    const sent = runRequests.length;
    await page.fill(tid('var-input-subject'), '   ');
    await page.click(tid('run-button'));
    await page.waitForSelector(`${tid('var-input-subject')}[aria-invalid="true"]`);
    assert.equal(await page.getAttribute(tid('var-input-audience'), 'aria-invalid'), 'true');
    await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'var-input-subject');
    const messages = await page.$$eval(tid('field-error'), (els) => els.map((e) => e.textContent));
    assert.deepEqual(messages, ['subject holds only spaces; enter a value.', 'audience is required.']);

    await page.fill(tid('var-input-subject'), 'SSE');
    await page.fill(tid('var-input-audience'), 'students');
    await page.fill(tid('max-tokens-input'), '40000');
    await page.fill(tid('temperature-input'), '2.5');
    await page.click(tid('run-button'));
    await page.waitForSelector(`${tid('max-tokens-input')}[aria-invalid="true"]`);
    assert.equal(await page.getAttribute(tid('temperature-input'), 'aria-invalid'), 'true');
    await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'max-tokens-input');
    assert.equal(await page.getAttribute(tid('var-input-subject'), 'aria-invalid'), null);
    assert.equal(runRequests.length, sent, 'no request left the browser');

    await page.fill(tid('max-tokens-input'), '200');
    await page.fill(tid('temperature-input'), '0.5');
    await page.click(tid('run-button'));
    assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed');
    assert.equal(runRequests.length, sent + 1);
  });

  it('runs with Ctrl+Enter from the Context box and cancels with Escape', async () => {
    const promptId = await createPrompt(page, { title: 'Long answer (keys)', content: 'Go on. [[fake chunks=150 delay=0.1]]' });
    await page.fill(tid('context-input'), 'Some retrieved text');
    await page.focus(tid('context-input'));
    await page.keyboard.press('Enter');
    assert.equal(await page.$(tid('streaming-panel')), null, 'Enter in the Context box is a newline, not a run');
    await page.keyboard.press('Control+Enter');
    assert.equal(await waitForPhase(page, ['streaming']), 'streaming');
    await page.keyboard.press('Escape');
    assert.equal(await waitForPhase(page, ['cancelled', 'completed', 'error']), 'cancelled');
    const executionId = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
    await page.waitForSelector(`${tid('history-row')}[data-execution-id="${executionId}"][data-status="cancelled"]`, {
      timeout: 30_000,
    });
    assert.ok(promptId);

    // The status filter.
    await page.selectOption(tid('history-filter'), 'completed');
    assert.equal(await page.$$eval(tid('history-row'), (els) => els.length), 0);
    await page.selectOption(tid('history-filter'), 'cancelled');
    assert.deepEqual(await page.$$eval(tid('history-row'), (els) => els.map((e) => e.getAttribute('data-status'))), ['cancelled']);
    await page.selectOption(tid('history-filter'), 'all');
  });

  it('waits for the whole answer, not a first token, when not streaming', async () => {
    await createPrompt(page, { title: 'Slow standard', content: 'Hi. [[fake chunks=3 delay=0.01 first_chunk_delay=1.5]]' });
    await startRun(page, { streaming: false });
    await page.waitForSelector(`${tid('standard-panel')} ${tid('spinner')}`);
    assert.equal(await page.textContent(tid('execution-status')), 'Waiting for the whole answer…');
    assert.doesNotMatch(await page.textContent(tid('standard-panel')), /first token…/);
    assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed');
  });

  it("draws today's tokens against the daily budget beside the run button, live", async () => {
    const uid = await authUid(env, email, password);
    const limits = await eventually(async () => {
      const doc = await readDoc(env, `user_limits/${uid}`);
      return doc?.tokens_today > 0 ? doc : null;
    }, { what: 'user_limits to count tokens' });
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="usage-meter"]')?.getAttribute('data-used')) === n,
      limits.tokens_today,
    );
    assert.equal(await page.getAttribute(tid('usage-meter'), 'data-budget'), '500000');
    const before = limits.tokens_today;
    await startRun(page);
    assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed');
    await eventually(async () => Number(await page.getAttribute(tid('usage-meter'), 'data-used')) > before, {
      what: 'the meter to count the new run',
    });
    const meterBox = await page.$eval(tid('usage-meter'), (el) => el.getBoundingClientRect().right);
    const runBox = await page.$eval(tid('run-button'), (el) => el.getBoundingClientRect().left);
    assert.ok(meterBox <= runBox, 'the meter sits beside (before) the run button');
  });

  it('deletes a prompt after a confirmation', async () => {
    const id = await createPrompt(page, { title: `Delete me ${stamp}`, content: 'Bye.' });
    await page.click(tid('delete-prompt-button'));
    await page.waitForSelector(tid('delete-confirm'));
    await page.click(tid('delete-cancel-button'));
    assert.equal(await page.$(tid('delete-confirm')), null);
    assert.ok(await readDoc(env, `prompts/${id}`), 'keeping it keeps it');

    await page.click(tid('delete-prompt-button'));
    await page.click(tid('delete-confirm-button'));
    await page.waitForSelector(`${tid('prompt-view')}[data-prompt-id="${id}"]`, { state: 'detached' });
    await page.waitForSelector(`${tid('prompt-item')}[data-prompt-id="${id}"]`, { state: 'detached' });
    assert.equal(await readDoc(env, `prompts/${id}`), null);
  });

  it('left no error or warning in the browser console', () => {
    assert.deepEqual(consoleProblems, []);
  });
});
