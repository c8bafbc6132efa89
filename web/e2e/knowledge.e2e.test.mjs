// Browser suite for knowledge bases (issue 16, the web part): upload a Markdown document on
// the Documents page, watch it index, attach it to a prompt, run it, follow a citation to its
// passage (live and in the history), then delete the document. Same stack and helpers as
// app.e2e.test.mjs; the console must stay free of errors and warnings.
//
// The fake model cannot be told to write `[1]` through a `[[fake text=...]]` directive (a
// directive ends at the first `]`), so the answer's text and its pace are set through the
// fake's /_fake/config defaults for this file's runs and put back after.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  authUid,
  ensureDir,
  eventually,
  fakeConfig,
  loadEnv,
  readDoc,
  screenshot,
  signedUpSession,
  startRun,
  tid,
  waitForPhase,
} from './support.mjs';

const env = loadEnv();
const RESULTS = new URL('../test-results/', import.meta.url);

const TITLE = 'Orchard Lane FAQ';
const FILENAME = 'Orchard Lane FAQ.md';
const DOCUMENT = `# Orchard Lane Bakery: questions we hear

## Deliveries

We deliver wholesale bread within three kilometres of the bakery for free. Beyond three
kilometres every drop costs four pounds, and we do not deliver further than twelve kilometres.

## Opening hours

The shop opens at seven in the morning on weekdays and at eight on Saturdays. It is closed on
Sundays and on the first Monday of every month, when the ovens are cleaned.

## Allergens

Every loaf is baked in a kitchen that also handles nuts, sesame and gluten. Ask at the counter
for the allergen sheet of the day.
`;
const QUESTION = 'How much does a delivery beyond three kilometres cost?';
const ANSWER = 'Beyond three kilometres each drop costs four pounds [1], within three it is free [1].';

let browser;
let context;
let page;
let email;
let password;

/** The user's stored document `id`: ids are scoped per user (`{id}~{uid}`, issue 26). */
const kbDoc = async (id) => readDoc(env, `documents/${id}~${await authUid(env, email, password)}`);
let documentId;
let promptId;
let consoleProblems;

const DEFAULTS = { embed_delay: 0, text: null, first_chunk_delay: 0, chunks: 8 };

before(async () => {
  ({ browser, context, page, consoleProblems, email, password } = await signedUpSession(env, 'kb', {
    viewport: { width: 1280, height: 860 },
  }));
});

after(async () => {
  await fakeConfig(env, DEFAULTS).catch(() => undefined);
  await browser?.close();
});

describe('knowledge bases in a browser', { concurrency: false }, () => {
  it('uploads a Markdown document: progress, then indexing, then ready in the live list', async () => {
    await page.click(tid('nav-documents'));
    await page.waitForSelector(tid('documents-page'));
    // Slow the embeddings down so that the indexing state is there to see.
    await fakeConfig(env, { embed_delay: 1.5 });
    try {
      await page.setInputFiles(tid('document-file-input'), {
        name: FILENAME,
        mimeType: 'text/markdown',
        buffer: Buffer.from(DOCUMENT),
      });
      await page.waitForSelector(`${tid('upload')}[data-state="indexing"] ${tid('upload-indexing')}`);
      const indexing = await page.waitForSelector(`${tid('document-row')}[data-status="indexing"]`);
      documentId = await indexing.getAttribute('data-document-id');
      assert.ok(documentId, 'the row appears, from Firestore, while the server indexes');
      assert.match(await indexing.textContent(), /Orchard Lane FAQ/);
      await screenshot(page, 'documents.png');

      await page.waitForSelector(`${tid('document-row')}[data-document-id="${documentId}"][data-status="ready"]`, {
        timeout: 60_000,
      });
    } finally {
      await fakeConfig(env, DEFAULTS);
    }
    const done = await page.textContent(tid('upload-done'));
    const passages = Number(/(\d+) passages/.exec(done)?.[1]);
    assert.ok(passages >= 1, `the upload says how many passages (${done})`);
    assert.match(
      await page.textContent(`${tid('document-row')}[data-document-id="${documentId}"] ${tid('document-status')}`),
      new RegExp(`ready · ${passages} passages`),
    );

    // On a phone the page fits: nothing wider than the screen, every control on it.
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      const problems = await page.evaluate(() => {
        const width = window.innerWidth;
        const off = [...document.querySelectorAll('button, input, select, a[href], label')]
          .filter((el) => !el.classList.contains('visually-hidden'))
          .map((el) => [el, el.getBoundingClientRect()])
          .filter(([, r]) => r.width > 0 && (r.left < -1 || r.right > width + 1))
          .map(([el]) => el.getAttribute('data-testid') ?? el.textContent);
        return { scrollWidth: document.documentElement.scrollWidth, width, off };
      });
      assert.ok(problems.scrollWidth <= problems.width, `no sideways scroll on a phone: ${JSON.stringify(problems)}`);
      assert.deepEqual(problems.off, []);
    } finally {
      await page.setViewportSize({ width: 1280, height: 860 });
    }

    const stored = await kbDoc(documentId);
    assert.equal(stored.status, 'ready');
    assert.equal(stored.owner_uid, await authUid(env, email, password));
    assert.equal(stored.title, TITLE);
    assert.equal(stored.filename, FILENAME);
    assert.equal(stored.content_type, 'text/markdown');
    assert.equal(stored.passage_count, passages);
  });

  it('attaches the document to a prompt in the editor, saved under the rules', async () => {
    await page.click(tid('new-prompt-button'));
    await page.fill(tid('prompt-title-input'), 'Ask the FAQ');
    await page.fill(tid('prompt-content-input'), 'Answer from the passages and cite them: {{question}}');
    await page.click(tid('add-variable'));
    await page.fill(tid('variable-name-0'), 'question');
    await page.check(`${tid('attach-document')}[data-document-id="${documentId}"]`);
    await page.fill(tid('top-k-input'), '3');
    await page.selectOption(tid('query-variable-select'), 'question');
    // For a person to look at (test-results/ only; not in the README).
    const editorShot = fileURLToPath(new URL('knowledge-editor.png', RESULTS));
    await ensureDir(editorShot);
    await (await page.$(tid('prompt-editor'))).screenshot({ path: editorShot });
    await page.click(tid('save-prompt'));
    const view = await page.waitForSelector(`${tid('prompt-view')}:has-text("Ask the FAQ")`);
    promptId = await view.getAttribute('data-prompt-id');
    assert.match(await page.textContent(tid('prompt-documents')), /Draws on Orchard Lane FAQ · 3 passages · searched with \{\{question\}\}/);

    const stored = await readDoc(env, `prompts/${promptId}`);
    assert.deepEqual(stored.document_ids, [documentId]);
    assert.equal(stored.top_k, 3);
    assert.equal(stored.retrieval_query_variable, 'question');
  });

  it('runs it: the sources come before the first token, and a citation reveals its passage', async () => {
    await fakeConfig(env, { text: ANSWER, chunks: 12, first_chunk_delay: 1.5 });
    try {
      await startRun(page, { variables: { question: QUESTION } });
      // Sources are on screen while the answer has not started.
      await page.waitForSelector(`${tid('streaming-panel')} ${tid('source')}`);
      assert.equal(await page.$eval(tid('execution-status'), (el) => el.getAttribute('data-phase')), 'connecting');
      assert.equal(await page.$(tid('stream-output')), null, 'no answer text yet');
      assert.equal(await waitForPhase(page, ['completed', 'error', 'cancelled']), 'completed');
    } finally {
      await fakeConfig(env, DEFAULTS);
    }
    const panel = tid('streaming-panel');
    assert.equal(await page.textContent(`${panel} ${tid('stream-output')}`), ANSWER);
    const titles = await page.$$eval(`${panel} ${tid('source-title')}`, (els) => els.map((e) => e.textContent));
    assert.ok(titles.length >= 1 && titles.length <= 3, `1 to top_k=3 sources (${titles.length})`);
    assert.ok(titles.every((t) => t === TITLE));
    assert.match(await page.textContent(`${panel} ${tid('source-heading')}`), /Orchard Lane Bakery/);
    assert.match(await page.textContent(`${panel} ${tid('source')}`), /score 0\.\d\d/);
    // The nearest passage to the question is the one about deliveries.
    assert.match(await page.textContent(`${panel} ${tid('source-text')}`), /four pounds/);

    const links = await page.$$(`${panel} ${tid('citation')}`);
    assert.equal(links.length, 2, 'both [1] in the answer are links');
    await links[0].click();
    const first = `${panel} ${tid('source')}[data-source="1"]`;
    await page.waitForSelector(`${first}[aria-current="true"][data-expanded="true"]`);
    assert.ok(await page.isVisible(`${first} ${tid('source-text')}`), 'the cited passage is on screen');
    assert.equal(
      await page.evaluate((sel) => document.activeElement === document.querySelector(sel), first),
      true,
      'the passage has the focus, so a screen reader reads it',
    );
    await screenshot(page, 'citations.png');

    const executionId = await page.getAttribute(panel, 'data-execution-id');
    const record = await eventually(async () => {
      const doc = await readDoc(env, `executions/${executionId}`);
      return doc?.status === 'completed' ? doc : null;
    }, { what: 'the execution record to be completed' });
    assert.equal(record.sources.length, titles.length, 'the record keeps the sources');
    assert.equal(record.sources[0].document_id, documentId);

    // The opened run shows the same sources, from the record, and its citations link to them.
    await page.click(`${tid('history-row')}[data-execution-id="${executionId}"] ${tid('history-open')}`);
    const detail = `${tid('execution-detail')}[data-execution-id="${executionId}"]`;
    await page.waitForSelector(`${detail} ${tid('source')}`);
    assert.equal((await page.$$(`${detail} ${tid('source')}`)).length, titles.length);
    await page.click(`${detail} ${tid('citation')}`);
    await page.waitForSelector(`${detail} ${tid('source')}[data-source="1"][aria-current="true"]`);
  });

  it('deletes the document after a confirmation, through the backend', async () => {
    await page.click(tid('nav-documents'));
    const row = `${tid('document-row')}[data-document-id="${documentId}"]`;
    await page.click(`${row} ${tid('document-delete-button')}`);
    await page.waitForSelector(`${row} ${tid('document-delete-confirm')}`);
    await page.click(`${row} ${tid('document-delete-confirm-button')}`);
    await page.waitForSelector(row, { state: 'detached', timeout: 30_000 });
    assert.equal(await kbDoc(documentId), null);
    // The editor no longer offers it; the prompt still names it and says so.
    await page.click(`${tid('prompt-item')}[data-prompt-id="${promptId}"]`);
    await page.click(tid('edit-prompt-button'));
    assert.match(await page.textContent(tid('document-picker')), /missing: not searched/);
    // Detaching it and saving removes the knowledge-base fields (an update under the rules).
    await page.uncheck(`${tid('attach-document')}[data-document-id="${documentId}"]`);
    await page.click(tid('save-prompt'));
    await page.waitForSelector(`${tid('prompt-view')}[data-prompt-id="${promptId}"]`);
    assert.equal(await page.$(tid('prompt-documents')), null);
    const stored = await eventually(async () => {
      const doc = await readDoc(env, `prompts/${promptId}`);
      return doc && !('document_ids' in doc) ? doc : null;
    }, { what: 'the prompt to lose its document_ids' });
    assert.equal(stored.top_k, undefined);
    assert.equal(stored.retrieval_query_variable, undefined);
  });

  it('says why a dropped file is refused, lists the refusal with the reason, and one dismiss removes both', async () => {
    // A page of its own: the browser logs the refused request as a console error, which the
    // main page must not have. Same context, so the same signed-in user.
    const other = await context.newPage();
    try {
      await other.goto(env.webUrl);
      await other.click(tid('nav-documents'));
      await other.waitForSelector(tid('documents-list'));
      const before = await other.$$eval(tid('document-row'), (els) => els.map((el) => el.getAttribute('data-document-id')));
      const dataTransfer = await other.evaluateHandle(() => {
        const dt = new DataTransfer();
        const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]);
        dt.items.add(new File([png], 'photo.png', { type: 'image/png' }));
        return dt;
      });
      await other.dispatchEvent(tid('dropzone'), 'drop', { dataTransfer });
      const failed = await other.waitForSelector(`${tid('upload')}[data-state="failed"]`);
      assert.match(await failed.textContent(), /photo\.png/);
      assert.equal(await other.getAttribute(tid('upload-error'), 'data-code'), 'unsupported_type');
      assert.equal(await other.textContent(tid('upload-error-title')), 'Unsupported file type');
      assert.equal(await other.textContent(tid('upload-error-detail')), 'Upload plain text (.txt), Markdown (.md) or PDF.');
      // The backend keeps the refused upload's description, status error with the reason,
      // and no passage; the list says it was refused and that dismissing it removes it.
      const row = await other.waitForSelector(`${tid('document-row')}[data-status="error"]`);
      const refusedId = await row.getAttribute('data-document-id');
      assert.ok(!before.includes(refusedId));
      assert.equal(await row.$eval(tid('document-status'), (el) => el.textContent), 'error');
      const reason = (await kbDoc(refusedId)).error_message;
      assert.ok(reason, 'the backend recorded why');
      assert.equal(
        await row.$eval(tid('document-error'), (el) => el.textContent),
        `Indexing failed ${reason}Nothing of it was kept; it stays listed until you dismiss it.`,
      );
      assert.ok(await row.$(tid('document-dismiss-button')), 'a refusal is dismissed, not deleted with a confirmation');
      // The upload's own ✕ dismisses the server's record with it.
      await other.click('[aria-label="Dismiss photo.png"]');
      await other.waitForSelector(`${tid('document-row')}[data-document-id="${refusedId}"]`, { state: 'detached' });
      await eventually(async () => (await kbDoc(refusedId)) === null, {
        what: 'the refused document gone from Firestore',
      });
    } finally {
      await other.close();
    }
  });

  it('left no error or warning in the browser console', () => {
    assert.deepEqual(consoleProblems, []);
  });
});
