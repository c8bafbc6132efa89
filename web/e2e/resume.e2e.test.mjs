// Browser suite for durable streams (issue 24): the app resumes a dropped stream by itself,
// reattaches to a run after a reload (of the prompt's page or the run's), and Cancel still
// cancels after a reconnect.
//
// The fake model is steered by `[[fake ...]]` directives inside the prompt text; each run here
// lasts several seconds, so the drop, the reload and the cancel land in its middle.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createPrompt,
  eventually,
  loadEnv,
  readDoc,
  signedUpSession,
  startRun,
  tid,
  waitForPhase,
} from './support.mjs';

const env = loadEnv();

let browser;
let context;
let page;
let consoleProblems;

before(async () => {
  ({ browser, context, page, consoleProblems } = await signedUpSession(env, 'resume', {
    viewport: { width: 1280, height: 860 },
  }));
});

after(async () => {
  await context?.setOffline(false).catch(() => undefined);
  await browser?.close();
});

const output = () => page.textContent(tid('stream-output'));
const executionId = () => page.getAttribute(tid('streaming-panel'), 'data-execution-id');

/** Waits until the answer shows at least `chars` characters (the run is in its middle). */
function waitForText(chars, timeout = 20_000) {
  return page.waitForFunction(
    (n) => (document.querySelector('[data-testid="stream-output"]')?.textContent ?? '').length >= n,
    chars,
    { timeout, polling: 50 },
  );
}

/** Resolves true once "Reconnecting…" has shown (sampled in the page, so a short one is seen too). */
function watchReconnecting(timeoutMs) {
  return page.evaluate(async (limit) => {
    const deadline = performance.now() + limit;
    while (performance.now() < deadline) {
      if (document.querySelector('[data-testid="reconnecting"]')?.textContent === 'Reconnecting…') return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }, timeoutMs);
}

async function finalRecord(id, status) {
  return eventually(
    async () => {
      const doc = await readDoc(env, `executions/${id}`);
      return doc?.status === status ? doc : null;
    },
    { timeoutMs: 20_000, what: `execution ${id} to be ${status}` },
  );
}

describe('durable streams in a browser', { concurrency: false }, () => {
  it('finishes with the undisturbed text after 3 s offline in the middle of a run', async () => {
    await createPrompt(page, {
      title: 'Resume after a drop',
      content: 'Tell me about {{thing}}. [[fake chunks=60 delay=0.1]]',
      variables: [{ name: 'thing', required: true }],
    });

    // The same run undisturbed: the fake's answer depends on the prompt only.
    await startRun(page, { variables: { thing: 'rivers' } });
    await waitForPhase(page, 'completed');
    const undisturbed = await output();
    const undisturbedRecord = await finalRecord(await executionId(), 'completed');

    await startRun(page, { variables: { thing: 'rivers' } });
    await waitForText(40);
    const id = await executionId();
    const sawReconnecting = watchReconnecting(15_000);
    await context.setOffline(true);
    await new Promise((r) => setTimeout(r, 3_000));
    await context.setOffline(false);
    assert.equal(await sawReconnecting, true, 'the panel said Reconnecting… while offline');

    assert.equal(await waitForPhase(page, ['completed', 'error', 'cancelled'], 30_000), 'completed');
    assert.equal(await executionId(), id, 'the same run went on: it was resumed, not run again');
    assert.equal(await output(), undisturbed);
    assert.equal(await page.textContent(tid('reconnecting')), '');
    const record = await finalRecord(id, 'completed');
    assert.equal(record.output, undisturbedRecord.output);
  });

  it('reattaches to the run after a reload in its middle', async () => {
    const promptId = await createPrompt(page, {
      title: 'Resume after a reload',
      content: 'Describe {{thing}} at length. [[fake chunks=80 delay=0.1]]',
      variables: [{ name: 'thing', required: true }],
    });
    await startRun(page, { variables: { thing: 'glaciers' } });
    await waitForText(40);
    const id = await executionId();

    await page.reload();
    await page.waitForSelector(tid('user-email'));
    // The prompt shown after a reload: its own URL once routes exist, else picked in the list.
    if (!(await page.$(`${tid('prompt-view')}[data-prompt-id="${promptId}"]`))) {
      await page.click(`${tid('prompt-item')}[data-prompt-id="${promptId}"]`);
    }
    await page.waitForSelector(`${tid('streaming-panel')}[data-execution-id="${id}"]`);
    assert.equal(await waitForPhase(page, ['completed', 'error', 'cancelled'], 30_000), 'completed');
    // The reload did not cancel the run, and the page shows all of it, from the first token.
    const record = await finalRecord(id, 'completed');
    assert.equal(await output(), record.output);
    assert.match(record.output, /Describe glaciers at length/);
  });

  it('reattaches to the run after a reload of its own page (/runs/:id) in its middle', async () => {
    await createPrompt(page, { title: 'Resume on its page', content: 'Tell me about dunes. [[fake chunks=80 delay=0.1]]' });
    await startRun(page);
    await waitForText(40);
    const id = await executionId();

    await page.goto(`${env.webUrl}/runs/${id}`);
    const answer = `${tid('turn')} ${tid('turn-answer')}`;
    // Reattached: text on the page while the run still streams (a record shows none before its
    // end), from the first token, until it completes.
    await page.waitForFunction(
      (sel) => {
        const el = document.querySelector(sel);
        return el?.getAttribute('data-phase') === 'streaming' && (el.textContent ?? '').length >= 60;
      },
      answer,
      { timeout: 20_000, polling: 50 },
    );
    await page.waitForSelector(`${answer}[data-phase="completed"]`, { timeout: 30_000 });
    const record = await finalRecord(id, 'completed');
    assert.equal(await page.textContent(`${answer} ${tid('turn-output')}`), record.output);
  });

  it('cancels the run on the server when Cancel is pressed after a reconnect', async () => {
    await createPrompt(page, {
      title: 'Cancel after a reconnect',
      content: 'Go on about {{thing}}. [[fake chunks=300 delay=0.1]]',
      variables: [{ name: 'thing', required: true }],
    });
    await startRun(page, { variables: { thing: 'clouds' } });
    await waitForText(40);
    const id = await executionId();

    const sawReconnecting = watchReconnecting(10_000);
    await context.setOffline(true);
    await new Promise((r) => setTimeout(r, 1_500));
    await context.setOffline(false);
    assert.equal(await sawReconnecting, true);
    // Reconnected: the region is empty again and new text arrives.
    await page.waitForFunction(() => document.querySelector('[data-testid="reconnecting"]')?.textContent === '', null, {
      timeout: 15_000,
    });
    const before = (await output()).length;
    await waitForText(before + 20);

    const pressed = Date.now();
    await page.click(tid('cancel-button'));
    assert.equal(await waitForPhase(page, 'cancelled'), 'cancelled');
    // Cancelled by the call: well before the 30 s the run would run on with nobody attached,
    // and before its natural end (300 chunks at 0.1 s).
    await finalRecord(id, 'cancelled');
    assert.ok(Date.now() - pressed < 10_000, 'the record was cancelled by the call, not by the grace period');
  });

  it('leaves nothing in the console but the offline period’s network messages', () => {
    const offline =
      /ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|Could not reach Cloud Firestore|net::ERR_|Failed to fetch|WebChannelConnection/;
    assert.deepEqual(
      consoleProblems.filter((p) => !offline.test(p)),
      [],
    );
  });
});
