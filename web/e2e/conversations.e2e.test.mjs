// Browser suite for issue 25: every page has a URL (reload, Back and Forward, a deep link opened
// after sign-in, another user's run "not found"), the history across prompts (a deleted
// prompt's runs included, searchable), the phone layout (the prompt list out of the way of the
// run form, the answer and the follow-up box), and conversations: a three-turn one with a
// regenerate and an edit, and a follow-up on a comparison column.
// Same stack and helpers as the other suites; the console must stay free of errors and warnings.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createPrompt,
  eventually,
  layoutProblems,
  loadEnv,
  readDoc,
  screenshot,
  signedUpSession,
  signIn,
  startRun,
  tid,
  waitForPhase,
} from './support.mjs';

const env = loadEnv();
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const [LOCAL, FAST] = ['demo/local-model', 'demo/fast-model'];

let browser;
let page;
let consoleProblems;
let email;
let password;

before(async () => {
  ({ browser, page, consoleProblems, email, password } = await signedUpSession(env, 'conv', { viewport: DESKTOP }));
});

after(async () => {
  await browser?.close();
});

const path = () => new URL(page.url()).pathname;

/** The marker each route draws, and what it must say about the thing the URL names. */
async function onRoute(p, marker) {
  await page.waitForSelector(marker);
  assert.equal(path(), p);
}

async function runToEnd(variables = {}) {
  await startRun(page, { variables });
  assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed');
  return page.getAttribute(tid('streaming-panel'), 'data-execution-id');
}

const turn = (n) => `${tid('turn')}[data-turn="${n}"]`;

async function waitForTurn(n, phase = 'completed') {
  await page.waitForSelector(`${turn(n)} ${tid('turn-answer')}[data-phase="${phase}"]`, { timeout: 30_000 });
}

describe('conversations, routes, history and the phone layout (issue 25)', { concurrency: false }, () => {
  let promptId;
  let runId;
  let comparisonId;

  it('gives each page a URL: reload stays, Back and Forward walk them', async () => {
    promptId = await createPrompt(page, { title: 'Routes', content: 'Describe a harbour. [[fake chunks=4 delay=0.01]]' });
    assert.equal(path(), `/prompts/${promptId}`);
    runId = await runToEnd();

    // A comparison, for its route.
    await page.check(tid('compare-toggle'));
    for (const box of await page.$$(tid('compare-model'))) await box.setChecked(false);
    for (const m of [LOCAL, FAST]) await page.check(`${tid('compare-model')}[value="${m}"]`);
    await page.click(tid('run-button'));
    await page.waitForSelector(`${tid('comparison-panel')}:not([data-comparison-id=""])`);
    comparisonId = await page.getAttribute(tid('comparison-panel'), 'data-comparison-id');
    await page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid="comparison-column"]')].every((c) => c.getAttribute('data-phase') === 'completed'),
      null,
      { timeout: 30_000 },
    );
    await page.uncheck(tid('compare-toggle'));

    const routes = [
      [`/prompts/${promptId}`, `${tid('prompt-view')}[data-prompt-id="${promptId}"]`, null],
      [`/prompts/${promptId}/edit`, tid('prompt-editor'), () => page.click(tid('edit-prompt-button'))],
      [`/runs/${runId}`, `${tid('conversation')}[data-conversation-id="${runId}"] ${tid('turn-output')}`, () => page.goto(`${env.webUrl}/runs/${runId}`)],
      [`/comparisons/${comparisonId}`, `${tid('comparison-detail')}[data-comparison-id="${comparisonId}"] ${tid('column-output')}`, () => page.goto(`${env.webUrl}/comparisons/${comparisonId}`)],
      ['/history', tid('history-page'), () => page.click(tid('nav-history'))],
      ['/documents', tid('documents-page'), () => page.click(tid('nav-documents'))],
      ['/', tid('home'), () => page.click(tid('nav-prompts'))],
    ];
    for (const [p, marker, go] of routes) {
      if (go) await go();
      await onRoute(p, marker);
      await page.reload();
      await onRoute(p, marker);
    }
    for (const [p, marker] of [...routes].reverse().slice(1)) {
      await page.goBack();
      await onRoute(p, marker);
    }
    for (const [p, marker] of routes.slice(1)) {
      await page.goForward();
      await onRoute(p, marker);
    }
  });

  it('opens a deep link after sign-in, and says "not found" for another user’s run', async () => {
    const other = await browser.newContext({ viewport: DESKTOP });
    try {
      const page2 = await other.newPage();
      page2.setDefaultTimeout(15_000);
      await page2.goto(`${env.webUrl}/runs/${runId}`);
      await page2.fill(tid('email-input'), email);
      await page2.fill(tid('password-input'), password);
      await page2.click(tid('sign-in-button'));
      await page2.waitForSelector(`${tid('conversation')}[data-conversation-id="${runId}"] ${tid('turn-output')}`);
      assert.equal(new URL(page2.url()).pathname, `/runs/${runId}`);

      // Another user: the same link, and a link to nothing, read alike.
      await page2.click(tid('sign-out'));
      await page2.fill(tid('email-input'), `e2e-conv-other-${Date.now()}@example.com`);
      await page2.fill(tid('password-input'), 'correct-horse-42');
      await page2.click(tid('create-account-button'));
      await page2.waitForSelector(`${tid('not-found')}[data-what="run"]`);
      assert.equal(new URL(page2.url()).pathname, `/runs/${runId}`);
      await page2.goto(`${env.webUrl}/runs/no-such-run`);
      await page2.waitForSelector(`${tid('not-found')}[data-what="run"]`);
      await page2.goto(`${env.webUrl}/comparisons/${comparisonId}`);
      await page2.waitForSelector(`${tid('not-found')}[data-what="comparison"]`);
      await page2.goto(`${env.webUrl}/prompts/${promptId}`);
      await page2.waitForSelector(`${tid('not-found')}[data-what="prompt"]`);
    } finally {
      await other.close();
    }
  });

  it('lists every run across prompts in the history, a deleted prompt’s too, and searches them', async () => {
    const goneId = await createPrompt(page, { title: 'Soon deleted', content: 'Name a lighthouse keeper. [[fake chunks=3 delay=0.01]]' });
    const goneRun = await runToEnd();
    await page.click(tid('delete-prompt-button'));
    await page.click(tid('delete-confirm-button'));
    await page.waitForSelector(tid('home'));
    assert.equal(path(), '/');

    await page.click(tid('nav-history'));
    const item = (id) => `${tid('history-item')}[data-id="${id}"]`;
    await page.waitForSelector(item(goneRun));
    await page.waitForSelector(item(runId));
    assert.ok(await page.$(`${item(goneRun)} ${tid('history-prompt-gone')}`), 'the deleted prompt is named as such');
    assert.ok(await page.$(`${tid('history-item')}[data-kind="comparison"][data-id="${comparisonId}"]`));

    // The deleted prompt's run is found by its own text (the fake echoes the prompt).
    await page.fill(tid('history-search'), 'lighthouse keeper');
    await page.waitForSelector(`${tid('history-item')} >> nth=0`);
    assert.deepEqual(await page.$$eval(tid('history-item'), (els) => els.map((e) => e.getAttribute('data-id'))), [goneRun]);
    assert.equal(new URL(page.url()).searchParams.get('q'), 'lighthouse keeper');
    // By the prompt's title.
    await page.fill(tid('history-search'), 'routes');
    await eventually(async () => !(await page.$(item(goneRun))) && (await page.$(item(runId))), { what: 'the search by title' });
    await page.fill(tid('history-search'), 'nothing-like-this-anywhere');
    await page.waitForSelector(tid('history-empty'));
    await page.fill(tid('history-search'), '');

    await page.click(`${item(goneRun)} ${tid('history-item-link')}`);
    await onRoute(`/runs/${goneRun}`, `${tid('conversation')} ${tid('conversation-prompt-gone')}`);
    assert.ok(goneId);
  });

  it('on a phone, puts the run form, the answer and the follow-up box before the prompt list', async () => {
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    try {
      const p = await phone.newPage();
      p.setDefaultTimeout(15_000);
      await signIn(p, env, email, password);
      // The home page is the prompt list.
      await p.waitForSelector(`${tid('my-prompts')} ${tid('prompt-item')}[data-prompt-id="${promptId}"]`);
      await p.click(`${tid('prompt-item')}[data-prompt-id="${promptId}"]`);
      await p.waitForSelector(`${tid('prompt-view')}[data-prompt-id="${promptId}"]`);
      assert.equal(await p.isVisible(tid('my-prompts')), false, 'the list is out of the way');
      const formTop = await p.$eval(tid('execution-form'), (el) => el.getBoundingClientRect().top);
      assert.ok(formTop < PHONE.height, `the run form starts on the first screen (at ${formTop})`);

      await p.click(tid('run-button'));
      await p.waitForFunction(() => document.querySelector('[data-testid="execution-status"]')?.getAttribute('data-phase') === 'completed', null, {
        timeout: 30_000,
      });
      await p.$eval(tid('follow-up'), (el) => el.scrollIntoView({ block: 'end' }));
      for (const box of [tid('stream-output'), tid('follow-up-input'), tid('follow-up-send')]) {
        assert.ok(await p.isVisible(box), `${box} is shown`);
      }
      // The answer and the follow-up box fit one screen together.
      const span = await p.evaluate(() => {
        const out = document.querySelector('[data-testid="stream-output"]').getBoundingClientRect();
        const send = document.querySelector('[data-testid="follow-up-send"]').getBoundingClientRect();
        return { top: out.top, bottom: send.bottom, height: window.innerHeight };
      });
      assert.ok(span.top >= 0 && span.bottom <= span.height, `answer and follow-up on one screen: ${JSON.stringify(span)}`);
      const problems = await layoutProblems(p);
      assert.ok(problems.scrollWidth <= problems.innerWidth, `page ${problems.scrollWidth} px wide in ${problems.innerWidth}`);
      assert.deepEqual(problems.unreachable, []);
      await screenshot(p, 'conversation-phone-run.png');

      // The run's own page: the thread and the follow-up box, nothing wider than the screen.
      await p.click(tid('run-link'));
      await p.waitForSelector(`${tid('conversation')} ${tid('turn-output')}`);
      assert.equal(await p.isVisible(tid('my-prompts')), false);
      await p.$eval(tid('follow-up-send'), (el) => el.scrollIntoView({ block: 'end' }));
      assert.ok(await p.isVisible(tid('follow-up-input')));
      const runProblems = await layoutProblems(p);
      assert.ok(runProblems.scrollWidth <= runProblems.innerWidth, `run page ${runProblems.scrollWidth} px wide`);
      assert.deepEqual(runProblems.unreachable, []);
      await screenshot(p, 'conversation-phone-page.png');

      // The drawer brings the list back, and picking closes it.
      await p.click(tid('drawer-toggle'));
      await p.waitForSelector(tid('my-prompts'));
      await p.click(tid('nav-history'));
      await p.waitForSelector(tid('history-page'));
      assert.equal(await p.isVisible(tid('my-prompts')), false);
      const historyProblems = await layoutProblems(p);
      assert.ok(historyProblems.scrollWidth <= historyProblems.innerWidth);
      assert.deepEqual(historyProblems.unreachable, []);
    } finally {
      await phone.close();
    }
  });

  it('holds a three-turn conversation with a regenerate and an edit, each version readable', async () => {
    const id = await createPrompt(page, { title: 'Chat', content: 'Tell me about tides. [[fake chunks=4 delay=0.01]]' });
    await page.goto(`${env.webUrl}/prompts/${id}`);
    const first = await runToEnd();
    await page.fill(tid('follow-up-input'), 'And the moon? [[fake chunks=4 delay=0.01]]');
    await page.click(tid('follow-up-send'));
    await onRoute(`/runs/${first}`, turn(2));
    await waitForTurn(2);
    await page.fill(tid('follow-up-input'), 'Spring tides? [[fake chunks=4 delay=0.01]]');
    await page.click(tid('follow-up-send'));
    await waitForTurn(3);
    assert.equal(await page.$$eval(tid('turn'), (els) => els.length), 3);

    // Regenerate the last answer on another model: a second version of turn 3.
    await page.selectOption(tid('follow-up-model'), FAST);
    await page.click(tid('regenerate-button'));
    await page.waitForSelector(`${turn(3)} ${tid('turn-versions')}[data-index="2"][data-count="2"]`);
    await waitForTurn(3);
    assert.equal(await page.textContent(`${turn(3)} ${tid('turn-model')}`), FAST);
    const regenerated = await page.getAttribute(turn(3), 'data-execution-id');
    const regenRecord = await readDoc(env, `executions/${regenerated}`);
    assert.equal(regenRecord.conversation_id, first);
    assert.equal(regenRecord.turn, 3);

    // Edit the last question: a third version of turn 3, with the new text.
    await page.click(`${turn(3)} ${tid('edit-button')}`);
    await page.fill(tid('edit-input'), 'Neap tides, then? [[fake chunks=4 delay=0.01]]');
    await page.click(tid('edit-send'));
    await page.waitForSelector(`${turn(3)} ${tid('turn-versions')}[data-index="3"][data-count="3"]`);
    await waitForTurn(3);
    assert.match(await page.textContent(`${turn(3)} ${tid('turn-message')}`), /Neap tides/);

    // The earlier versions stay readable.
    await page.click(`${turn(3)} ${tid('version-previous')}`);
    await page.click(`${turn(3)} ${tid('version-previous')}`);
    await page.waitForSelector(`${turn(3)} ${tid('turn-versions')}[data-index="1"]`);
    assert.match(await page.textContent(`${turn(3)} ${tid('turn-message')}`), /Spring tides/);

    // Reload: the conversation comes back from the records.
    await page.reload();
    await waitForTurn(3);
    assert.equal(await page.$$eval(tid('turn'), (els) => els.length), 3);
    // Blocks off screen skip painting (content-visibility): bring the last turn in first.
    await page.$eval(turn(3), (el) => el.scrollIntoView());
    await page.waitForTimeout(300);
    await screenshot(page, 'conversation-desktop.png');
    await page.goBack();
    await onRoute(`/prompts/${id}`, `${tid('prompt-view')}[data-prompt-id="${id}"]`);
    await page.goForward();
    await waitForTurn(3);
  });

  it('continues a comparison column as a conversation of its own', async () => {
    await page.goto(`${env.webUrl}/comparisons/${comparisonId}`);
    const column = `${tid('comparison-column')}[data-model="${FAST}"]`;
    await page.waitForSelector(`${column} ${tid('follow-up-input')}`);
    const columnId = await page.getAttribute(column, 'data-execution-id');
    await page.fill(`${column} ${tid('follow-up-input')}`, 'Shorter, please. [[fake chunks=3 delay=0.01]]');
    await page.click(`${column} ${tid('follow-up-send')}`);
    await onRoute(`/runs/${columnId}`, turn(2));
    await waitForTurn(2);
    const record = await readDoc(env, `executions/${await page.getAttribute(turn(2), 'data-execution-id')}`);
    assert.equal(record.parent_execution_id, columnId);
  });

  it('left nothing in the console', () => {
    assert.deepEqual(consoleProblems, []);
  });
});
