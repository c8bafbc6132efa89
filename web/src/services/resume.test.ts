import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest, StreamEvent } from '../types';
import { ExecutionError } from './errors';
import { attachExecution, backoffDelay, RECONNECT, streamExecution, type ResumableOptions } from './resume';

const encoder = new TextEncoder();
const BASE = 'http://functions.test';
const REQUEST: ExecuteRequest = { prompt_id: 'p1', variables: {}, model: 'demo/local-model' };
/** Waits of 1, 2, 4 ms and no spread: the tests see the policy's steps, not the clock. */
const FAST = { delaysMs: [1, 2, 4], windowMs: 5_000, random: () => 0.5 };

const START = 'event: start\ndata: {"execution_id": "ex1", "prompt_id": "p1", "model": "m", "resumable": true}\n\n';
const RESUMED = START.replace('"resumable": true', '"resumable": true, "resumed": true');
const WORDS = ['Hél', 'lo', ' 🌍', ' wor', 'ld', '!'];

/** The events with an id from `after` on: content 1..n, then `end` (n + 1), as the server numbers them. */
function numbered(after = 0): string {
  const content = WORDS.map((w, i) => `id: ${i + 1}\ndata: ${JSON.stringify({ content: w, finish_reason: null })}\n\n`);
  const end = `id: ${WORDS.length + 1}\nevent: end\ndata: {"execution_id": "ex1", "model": "m", "finish_reason": "stop"}\n\n`;
  return [...content, end].slice(after).join('');
}
const WHOLE = START + numbered() + 'data: [DONE]\n\n';

/** A body that closes after these chunks: a connection cut there. */
function body(...chunks: string[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(encoder.encode(chunk));
    },
  });
}

function sse(...chunks: string[]): Response;
function sse(stream: ReadableStream<Uint8Array>): Response;
function sse(...chunks: Array<string | ReadableStream<Uint8Array>>): Response {
  const first = chunks[0];
  const stream = first instanceof ReadableStream ? first : body(...(chunks as string[]));
  return new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

/** A connection that stays open: the test writes to it, and sees whether the client closed it. */
function openConnection() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  const response = sse(
    new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        closed = true;
      },
    }),
  );
  return { response, write: (text: string) => controller.enqueue(encoder.encode(text)), closed: () => closed };
}

function jsonError(status: number, code: string): Response {
  return new Response(JSON.stringify({ error: { code, message: code } }), {
    status,
    headers: { 'Content-Type': 'application/json' },
  });
}

type Answer = Response | Error | ((body: Record<string, unknown>) => Response | Error);

/** A fetch that answers the n-th stream request with `answers[n]` (the last repeats), and a cancel with 200. */
function scripted(answers: Answer[]) {
  const posted: Record<string, unknown>[] = [];
  let n = 0;
  const fetchImpl = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
    const sent = JSON.parse(String(init?.body)) as Record<string, unknown>;
    posted.push(sent);
    if ('cancel' in sent) return new Response('{"execution_id": "ex1", "status": "cancelled"}', { status: 200 });
    const answer = answers[Math.min(n++, answers.length - 1)]!;
    const out = typeof answer === 'function' ? answer(sent) : answer;
    if (out instanceof Error) throw out;
    return out;
  });
  return { fetchImpl, posted };
}

function options(
  fetchImpl: typeof fetch,
  events: StreamEvent[],
  extra: Partial<ResumableOptions> = {},
): ResumableOptions {
  return { idToken: 'tok', baseUrl: BASE, fetchImpl, reconnect: FAST, onEvent: (e) => events.push(e), ...extra };
}

const contentIds = (events: StreamEvent[]) => events.flatMap((e) => (e.type === 'content' ? [e.id] : []));
const texts = (events: StreamEvent[]) => events.flatMap((e) => (e.type === 'content' ? [e.content] : [])).join('');
const delays = (events: StreamEvent[]) => events.flatMap((e) => (e.type === 'reconnecting' ? [e.delayMs] : []));

afterEach(() => {
  vi.useRealTimers();
});

describe('backoffDelay', () => {
  it('steps 0.25, 0.5, 1, 2, 4 s and stays at 4 s', () => {
    const policy = { ...RECONNECT, random: () => 0.5 };
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, policy))).toEqual([250, 500, 1000, 2000, 4000, 4000, 4000]);
  });

  it('spreads each step by at most a fifth either way', () => {
    expect(backoffDelay(3, { ...RECONNECT, random: () => 0 })).toBe(800);
    expect(backoffDelay(3, { ...RECONNECT, random: () => 0.999999 })).toBe(1200);
  });
});

describe('streamExecution', () => {
  it('asks for a resumable run', async () => {
    const { fetchImpl, posted } = scripted([sse(WHOLE)]);
    const result = await streamExecution(REQUEST, options(fetchImpl, []));
    expect(posted).toEqual([{ ...REQUEST, resumable: true }]);
    expect(result.content).toBe(WORDS.join(''));
  });

  // The browser's side of the TCP-proxy test: the connection is cut at every byte of the stream,
  // and the server replays from one event before the id asked for, so dedupe is exercised too.
  it('ends with the undisturbed text, every id once and in order, wherever the connection is cut', async () => {
    const firstId = WHOLE.indexOf('id: 1');
    for (let cut = firstId; cut < WHOLE.length - 'data: [DONE]\n\n'.length; cut++) {
      const events: StreamEvent[] = [];
      const { fetchImpl, posted } = scripted([
        sse(WHOLE.slice(0, cut)),
        (sent) => sse(RESUMED, numbered(Math.max(0, Number(sent.last_event_id) - 1)), 'data: [DONE]\n\n'),
      ]);
      const result = await streamExecution(REQUEST, options(fetchImpl, events));
      expect(result.content, `cut at byte ${cut}`).toBe(WORDS.join(''));
      expect(texts(events)).toBe(WORDS.join(''));
      expect(contentIds(events)).toEqual(WORDS.map((_, i) => String(i + 1)));
      expect(events.filter((e) => e.type === 'end')).toHaveLength(1);
      // A cut after `end` is a finished run: nothing to resume.
      const ended = WHOLE.slice(0, cut).includes(
        'event: end\ndata: {"execution_id": "ex1", "model": "m", "finish_reason": "stop"}\n\n',
      );
      expect(posted.length).toBe(ended ? 1 : 2);
    }
    // One whole run per byte of the stream: bounded, but it took over vitest's default 5 s
    // once, beside pytest's workers on two cores.
  }, 60_000);

  it('resumes after the last id it handed on', async () => {
    const { fetchImpl, posted } = scripted([
      sse(START + numbered().split('id: 4')[0]!),
      sse(RESUMED, numbered(3), 'data: [DONE]\n\n'),
    ]);
    await streamExecution(REQUEST, options(fetchImpl, []));
    expect(posted[1]).toEqual({ resume: 'ex1', last_event_id: 3 });
  });

  it('backs off step by step while the network stays down, and gives up after the window', async () => {
    const events: StreamEvent[] = [];
    const { fetchImpl } = scripted([sse(START, numbered().split('id: 2')[0]!), new TypeError('Failed to fetch')]);
    const error = await streamExecution(
      REQUEST,
      options(fetchImpl, events, { reconnect: { ...FAST, windowMs: 150 } }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as ExecutionError).code).toBe('network_error');
    const waits = delays(events);
    expect(waits.slice(0, 4)).toEqual([1, 2, 4, 4]);
    expect(
      events
        .filter((e) => e.type === 'reconnecting')
        .map((e) => (e as { attempt: number }).attempt)
        .slice(0, 3),
    ).toEqual([1, 2, 3]);
    expect(texts(events)).toBe('Hél');
  });

  it('starts the backoff again once a reconnect brings new events', async () => {
    const events: StreamEvent[] = [];
    const cutAfter = (n: number) => numbered().split(`id: ${n + 1}`)[0]!;
    const { fetchImpl } = scripted([
      sse(START, cutAfter(1)),
      new TypeError('Failed to fetch'),
      (sent) => sse(RESUMED, numbered(Number(sent.last_event_id)).split('id: 4')[0]!),
      (sent) => sse(RESUMED, numbered(Number(sent.last_event_id)), 'data: [DONE]\n\n'),
    ]);
    const result = await streamExecution(REQUEST, options(fetchImpl, events));
    expect(result.content).toBe(WORDS.join(''));
    expect(delays(events)).toEqual([1, 2, 1]);
  });

  it('comes back at once when the server says event: resume, with the id it handed on', async () => {
    const events: StreamEvent[] = [];
    const { fetchImpl, posted } = scripted([
      sse(START, numbered().split('id: 3')[0]!, 'event: resume\ndata: {"execution_id": "ex1", "last_event_id": 2}\n\n'),
      sse(RESUMED, numbered(2), 'data: [DONE]\n\n'),
    ]);
    const result = await streamExecution(
      REQUEST,
      options(fetchImpl, events, { reconnect: { ...FAST, delaysMs: [5_000] } }),
    );
    expect(delays(events)).toEqual([0]);
    expect(posted[1]).toEqual({ resume: 'ex1', last_event_id: 2 });
    expect(result.content).toBe(WORDS.join(''));
  });

  it('does not resume a run that dropped before event: start named it', async () => {
    const { fetchImpl, posted } = scripted([sse(': ping\n\n')]);
    const error = await streamExecution(REQUEST, options(fetchImpl, [])).catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe('stream_interrupted');
    expect(posted).toHaveLength(1);
  });

  it('does not send a run again that the server refused', async () => {
    const { fetchImpl, posted } = scripted([jsonError(503, 'unavailable')]);
    const error = await streamExecution(REQUEST, options(fetchImpl, [])).catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe('unavailable');
    expect(posted).toHaveLength(1);
  });

  it('tries a resume again that a draining server refused with 503', async () => {
    const { fetchImpl, posted } = scripted([
      sse(START, numbered().split('id: 2')[0]!),
      jsonError(503, 'unavailable'),
      sse(RESUMED, numbered(1), 'data: [DONE]\n\n'),
    ]);
    const result = await streamExecution(REQUEST, options(fetchImpl, []));
    expect(result.content).toBe(WORDS.join(''));
    expect(posted).toHaveLength(3);
  });

  it('ends as an error when the resume answers 404', async () => {
    const { fetchImpl } = scripted([sse(START, numbered().split('id: 2')[0]!), jsonError(404, 'execution_not_found')]);
    const error = await streamExecution(REQUEST, options(fetchImpl, [])).catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe('execution_not_found');
    expect((error as ExecutionError).status).toBe(404);
  });

  it('ends with the interrupted error of a run whose instance died, its text kept', async () => {
    const events: StreamEvent[] = [];
    const { fetchImpl } = scripted([
      sse(START, numbered().split('id: 3')[0]!),
      sse(
        RESUMED,
        numbered().split('id: 4')[0]!,
        'id: 4\nevent: error\ndata: {"code": "interrupted", "message": "lost"}\n\n',
        'data: [DONE]\n\n',
      ),
    ]);
    const error = await streamExecution(REQUEST, options(fetchImpl, events)).catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe('interrupted');
    expect(texts(events)).toBe('Hél' + 'lo' + ' 🌍');
  });

  it('a Cancel during the backoff stops reconnecting and cancels the run on the server', async () => {
    const events: StreamEvent[] = [];
    const controller = new AbortController();
    const { fetchImpl, posted } = scripted([
      sse(START, numbered().split('id: 2')[0]!),
      new TypeError('Failed to fetch'),
    ]);
    const running = streamExecution(
      REQUEST,
      options(fetchImpl, events, {
        signal: controller.signal,
        reconnect: { ...FAST, delaysMs: [60_000], windowMs: 120_000 },
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'reconnecting') controller.abort();
        },
      }),
    );
    const result = await running;
    expect(result.cancelled).toBe(true);
    expect(result.content).toBe('Hél');
    await vi.waitFor(() => expect(posted).toContainEqual({ cancel: 'ex1' }));
    expect(posted.filter((p) => 'resume' in p)).toHaveLength(0);
  });

  it('a Cancel after a reconnect cancels the resumed run', async () => {
    const controller = new AbortController();
    const resumed = openConnection();
    const { fetchImpl, posted } = scripted([sse(START, numbered().split('id: 2')[0]!), resumed.response]);
    const events: StreamEvent[] = [];
    const running = streamExecution(REQUEST, options(fetchImpl, events, { signal: controller.signal }));
    resumed.write(RESUMED + numbered(1).split('id: 3')[0]!);
    await vi.waitFor(() => expect(texts(events)).toBe('Héllo'));
    controller.abort();
    const result = await running;
    expect(result.cancelled).toBe(true);
    await vi.waitFor(() => expect(posted.at(-1)).toEqual({ cancel: 'ex1' }));
    expect(posted.map((p) => Object.keys(p)[0])).toEqual(['prompt_id', 'resume', 'cancel']);
  });

  it('a Cancel before event: start resolves at once, then cancels the run the start names', async () => {
    const controller = new AbortController();
    const stream = openConnection();
    const { fetchImpl, posted } = scripted([stream.response]);
    const events: StreamEvent[] = [];
    const running = streamExecution(REQUEST, options(fetchImpl, events, { signal: controller.signal }));
    await vi.waitFor(() => expect(posted).toHaveLength(1));
    controller.abort();
    expect((await running).cancelled).toBe(true);
    expect(stream.closed()).toBe(false);
    stream.write(START);
    await vi.waitFor(() => expect(posted.at(-1)).toEqual({ cancel: 'ex1' }));
    await vi.waitFor(() => expect(stream.closed()).toBe(true));
    // The caller had its answer already: nothing after the Cancel reaches it.
    expect(events).toEqual([]);
  });
});

describe('going offline', () => {
  it('drops the connection when the browser goes offline, and resumes as soon as it is online', async () => {
    const network = new EventTarget();
    const first = openConnection();
    const { fetchImpl, posted } = scripted([
      first.response,
      (sent) => sse(RESUMED, numbered(Number(sent.last_event_id)), 'data: [DONE]\n\n'),
    ]);
    const events: StreamEvent[] = [];
    // Only the online event can end this wait.
    const reconnect = { ...FAST, delaysMs: [60_000], windowMs: 120_000 };
    const running = streamExecution(REQUEST, options(fetchImpl, events, { network, reconnect }));
    first.write(START + numbered().split('id: 2')[0]!);
    await vi.waitFor(() => expect(texts(events)).toBe('Hél'));

    network.dispatchEvent(new Event('offline'));
    await vi.waitFor(() => expect(delays(events)).toEqual([expect.any(Number)]));
    expect(first.closed()).toBe(true);
    expect(posted).toHaveLength(1);
    network.dispatchEvent(new Event('online'));
    const result = await running;
    expect(posted[1]).toEqual({ resume: 'ex1', last_event_id: 1 });
    expect(result.content).toBe(WORDS.join(''));
    expect(contentIds(events)).toEqual(WORDS.map((_, i) => String(i + 1)));
  });
});

describe('attachExecution', () => {
  it('replays a running execution from its first event', async () => {
    const events: StreamEvent[] = [];
    const { fetchImpl, posted } = scripted([sse(RESUMED, numbered(), 'data: [DONE]\n\n')]);
    const result = await attachExecution('ex1', options(fetchImpl, events));
    expect(posted).toEqual([{ resume: 'ex1', last_event_id: 0 }]);
    expect(result.content).toBe(WORDS.join(''));
    expect(events[0]).toMatchObject({ type: 'start', executionId: 'ex1', resumed: true });
  });

  it('tries again when the first attach meets a draining server', async () => {
    const { fetchImpl, posted } = scripted([
      jsonError(503, 'unavailable'),
      sse(RESUMED, numbered(), 'data: [DONE]\n\n'),
    ]);
    const result = await attachExecution('ex1', options(fetchImpl, []));
    expect(result.content).toBe(WORDS.join(''));
    expect(posted).toEqual([
      { resume: 'ex1', last_event_id: 0 },
      { resume: 'ex1', last_event_id: 0 },
    ]);
  });

  it('ends as execution_not_found for another user’s run, or none', async () => {
    const { fetchImpl } = scripted([jsonError(404, 'execution_not_found')]);
    const error = await attachExecution('nope', options(fetchImpl, [])).catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe('execution_not_found');
  });
});
