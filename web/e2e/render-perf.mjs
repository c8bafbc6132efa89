// Render smoothness of a long streamed answer in Chromium: a 20,000-token Markdown answer
// arriving at 100 chunks a second (one token a chunk), drawn by the real app. Every frame's
// length is taken from requestAnimationFrame and from Chromium's Long Animation Frames API.
//
//   functions/venv/bin/python -m devstack exec --only web -- node web/e2e/render-perf.mjs
//
// The app is the production build (what people load; React's development build is several
// times slower), built here with the stack's VITE_* settings and served by this script. Sign-in
// and prompts use the local stack; the answer itself comes from a small SSE server in this
// script (the browser's request to execute_prompt_stream is re-routed to it), so the figure
// measures the browser, not the backend. Writes bench/results/web-render.json.
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPrompt, ensureDir, launchBrowser, loadEnv, signUp, startRun, tid, waitForPhase } from './support.mjs';

const TOKENS = Number(process.env.PERF_TOKENS ?? 20_000);
const CHUNKS_PER_SECOND = Number(process.env.PERF_RATE ?? 100);
const FRAME_BUDGET_MS = 50;
const OUT = fileURLToPath(new URL('../../bench/results/web-render.json', import.meta.url));

/** A long answer with what models write: headings, paragraphs, lists, code and tables. */
function section(i) {
  return [
    `## Section ${i}: streaming notes`,
    '',
    `Paragraph ${i} explains how the **client** reads a stream of server-sent events, keeps the ` +
      `partial text on screen, and hands every chunk to the renderer; see \`decoder.ts\` and ` +
      `[the guide](https://example.com/guide/${i}) for the details of retries, heartbeats and cancellation.`,
    '',
    `- the first point of section ${i}, with a few words`,
    '- a second point that has *emphasis* in it',
    '- a third point about `inline code`',
    '',
    '```ts',
    `export function scale${i}(values: number[]): number[] {`,
    `  return values.map((v) => v * ${i} + 1);`,
    '}',
    '```',
    '',
    '| key | value | note |',
    '|---|---|---|',
    `| a${i} | ${i} | first row |`,
    `| b${i} | ${i * 2} | second row |`,
    '',
    '',
  ].join('\n');
}

/** Cuts text into token-sized pieces (a word or a sign with the whitespace before it). */
function tokensOf(text) {
  return text.match(/\s*[\w]+|\s*[^\w\s]|\s+/g) ?? [];
}

function answerTokens(count) {
  const out = [];
  for (let i = 1; out.length < count; i++) out.push(...tokensOf(section(i)));
  return out.slice(0, count);
}

function startSseServer(tokens) {
  const server = createServer((req, res) => {
    const cors = {
      'Access-Control-Allow-Origin': req.headers.origin ?? '*',
      'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] ?? 'authorization, content-type',
      'Access-Control-Allow-Methods': 'POST, OPTIONS',
    };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    req.resume();
    res.writeHead(200, { ...cors, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write('event: start\ndata: {"execution_id": "perf-run", "prompt_id": "perf", "model": "demo/local-model"}\n\n');
    const started = Date.now();
    let sent = 0;
    const timer = setInterval(() => {
      const due = Math.min(tokens.length, Math.floor(((Date.now() - started) * CHUNKS_PER_SECOND) / 1000));
      let body = '';
      for (; sent < due; sent++) {
        body += `id: ${sent + 1}\ndata: ${JSON.stringify({ content: tokens[sent], finish_reason: sent + 1 === tokens.length ? 'stop' : null })}\n\n`;
      }
      if (body) res.write(body);
      if (sent === tokens.length) {
        clearInterval(timer);
        const usage = { prompt_tokens: 10, completion_tokens: tokens.length, total_tokens: tokens.length + 10, cost: 0 };
        res.end(
          `event: end\ndata: ${JSON.stringify({ execution_id: 'perf-run', model: 'demo/local-model', finish_reason: 'stop', usage, generation_id: 'gen-perf' })}\n\n` +
            'data: [DONE]\n\n',
        );
      }
    }, 1000 / CHUNKS_PER_SECOND);
    res.on('close', () => clearInterval(timer));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

/** Builds the app for production into a temporary folder and serves it on a free port. */
async function serveProductionBuild() {
  const dist = await mkdtemp(join(tmpdir(), 'web-perf-'));
  const web = fileURLToPath(new URL('..', import.meta.url));
  execFileSync('npx', ['vite', 'build', '--logLevel', 'warn', '--outDir', dist, '--emptyOutDir'], { cwd: web, stdio: 'inherit' });
  const server = createServer(async (req, res) => {
    const path = normalize(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '');
    const file = join(dist, path === '' ? 'index.html' : path);
    try {
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(await readFile(file));
    } catch {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(await readFile(join(dist, 'index.html')));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null;
}

const env = loadEnv();
const app = await serveProductionBuild();
env.webUrl = app.url;
const tokens = answerTokens(TOKENS);
const server = await startSseServer(tokens);
const browser = await launchBrowser(env);
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(30_000);
  await signUp(page, env, `perf-${Date.now()}@example.com`, 'correct-horse-42');
  await createPrompt(page, { title: 'Render perf', content: 'A long answer please.' });
  const target = `http://127.0.0.1:${server.address().port}/execute_prompt_stream`;
  await page.route('**/execute_prompt_stream', (route) => route.continue({ url: target }));

  await page.evaluate(() => {
    const perf = { frames: [], loaf: [], longTasks: [] };
    window.__perf = perf;
    let last = performance.now();
    const tick = (now) => {
      perf.frames.push(now - last);
      last = now;
      if (!perf.stop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    perf.loafDetail = [];
    for (const [type, list] of [
      ['long-animation-frame', perf.loaf],
      ['longtask', perf.longTasks],
    ]) {
      try {
        new PerformanceObserver((l) =>
          l.getEntries().forEach((e) => {
            list.push(e.duration);
            if (type !== 'long-animation-frame') return;
            // What filled the long frame: scripts (by entry point), style and layout, the rest.
            perf.loafDetail.push({
              at_s: Math.round(e.startTime / 100) / 10,
              ms: Math.round(e.duration),
              script_ms: Math.round(e.scripts.reduce((n, x) => n + x.duration, 0)),
              style_layout_ms: Math.round(e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0),
              scripts: e.scripts.map((x) => `${x.invoker} ${Math.round(x.duration)}ms`).slice(0, 3),
            });
          }),
        ).observe({ type });
      } catch {
        perf[`${type}Unsupported`] = true;
      }
    }
  });
  // Chromium's own cumulative counters say where the main thread's time went.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () =>
    Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const before = await metrics();
  const loadStart = loadavg().map((n) => Math.round(n * 100) / 100);
  const streamStartS = await page.evaluate(() => Math.round(performance.now() / 100) / 10);
  const started = Date.now();
  await startRun(page);
  const phase = await waitForPhase(page, ['completed', 'error', 'cancelled'], (TOKENS / CHUNKS_PER_SECOND + 120) * 1000);
  const seconds = (Date.now() - started) / 1000;
  const perf = await page.evaluate(() => {
    window.__perf.stop = true;
    return window.__perf;
  });
  const afterMetrics = await metrics();
  const spent = (name) => Math.round((afterMetrics[name] - before[name]) * 1000);
  const mainThread = {
    task_ms: spent('TaskDuration'),
    script_ms: spent('ScriptDuration'),
    style_ms: spent('RecalcStyleDuration'),
    layout_ms: spent('LayoutDuration'),
    dom_nodes: afterMetrics.Nodes,
  };
  const shownChars = await page.evaluate(() => document.querySelector('[data-testid="stream-output"]')?.textContent.length ?? 0);
  const frames = perf.frames.slice(1).sort((a, b) => a - b);
  const maxFrame = frames.at(-1) ?? null;
  const result = {
    what: 'render frames while the web app (production build) streams a long Markdown answer (Chromium, headless)',
    command: 'functions/venv/bin/python -m devstack exec --only web -- node web/e2e/render-perf.mjs',
    date: new Date().toISOString(),
    chromium: browser.version(),
    answer: { tokens: tokens.length, chars: tokens.join('').length, chunks_per_second: CHUNKS_PER_SECOND, tokens_per_chunk: 1 },
    run: { phase, seconds: Math.round(seconds * 10) / 10, rendered_text_chars: shownChars },
    frames: {
      count: frames.length,
      max_ms: maxFrame && Math.round(maxFrame * 10) / 10,
      p50_ms: Math.round(percentile(frames, 50) * 10) / 10,
      p95_ms: Math.round(percentile(frames, 95) * 10) / 10,
      p99_ms: Math.round(percentile(frames, 99) * 10) / 10,
      over_budget: frames.filter((f) => f > FRAME_BUDGET_MS).length,
    },
    long_animation_frames: {
      count: perf.loaf.length,
      max_ms: perf.loaf.length ? Math.round(Math.max(...perf.loaf)) : 0,
      supported: !perf['long-animation-frameUnsupported'],
    },
    // A long frame whose scripts, style and layout add up to under the budget was long for
    // another reason: paint, garbage collection, or this thread waiting for a core.
    long_frames_own_work_over_budget: perf.loafDetail.filter((f) => f.script_ms + f.style_layout_ms > FRAME_BUDGET_MS).length,
    // at_s below counts from the page's load; the stream started at this second.
    stream_started_at_s: streamStartS,
    longest_frames: perf.loafDetail.sort((a, b) => b.ms - a.ms).slice(0, 8),
    load_average: { start: loadStart, end: loadavg().map((n) => Math.round(n * 100) / 100) },
    long_tasks: { count: perf.longTasks.length, max_ms: perf.longTasks.length ? Math.round(Math.max(...perf.longTasks)) : 0 },
    main_thread: mainThread,
    budget_ms: FRAME_BUDGET_MS,
    passed: phase === 'completed' && maxFrame !== null && maxFrame <= FRAME_BUDGET_MS && perf.loaf.length === 0,
  };
  await ensureDir(OUT);
  await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
  process.exitCode = result.passed ? 0 : 1;
} finally {
  await browser.close();
  server.close();
  app.server.close();
}
