// Browser suite for issue 27: prompt versions. A prompt edited twice has three versions; the
// diff of 1 and 3 shows both texts side by side; version 1 runs; restoring it makes version 4;
// a label moved between two runs by label takes each run to where it points; two versions run
// side by side in the comparison view; the list and the diff fit a phone. A prompt saved before
// versions were kept gets its version 1 at its first save. The runs need the backend's
// `version`/`label` (issue 27, versions helper); saves, list, diff, restore and labels need only
// the rules.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  authUid,
  docWhen,
  eventually,
  finalRecord,
  layoutProblems,
  loadEnv,
  screenshot,
  signedUpSession,
  tid,
} from './support.mjs';

const env = loadEnv();
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const TEXT = {
  1: 'Version one: tell me about {{topic}}.',
  2: 'Version two: describe {{topic}} briefly.',
  3: 'Version three: describe {{topic}} in one line.\nThen stop.',
};

let browser;
let context;
let page;
let consoleProblems;
let email;
let password;

before(async () => {
  ({ browser, context, page, consoleProblems, email, password } = await signedUpSession(env, 'ver', { viewport: DESKTOP }));
});

after(async () => {
  await browser?.close();
});

const row = (n) => `${tid('version-row')}[data-version="${n}"]`;

async function versionNumbers() {
  return page.$$eval(tid('version-row'), (els) => els.map((e) => Number(e.getAttribute('data-version'))));
}

async function waitForVersions(count) {
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="version-row"]').length === n, count);
}

/** Edits the prompt's content and saves it with a summary. */
async function edit(content, summary) {
  await page.click(tid('edit-prompt-button'));
  await page.fill(tid('prompt-content-input'), content);
  await page.fill(tid('version-summary-input'), summary);
  await page.click(tid('save-prompt'));
  await page.waitForSelector(tid('prompt-view'));
  await openVersions();
}

/** Unfolds the versions panel (folded whenever the prompt's page is drawn anew). */
async function openVersions() {
  // A prompt's page loads its prompt after the route changes: the panel comes with it.
  await page.waitForSelector(tid('versions-panel'));
  if (!(await page.$eval(tid('versions-panel'), (el) => el.open))) await page.click(tid('versions-toggle'));
}

const serverDoc = (path, ok) => docWhen(env, path, ok);

/** Runs with the form as it is and returns the final record. */
async function runAndRecord() {
  await page.click(tid('run-button'));
  await page.waitForFunction(
    () => ['completed', 'error'].includes(document.querySelector('[data-testid="execution-status"]')?.getAttribute('data-phase')),
    undefined,
    { timeout: 30_000 },
  );
  assert.equal(await page.getAttribute(tid('execution-status'), 'data-phase'), 'completed', await page.textContent(tid('streaming-panel')));
  const id = await eventually(async () => {
    const rows = await page.$$eval(tid('history-row'), (els) => els.map((e) => e.getAttribute('data-execution-id')));
    return rows[0] ?? null;
  });
  return { id, record: await finalRecord(env, id) };
}

describe('prompt versions (issue 27)', { concurrency: false }, () => {
  let promptId;
  let uid;

  it('keeps every save as a numbered version with who, when and a summary', async () => {
    uid = await authUid(env, email, password);
    await page.click(tid('new-prompt-button'));
    await page.fill(tid('prompt-title-input'), 'Versioned prompt');
    await page.fill(tid('prompt-content-input'), TEXT[1]);
    await page.fill(tid('version-summary-input'), 'first wording');
    await page.click(tid('save-prompt'));
    await page.waitForSelector(`${tid('prompt-view')}:has-text("Versioned prompt")`);
    promptId = await page.getAttribute(tid('prompt-view'), 'data-prompt-id');
    // Folded until opened, so the run form stays near the top.
    assert.equal(await page.isVisible(tid('version-row')), false);
    assert.match(await page.textContent(tid('versions-count')), /^1 version · latest v1$/);
    await openVersions();
    await waitForVersions(1);
    await edit(TEXT[2], 'shorter');
    await waitForVersions(2);
    await edit(TEXT[3], 'one line');
    await waitForVersions(3);

    assert.deepEqual(await versionNumbers(), [3, 2, 1], 'newest first');
    assert.equal(await page.textContent(`${row(1)} ${tid('version-summary')}`), 'first wording');
    assert.equal(await page.textContent(`${row(3)} ${tid('version-summary')}`), 'one line');
    assert.match(await page.textContent(row(2)), /you ·/);
    assert.ok(await page.$(`${row(3)} .badge-latest`), 'the latest is marked');

    const stored = await serverDoc(`prompts/${promptId}`, (d) => d.version === 3);
    assert.equal(stored.content, TEXT[3]);
    for (const n of [1, 2, 3]) {
      const v = await serverDoc(`prompts/${promptId}/versions/${n}`);
      assert.equal(v.content, TEXT[n], `version ${n} keeps its text`);
      assert.equal(v.created_by, uid);
      assert.ok(v.created_at);
    }
  });

  it('shows versions 1 and 3 side by side, text and settings', async () => {
    await page.selectOption(tid('diff-from'), '1');
    await page.selectOption(tid('diff-to'), '3');
    await page.click(tid('diff-button'));
    const diff = `${tid('version-diff')}[data-from="1"][data-to="3"]`;
    await page.waitForSelector(diff);
    const rows = await page.$$eval(`${diff} ${tid('diff-content')} ${tid('diff-row')}`, (els) =>
      els.map((e) => [
        e.getAttribute('data-kind'),
        e.querySelector('[data-testid="diff-left"]').textContent,
        e.querySelector('[data-testid="diff-right"]').textContent,
      ]),
    );
    assert.deepEqual(rows, [
      ['changed', TEXT[1], TEXT[3].split('\n')[0]],
      ['added', '', 'Then stop.'],
    ]);
    assert.equal(await page.getAttribute(`${diff} ${tid('diff-content')}`, 'data-changes'), '2');
    assert.equal(await page.$(`${diff} ${tid('diff-setting')}`), null, 'only the text changed');
    assert.ok(await page.isVisible(`${diff} ${tid('diff-settings-same')}`));
  });

  it('runs version 1 when it is picked, and the record and history say so', async () => {
    await page.click(`${row(1)} ${tid('version-run')}`);
    assert.equal(await page.inputValue(tid('version-select')), 'v:1');
    await page.fill(tid('var-input-topic'), 'tides');
    const { id, record } = await runAndRecord();
    assert.equal(record.prompt_version, 1);
    assert.match(record.output, /Version one: tell me about tides/);
    await page.waitForSelector(`${tid('history-row')}[data-execution-id="${id}"] ${tid('history-version')}:has-text("v1")`);
  });

  it('restores version 1 as version 4, equal to it', async () => {
    await page.click(`${row(1)} ${tid('version-restore')}`);
    await waitForVersions(4);
    assert.equal(await page.textContent(`${row(4)} ${tid('version-summary')}`), 'Restored version 1');
    const v4 = await serverDoc(`prompts/${promptId}/versions/4`);
    assert.equal(v4.content, TEXT[1]);
    const stored = await serverDoc(`prompts/${promptId}`, (d) => d.version === 4);
    assert.equal(stored.content, TEXT[1]);
    assert.equal(await page.textContent(tid('prompt-content')), TEXT[1]);
  });

  it('points the production label at a version and moves it', async () => {
    await page.fill(tid('label-name'), 'production');
    await page.selectOption(tid('label-version'), '2');
    assert.equal(await page.textContent(tid('label-set')), 'Set label');
    await page.click(tid('label-set'));
    await page.waitForSelector(`${row(2)} ${tid('version-label')}[data-label="production"]`);
    await serverDoc(`prompts/${promptId}`, (d) => d.labels?.production === 2);

    await page.selectOption(tid('label-version'), '3');
    assert.equal(await page.textContent(tid('label-set')), 'Move label');
    await page.click(tid('label-set'));
    await page.waitForSelector(`${row(3)} ${tid('version-label')}[data-label="production"]`);
    assert.equal(await page.$(`${row(2)} ${tid('version-label')}`), null, 'one place at a time');
    await serverDoc(`prompts/${promptId}`, (d) => d.labels?.production === 3);
    assert.match(await page.textContent(`${tid('version-select')} option[value="l:production"]`), /now v3/);
  });

  it('runs by label: the same request follows the label when it moves', async () => {
    await page.selectOption(tid('label-version'), '2');
    await page.click(tid('label-set'));
    await serverDoc(`prompts/${promptId}`, (d) => d.labels?.production === 2);
    await page.selectOption(tid('version-select'), 'l:production');
    await page.fill(tid('var-input-topic'), 'tides');
    const first = await runAndRecord();
    assert.equal(first.record.prompt_version, 2);
    assert.match(first.record.output, /Version two: describe tides briefly/);

    await page.selectOption(tid('label-version'), '3');
    await page.click(tid('label-set'));
    await serverDoc(`prompts/${promptId}`, (d) => d.labels?.production === 3);
    assert.equal(await page.inputValue(tid('version-select')), 'l:production');
    const second = await runAndRecord();
    assert.equal(second.record.prompt_version, 3);
    assert.match(second.record.output, /Version three: describe tides in one line/);
  });

  it('compares two versions side by side on one model, each column naming its version', async () => {
    await page.check(tid('compare-versions-toggle'));
    await page.check(`${tid('compare-version')}[value="1"]`);
    await page.check(`${tid('compare-version')}[value="3"]`);
    assert.equal(await page.textContent(tid('run-button')), 'Compare 2 versions');
    await page.fill(tid('var-input-topic'), 'tides');
    await page.click(tid('run-button'));
    await page.waitForFunction(
      () => {
        const cols = [...document.querySelectorAll('[data-testid="comparison-column"]')];
        return cols.length === 2 && cols.every((c) => c.getAttribute('data-phase') === 'completed');
      },
      undefined,
      { timeout: 30_000 },
    );
    const columns = await page.$$eval(tid('comparison-column'), (els) =>
      els.map((e) => [e.getAttribute('data-version'), e.getAttribute('data-model'), e.getAttribute('data-execution-id')]),
    );
    assert.deepEqual(columns.map(([v]) => v), ['1', '3']);
    assert.equal(columns[0][1], columns[1][1], 'the same model');
    const records = await Promise.all(columns.map(([, , id]) => finalRecord(env, id)));
    assert.deepEqual(records.map((r) => r.prompt_version), [1, 3]);
    assert.match(records[0].output, /Version one: tell me about tides/);
    assert.match(records[1].output, /Version three: describe tides in one line/);
    // Each column shows its own version's answer.
    for (const [i, pattern] of [
      [1, 'Version one: tell me about tides'],
      [2, 'Version three: describe tides in one line'],
    ]) {
      await page.waitForFunction(
        ([n, text]) => document.querySelector(`[data-testid="comparison-column"]:nth-child(${n}) [data-testid="column-output"]`)?.textContent.includes(text),
        [i, pattern],
      );
    }
    assert.equal(records[0].comparison_id, records[1].comparison_id);
    await page.uncheck(tid('compare-versions-toggle'));
  });

  it('fits the version list and the diff on a phone', async () => {
    const phone = await context.newPage();
    const problems = [];
    phone.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && problems.push(m.text()));
    try {
      await phone.setViewportSize(PHONE);
      await phone.goto(env.webUrl);
      await phone.click(`${tid('prompt-item')}[data-prompt-id="${promptId}"]`);
      await phone.click(tid('versions-toggle'));
      await phone.waitForSelector(tid('version-row'));
      await phone.selectOption(tid('diff-from'), '1');
      await phone.selectOption(tid('diff-to'), '3');
      await phone.click(tid('diff-button'));
      await phone.waitForSelector(tid('version-diff'));
      await phone.$eval(tid('versions-panel'), (el) => el.scrollIntoView());
      const layout = await layoutProblems(phone);
      assert.ok(layout.scrollWidth <= layout.innerWidth, `page ${layout.scrollWidth} px wide in ${layout.innerWidth}`);
      assert.deepEqual(layout.unreachable, [], 'controls off screen');
      // Both sides of the diff stay side by side inside the screen.
      const [left, right] = await phone.$$eval(`${tid('diff-content')} ${tid('diff-row')}:first-child [data-testid^="diff-"]`, (els) =>
        els.map((e) => e.getBoundingClientRect().toJSON()),
      );
      assert.ok(left.right <= right.left + 1 && right.right <= PHONE.width, 'left then right, on screen');
      await screenshot(phone, 'versions-phone.png');
      assert.deepEqual(problems, []);
    } finally {
      await phone.close();
    }
  });

  it('gives a prompt saved before versions its version 1 at its first save', async () => {
    // Written as before issue 27: no `version` (the emulator's owner token bypasses the rules).
    const id = `legacy${Date.now()}`;
    const url = `http://${env.firestoreHost}/v1/projects/${env.projectId}/databases/(default)/documents/prompts?documentId=${id}`;
    const now = new Date().toISOString();
    const res = await fetch(url, {
      method: 'POST',
      headers: { Authorization: 'Bearer owner', 'Content-Type': 'application/json' },
      body: JSON.stringify({
        fields: {
          owner_uid: { stringValue: uid },
          title: { stringValue: 'Old prompt' },
          content: { stringValue: 'Old text about {{topic}}.' },
          variables: { arrayValue: { values: [{ mapValue: { fields: { name: { stringValue: 'topic' }, required: { booleanValue: true }, default: { nullValue: null } } } }] } },
          public: { booleanValue: false },
          created_at: { timestampValue: now },
          updated_at: { timestampValue: now },
        },
      }),
    });
    assert.ok(res.ok, `seed: HTTP ${res.status} ${await res.text()}`);
    await page.click(`${tid('prompt-item')}[data-prompt-id="${id}"]`);
    await page.waitForSelector(`${tid('prompt-view')}[data-prompt-id="${id}"]`);
    await openVersions();
    await waitForVersions(1);
    assert.match(await page.textContent(row(1)), /saved before versions were kept/);
    await edit('New text about {{topic}}.', 'first edit');
    await waitForVersions(2);
    const v1 = await serverDoc(`prompts/${id}/versions/1`);
    const v2 = await serverDoc(`prompts/${id}/versions/2`);
    assert.equal(v1.content, 'Old text about {{topic}}.');
    assert.equal(v2.content, 'New text about {{topic}}.');
    await serverDoc(`prompts/${id}`, (d) => d.version === 2);
  });

  it('left the console free of errors and warnings', () => {
    assert.deepEqual(consoleProblems, []);
  });
});
