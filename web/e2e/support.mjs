// Helpers for the browser suite: environment, Chromium, the emulators' REST APIs, and UI steps.
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set. npm run e2e needs a running stack: E2E_WEB_URL (the app), ` +
        'E2E_FAKE_OPENROUTER_URL, E2E_FIRESTORE_EMULATOR_HOST, E2E_AUTH_EMULATOR_URL, E2E_PROJECT_ID.',
    );
  }
  return value.replace(/\/+$/, '');
}

export function loadEnv() {
  return {
    webUrl: required('E2E_WEB_URL'),
    fakeUrl: required('E2E_FAKE_OPENROUTER_URL'),
    firestoreHost: required('E2E_FIRESTORE_EMULATOR_HOST'),
    authUrl: required('E2E_AUTH_EMULATOR_URL'),
    projectId: process.env.E2E_PROJECT_ID || 'demo-rag-prompts',
    chromiumPath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  };
}

export async function launchBrowser(env) {
  return chromium.launch({
    executablePath: env.chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      // Without these Chromium phones home, and this machine's closed network refuses it.
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A suite's browser session: Chromium, one context (with `permissions` granted on the app) and
 * one page with 15 s timeouts, its console watched, signed up as a new user whose address
 * carries `tag`. `email` and `password` are returned for the suite's own checks.
 */
export async function signedUpSession(env, tag, { viewport, permissions = [] }) {
  const email = `e2e-${tag}-${Date.now()}-${process.pid}@example.com`;
  const password = 'correct-horse-42';
  const browser = await launchBrowser(env);
  const context = await browser.newContext({ viewport });
  if (permissions.length > 0) await context.grantPermissions(permissions, { origin: env.webUrl });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const consoleProblems = watchConsole(page);
  await signUp(page, env, email, password);
  return { browser, context, page, consoleProblems, email, password };
}

/** Collects the page's console errors and warnings, and uncaught errors: a suite ends asserting there were none. */
export function watchConsole(page) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err}`));
  return problems;
}

/** Polls `probe` until it returns a truthy value; bounded by `timeoutMs`. */
export async function eventually(probe, { timeoutMs = 15_000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

function fromFirestoreValue(v) {
  if (v === undefined) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('integerValue' in v) return Number(v.integerValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('booleanValue' in v) return v.booleanValue;
  if ('nullValue' in v) return null;
  if ('timestampValue' in v) return v.timestampValue;
  if ('mapValue' in v) return fromFirestoreFields(v.mapValue.fields ?? {});
  if ('arrayValue' in v) return (v.arrayValue.values ?? []).map(fromFirestoreValue);
  return v;
}

function fromFirestoreFields(fields) {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, fromFirestoreValue(v)]));
}

/** Reads a document through the emulator's REST API as the owner (bypasses the rules). */
export async function readDoc(env, path) {
  const url = `http://${env.firestoreHost}/v1/projects/${env.projectId}/databases/(default)/documents/${path}`;
  const res = await fetch(url, { headers: { Authorization: 'Bearer owner' } });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  const body = await res.json();
  return fromFirestoreFields(body.fields ?? {});
}

/** A document once the emulator holds it as `ok` wants (a page shows its own writes before the server has them). */
export function docWhen(env, path, ok = () => true, { timeoutMs = 15_000 } = {}) {
  return eventually(
    async () => {
      const doc = await readDoc(env, path);
      return doc && ok(doc) ? doc : null;
    },
    { what: `${path} on the server`, timeoutMs },
  );
}

/** Waits until the backend has written a final record for this run, and returns it. */
export function finalRecord(env, executionId) {
  return docWhen(env, `executions/${executionId}`, (doc) => doc.status !== 'streaming', { timeoutMs: 30_000 });
}

/** Checks an email/password account against the Auth emulator's REST API; returns its uid. */
export async function authUid(env, email, password) {
  const url = `${env.authUrl}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=fake-api-key`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password, returnSecureToken: true }),
  });
  if (!res.ok) return null;
  return (await res.json()).localId ?? null;
}

export async function fakeStats(env) {
  const res = await fetch(`${env.fakeUrl}/_fake/stats`);
  if (!res.ok) throw new Error(`fake stats: HTTP ${res.status}`);
  return res.json();
}

/** Sets the fake's server defaults (POST /_fake/config); POST /_fake/reset puts its startup ones back. */
export async function fakeConfig(env, knobs) {
  const res = await fetch(`${env.fakeUrl}/_fake/config`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(knobs),
  });
  if (!res.ok) throw new Error(`fake config: HTTP ${res.status} ${await res.text()}`);
}

export async function fakeRequests(env) {
  const res = await fetch(`${env.fakeUrl}/_fake/requests`);
  if (!res.ok) throw new Error(`fake requests: HTTP ${res.status}`);
  return res.json();
}

// ---- UI steps -------------------------------------------------------------------------------

export const tid = (id) => `[data-testid="${id}"]`;

export async function signUp(page, env, email, password) {
  await page.goto(env.webUrl);
  await page.fill(tid('email-input'), email);
  await page.fill(tid('password-input'), password);
  await page.click(tid('create-account-button'));
  await page.waitForSelector(tid('user-email'), { timeout: 15_000 });
}

export async function signIn(page, env, email, password) {
  await page.goto(env.webUrl);
  await page.fill(tid('email-input'), email);
  await page.fill(tid('password-input'), password);
  await page.click(tid('sign-in-button'));
  await page.waitForSelector(tid('user-email'), { timeout: 15_000 });
}

/** Creates a prompt through the editor and returns its Firestore id. */
export async function createPrompt(page, { title, content, systemPrompt, variables = [], isPublic = false }) {
  await page.click(tid('new-prompt-button'));
  await page.fill(tid('prompt-title-input'), title);
  await page.fill(tid('prompt-content-input'), content);
  if (systemPrompt) await page.fill(tid('prompt-system-input'), systemPrompt);
  for (const [i, v] of variables.entries()) {
    await page.click(tid('add-variable'));
    await page.fill(tid(`variable-name-${i}`), v.name);
    await page.setChecked(tid(`variable-required-${i}`), v.required);
    if (v.default) await page.fill(tid(`variable-default-${i}`), v.default);
  }
  if (isPublic) await page.check(tid('prompt-public-checkbox'));
  await page.click(tid('save-prompt'));
  const view = await page.waitForSelector(`${tid('prompt-view')}:has-text(${JSON.stringify(title)})`, {
    timeout: 15_000,
  });
  return view.getAttribute('data-prompt-id');
}

/** Fills the run form and presses Run. */
export async function startRun(page, { variables = {}, model = 'demo/local-model', streaming = true, context } = {}) {
  for (const [name, value] of Object.entries(variables)) await page.fill(tid(`var-input-${name}`), value);
  await page.selectOption(tid('model-select'), model);
  if (context) await page.fill(tid('context-input'), context);
  await page.setChecked(tid('streaming-toggle'), streaming);
  await page.click(tid('run-button'));
}

export async function phase(page) {
  return page.getAttribute(tid('execution-status'), 'data-phase').catch(() => null);
}

export async function waitForPhase(page, phases, timeoutMs = 30_000) {
  const wanted = Array.isArray(phases) ? phases : [phases];
  await page.waitForFunction(
    (w) => w.includes(document.querySelector('[data-testid="execution-status"]')?.getAttribute('data-phase')),
    wanted,
    { timeout: timeoutMs, polling: 50 },
  );
  return phase(page);
}

export async function ensureDir(file) {
  await mkdir(dirname(file), { recursive: true });
}

const RESULTS = new URL('../test-results/', import.meta.url);

/** A full-page screenshot in test-results/; copied to e2e/screenshots/ with E2E_UPDATE_SCREENSHOTS=1. */
export async function screenshot(page, name) {
  const file = fileURLToPath(new URL(name, RESULTS));
  await ensureDir(file);
  await page.screenshot({ path: file, fullPage: true });
  // The README shows copies of these; refresh them with E2E_UPDATE_SCREENSHOTS=1.
  if (process.env.E2E_UPDATE_SCREENSHOTS) await copyFile(file, fileURLToPath(new URL(`screenshots/${name}`, import.meta.url)));
}

/** Horizontal overflow of the page, and controls a person cannot reach (off screen left or right). */
export function layoutProblems(page) {
  return page.evaluate(() => {
    const width = window.innerWidth;
    const out = { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, unreachable: [] };
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href]')) {
      // Inside a box that scrolls on its own (a wide table) a control is reached by scrolling it.
      if (el.closest('.md-table, .table-scroll')) continue;
      // A folded <details> lays out none of its body (its controls have stale boxes): not shown, not checked.
      const folded = el.closest('details:not([open])');
      if (folded && el.closest('summary')?.parentElement !== folded) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.left < -1 || r.right > width + 1) out.unreachable.push(`${el.tagName} ${el.getAttribute('data-testid') ?? el.textContent}`);
    }
    return out;
  });
}
