// Browser suite: the real app in Chromium against the local stack (Auth, Firestore and
// Functions emulators, the Python function, the fake OpenRouter). See README, "Web app".
//
// The fake model is steered by `[[fake ...]]` directives inside the prompt text.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  authUid,
  createPrompt,
  ensureDir,
  eventually,
  fakeRequests,
  fakeStats,
  launchBrowser,
  loadEnv,
  phase,
  readDoc,
  signIn,
  signUp,
  startRun,
  tid,
  waitForPhase,
} from './support.mjs';

// Written to the git-ignored test-results/ on every run; the README's picture is a copy of
// one of them in e2e/screenshots/ (copy it over to refresh it).
const SCREENSHOT = fileURLToPath(new URL('../test-results/streaming.png', import.meta.url));
const env = loadEnv();
const stamp = `${Date.now()}-${process.pid}`;
const email = `e2e-${stamp}@example.com`;
const password = 'correct-horse-42';

let browser;
let context;
let page;
const consoleErrors = [];

before(async () => {
  browser = await launchBrowser(env);
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
});

after(async () => {
  if (consoleErrors.length > 0) console.log('browser console errors:\n' + consoleErrors.join('\n'));
  await browser?.close();
});

/** Samples the streamed text in the page every 60 ms until the run leaves connecting/streaming. */
function sampleStream(timeoutMs = 30_000) {
  return page.evaluate(async (limit) => {
    const samples = [];
    const deadline = performance.now() + limit;
    let sawSpinner = false;
    while (performance.now() < deadline) {
      const ph = document.querySelector('[data-testid="execution-status"]')?.getAttribute('data-phase');
      if (document.querySelector('[data-testid="spinner"]')) sawSpinner = true;
      const text = document.querySelector('[data-testid="stream-output"]')?.textContent ?? '';
      samples.push({ ph, len: text.length });
      if (ph !== 'connecting' && ph !== 'streaming' && ph !== undefined) break;
      await new Promise((r) => setTimeout(r, 60));
    }
    return { samples, sawSpinner };
  }, timeoutMs);
}

describe('RAG Prompt Library in a browser', { concurrency: false }, () => {
  it('creates an account, signs out and signs back in', async () => {
    await signUp(page, env, email, password);
    assert.equal(await page.textContent(tid('user-email')), email);
    assert.ok(await authUid(env, email, password), 'the Auth emulator knows the new account');

    await page.click(tid('sign-out'));
    await page.waitForSelector(tid('sign-in-form'));
    await page.fill(tid('email-input'), email);
    await page.fill(tid('password-input'), 'wrong-password');
    await page.click(tid('sign-in-button'));
    await page.waitForSelector(tid('auth-error'));

    await signIn(page, env, email, password);
    assert.equal(await page.textContent(tid('user-email')), email);
  });

  it('streams a run token by token, then shows usage, model and time to first token', async () => {
    const promptId = await createPrompt(page, {
      title: 'Launch announcement',
      systemPrompt: 'You write short, friendly product copy.',
      content:
        'Write a launch note for {{product}} aimed at {{audience}}. ' +
        '[[fake chunks=40 delay=0.1 first_chunk_delay=0.8]]',
      variables: [{ name: 'audience', required: false, default: 'developers' }],
    });
    assert.ok(promptId);
    const before = await fakeStats(env);

    await startRun(page, { variables: { product: 'streaming' } });
    const sampling = sampleStream();
    // Screenshot mid-stream, for the README.
    await page.waitForFunction(
      () => (document.querySelector('[data-testid="stream-output"]')?.textContent ?? '').length > 160,
      null,
      { timeout: 20_000, polling: 50 },
    );
    assert.equal(await phase(page), 'streaming');
    await ensureDir(SCREENSHOT);
    await page.screenshot({ path: SCREENSHOT });

    const { samples, sawSpinner } = await sampling;
    assert.ok(sawSpinner, 'a spinner shows until the first token');
    assert.equal(samples.at(-1).ph, 'completed');
    const during = samples.filter((s) => s.ph === 'streaming').map((s) => s.len);
    const distinct = [...new Set(during)];
    assert.ok(distinct.length >= 5, `text grew in at least 5 steps while streaming, saw ${JSON.stringify(distinct)}`);
    for (let i = 1; i < during.length; i++) assert.ok(during[i] >= during[i - 1], 'text never shrinks');
    const finalText = await page.textContent(tid('stream-output'));
    assert.ok(distinct.at(-1) <= finalText.length);
    assert.match(finalText, /Hello from the local demo model/);
    assert.match(finalText, /Write a launch note for streaming aimed at developers/);

    assert.equal(await page.textContent(tid('usage-model')), 'demo/local-model');
    assert.match(await page.textContent(tid('usage-tokens')), /\d+ in · \d+ out · \d+ total/);
    // Time to first token as the server measured it, shown once the record is final.
    await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="usage-ttft"]')?.textContent ?? ''));
    assert.match(await page.textContent(tid('usage-ttft')), /^\d+(\.\d+)? (ms|s)$/);
    assert.notEqual(await page.textContent(tid('usage-cost')), '—');

    const executionId = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
    assert.ok(executionId, 'the panel knows the execution id from the start event');
    const record = await eventually(async () => {
      const doc = await readDoc(env, `executions/${executionId}`);
      return doc?.status === 'completed' ? doc : null;
    }, { what: 'the execution record to be completed' });
    assert.equal(record.prompt_id, promptId);
    assert.equal(record.output, finalText);
    assert.deepEqual(record.variables, { product: 'streaming', audience: 'developers' });

    const afterStats = await fakeStats(env);
    assert.ok(afterStats.streams_completed > before.streams_completed, 'the fake served the stream to the end');

    // History shows the run (Firestore query on owner_uid + prompt_id, newest first).
    await page.waitForSelector(`${tid('history-row')}[data-execution-id="${executionId}"][data-status="completed"]`);
  });

  it('cancels a run: the partial text stays and the backend records it as cancelled', async () => {
    await createPrompt(page, {
      title: 'Long essay (cancel me)',
      content: 'A long answer please. [[fake chunks=150 delay=0.1]]',
    });
    const before = await fakeStats(env);
    await startRun(page);
    await page.waitForFunction(
      () => (document.querySelector('[data-testid="stream-output"]')?.textContent ?? '').length > 30,
      null,
      { timeout: 20_000, polling: 50 },
    );
    await page.click(tid('cancel-button'));
    // The page says Cancelled at once, whatever the server does next (a bound far from normal).
    assert.equal(await waitForPhase(page, ['cancelled', 'completed', 'error'], 5_000), 'cancelled');
    await page.waitForSelector(tid('cancelled-notice'));
    const partial = await page.textContent(tid('stream-output'));
    assert.ok(partial.length > 30, 'the text that arrived stays on screen');
    assert.equal(await page.getAttribute(tid('stream-output'), 'data-partial'), 'true');

    const executionId = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
    assert.ok(executionId);
    // The fake's whole answer takes 15 s, so a backend that missed the cancel finishes it
    // within this wait and the failure names the status it wrote instead.
    const record = await eventually(async () => {
      const doc = await readDoc(env, `executions/${executionId}`);
      return doc && doc.status !== 'streaming' ? doc : null;
    }, { timeoutMs: 30_000, what: 'the execution record to leave streaming' });
    const upstreamClosed = (await fakeStats(env)).early_closes > before.early_closes;
    assert.equal(
      record.status,
      'cancelled',
      upstreamClosed
        ? 'the upstream was closed early but the record does not say cancelled'
        : 'the cancel call ({"cancel": id}) did not stop the run (the fake OpenRouter saw no early close)',
    );
    assert.ok(record.output.startsWith(partial), 'the backend kept the partial output the browser showed');
    // What C1 promises, no more: the record ends `cancelled` holding the shown text as a prefix.
    // A run is resumable, so leaving does not stop it; the cancel call does, and when it lands on
    // another instance (a Functions emulator worker too) the generator stops at its next checkpoint
    // (about CHECKPOINT_SECONDS later), so the record may hold more than the page showed. Status
    // `cancelled` (not `completed`: the whole answer takes 15 s) says it stopped before the end.

    // The backend closed its upstream connection too.
    await eventually(async () => (await fakeStats(env)).early_closes > before.early_closes, {
      what: 'the fake OpenRouter to see the upstream closed early',
    });
    await page.waitForSelector(`${tid('history-row')}[data-execution-id="${executionId}"][data-status="cancelled"]`);
  });

  it('names the missing required variables', async () => {
    await createPrompt(page, {
      title: 'Explainer',
      content: 'Explain {{subject}} to {{audience}}.',
      variables: [
        { name: 'subject', required: true },
        { name: 'audience', required: true },
      ],
    });
    // The form checks required variables itself (workbench.e2e.test.mjs); drop one on the way
    // out to see the server's refusal and its wording.
    const stream = '**/execute_prompt_stream';
    await page.route(stream, (route) => {
      const body = JSON.parse(route.request().postData());
      return route.continue({ postData: JSON.stringify({ ...body, variables: { subject: 'SSE' } }) });
    });
    await startRun(page, { variables: { subject: 'SSE', audience: 'students' } });
    assert.equal(await waitForPhase(page, ['error', 'completed']), 'error');
    await page.unroute(stream);
    assert.equal(await page.getAttribute(tid('execution-error'), 'data-code'), 'missing_variables');
    assert.equal(await page.textContent(tid('execution-error-title')), 'Missing variables');
    assert.equal(await page.textContent(tid('execution-error-detail')), 'Fill in: audience.');
    assert.equal(await page.$(tid('stream-output')), null, 'no output for a refused run');
  });

  it('keeps the partial text on screen when the model fails mid-stream', async () => {
    await createPrompt(page, {
      title: 'Flaky provider',
      content: 'Start answering. [[fake chunks=12 delay=0.05 error_after=3]]',
    });
    await startRun(page);
    assert.equal(await waitForPhase(page, ['error', 'completed']), 'error');
    const code = await page.getAttribute(tid('execution-error'), 'data-code');
    assert.ok(['upstream_error', 'upstream_disconnected'].includes(code), `mid-stream error code, got ${code}`);
    const partial = await page.textContent(tid('stream-output'));
    assert.ok(partial.length > 0, 'the text before the failure stays');
    assert.match(partial, /^Hello from the local demo model/);
    await page.waitForSelector(tid('partial-badge'));
    assert.equal(await page.getAttribute(tid('stream-output'), 'data-partial'), 'true');

    const executionId = await page.getAttribute(tid('streaming-panel'), 'data-execution-id');
    const record = await eventually(async () => {
      const doc = await readDoc(env, `executions/${executionId}`);
      return doc && doc.status !== 'streaming' ? doc : null;
    }, { what: 'the execution record to be finalised' });
    assert.equal(record.status, 'error');
    assert.equal(record.output, partial);
  });

  it('runs without streaming through execute_prompt', async () => {
    await createPrompt(page, {
      title: 'Summary (non-streaming)',
      content: 'Summarise {{thing}}. [[fake chunks=10 delay=0.05]]',
      isPublic: true,
      variables: [{ name: 'thing', required: false, default: 'the defaults' }],
    });
    const marker = `CTX-${stamp}`;
    await startRun(page, { streaming: false, context: `Retrieved passage ${marker}` });
    await page.waitForSelector(tid('standard-panel'));
    assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed');
    assert.equal(await page.$(tid('streaming-panel')), null);
    const text = await page.textContent(tid('standard-output'));
    assert.match(text, /Summarise the defaults\./, 'the declared default filled the variable');
    assert.equal(await page.textContent(tid('usage-model')), 'demo/local-model');

    const executionId = await page.getAttribute(tid('standard-panel'), 'data-execution-id');
    const record = await readDoc(env, `executions/${executionId}`);
    assert.equal(record.status, 'completed');
    assert.equal(record.output, text);

    // The RAG context reached the model as a system message.
    const requests = await fakeRequests(env);
    const sent = requests.filter((r) => JSON.stringify(r.json ?? {}).includes(marker));
    assert.equal(sent.length, 1);
    const system = sent[0].json.messages.filter((m) => m.role === 'system').map((m) => m.content);
    assert.ok(system.some((c) => typeof c === 'string' && c.includes(marker)));
  });

  it('tells apart rate limits, missing credits, a bad token, a missing prompt, bad model or variables, and network loss', async () => {
    const errorOf = async () => {
      assert.equal(await waitForPhase(page, ['error', 'completed']), 'error');
      return {
        code: await page.getAttribute(tid('execution-error'), 'data-code'),
        title: await page.textContent(tid('execution-error-title')),
        detail: await page.textContent(tid('execution-error-detail')),
      };
    };

    await createPrompt(page, { title: 'Busy provider', content: 'Hi. [[fake status=429 retry_after=2]]' });
    await startRun(page);
    const limited = await errorOf();
    assert.equal(limited.code, 'rate_limited');
    assert.match(limited.detail, /Try again in 2 s/, 'Retry-After crosses CORS and is shown');

    await createPrompt(page, { title: 'No credits', content: 'Hi. [[fake status=402]]' });
    await startRun(page);
    assert.equal((await errorOf()).code, 'out_of_credits');

    // The real backend judges a bad token and an unknown prompt id; the browser only alters the request.
    await createPrompt(page, { title: 'Plain', content: 'Hi. [[fake chunks=4 delay=0.01]]' });
    const stream = '**/execute_prompt_stream';
    await page.route(stream, (route) =>
      route.continue({ headers: { ...route.request().headers(), authorization: 'Bearer not-a-token' } }),
    );
    await startRun(page);
    const unauth = await errorOf();
    assert.equal(unauth.code, 'unauthenticated');
    assert.equal(unauth.title, 'You are not signed in');
    await page.unroute(stream);

    await page.route(stream, (route) => {
      const body = JSON.parse(route.request().postData());
      return route.continue({ postData: JSON.stringify({ ...body, prompt_id: `missing-${stamp}` }) });
    });
    await startRun(page);
    assert.equal((await errorOf()).title, 'Prompt not found');
    await page.unroute(stream);

    await page.route(stream, (route) => {
      const body = JSON.parse(route.request().postData());
      return route.continue({ postData: JSON.stringify({ ...body, model: 'not/allowed-model' }) });
    });
    await startRun(page);
    const notAllowed = await errorOf();
    assert.equal(notAllowed.code, 'model_not_allowed');
    assert.match(notAllowed.detail, /demo\/local-model/, 'lists the allowed models');
    await page.unroute(stream);

    await page.route(stream, (route) => {
      const body = JSON.parse(route.request().postData());
      return route.continue({ postData: JSON.stringify({ ...body, variables: { typo_name: 'x' } }) });
    });
    await startRun(page);
    const unknown = await errorOf();
    assert.equal(unknown.code, 'unknown_variables');
    assert.match(unknown.detail, /typo_name/);
    await page.unroute(stream);

    await page.route(stream, (route) => route.abort('internetdisconnected'));
    await startRun(page);
    const offline = await errorOf();
    assert.equal(offline.code, 'network_error');
    assert.equal(offline.title, 'Network connection lost');
    await page.unroute(stream);

    const titles = [limited.title, unauth.title, offline.title, notAllowed.title, unknown.title, 'Prompt not found'];
    assert.equal(new Set(titles).size, titles.length);

    await startRun(page);
    assert.equal(await waitForPhase(page, ['completed', 'error']), 'completed', 'a clean run works again');
  });

  it('lists a public prompt for another user, and hides private ones', async () => {
    const other = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    try {
      const page2 = await other.newPage();
      page2.setDefaultTimeout(15_000);
      await signUp(page2, env, `e2e-other-${stamp}@example.com`, password);
      const publicIds = await eventually(async () => {
        const ids = await page2.$$eval(`${tid('public-prompts')} ${tid('prompt-item')}`, (els) =>
          els.map((e) => e.getAttribute('data-prompt-id')),
        );
        const mine = await page.$$eval(`${tid('my-prompts')} ${tid('prompt-item')}`, (els) =>
          els.map((e) => ({ id: e.getAttribute('data-prompt-id'), title: e.textContent })),
        );
        const shared = mine.find((p) => p.title.startsWith('Summary (non-streaming)'));
        return shared && ids.includes(shared.id) ? { ids, mine, shared } : null;
      }, { what: 'the public prompt to show for the other user' });
      const privateIds = publicIds.mine.filter((p) => p.id !== publicIds.shared.id).map((p) => p.id);
      assert.ok(privateIds.length >= 4);
      for (const id of privateIds) assert.ok(!publicIds.ids.includes(id), 'a private prompt stays private');
      assert.equal(await page2.$$eval(`${tid('my-prompts')} ${tid('prompt-item')}`, (els) => els.length), 0);
    } finally {
      await other.close();
    }
  });
});
