import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest, StreamEvent } from '../types';
import { ExecutionError } from './errors';
import { executePrompt, executePromptStream } from './streaming';

const encoder = new TextEncoder();
const BASE = 'http://functions.test/demo/us-central1';
const REQUEST: ExecuteRequest = { prompt_id: 'p1', variables: { topic: 'cats' }, model: 'demo/local-model' };

const FULL_STREAM = [
  'event: start\ndata: {"execution_id": "ex1", "prompt_id": "p1", "model": "demo/local-model"}\n\n',
  ': ping\n\n',
  'id: 1\ndata: {"content": "Hél", "finish_reason": null}\n\n',
  'id: 2\ndata: {"content": "lo 🌍 世界", "finish_reason": "stop"}\n\n',
  'event: end\ndata: {"execution_id": "ex1", "model": "demo/local-model", "finish_reason": "stop", ' +
    '"usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11, "cost": 0.5}, "generation_id": "gen-1"}\n\n',
  'data: [DONE]\n\n',
].join('');

const EXPECTED_EVENTS: StreamEvent[] = [
  {
    type: 'start',
    executionId: 'ex1',
    promptId: 'p1',
    model: 'demo/local-model',
    comparisonId: null,
    models: [],
    resumable: false,
    resumed: false,
  },
  { type: 'content', id: '1', content: 'Hél', reasoning: undefined, finishReason: null },
  { type: 'content', id: '2', content: 'lo 🌍 世界', reasoning: undefined, finishReason: 'stop' },
  {
    type: 'end',
    executionId: 'ex1',
    model: 'demo/local-model',
    finishReason: 'stop',
    usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0.5 },
    generationId: 'gen-1',
    attempts: [],
  },
  { type: 'done' },
];

/** A body that hands out exactly these byte chunks, one per read. */
function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  });
}

function sseResponse(body: ReadableStream<Uint8Array> | string, init: ResponseInit = {}): Response {
  const stream = typeof body === 'string' ? bodyOf([encoder.encode(body)]) : body;
  return new Response(stream, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream; charset=utf-8' },
    ...init,
  });
}

function fetchReturning(response: Response | (() => Response)) {
  return vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) =>
    typeof response === 'function' ? response() : response,
  );
}

async function run(body: ReadableStream<Uint8Array> | string, options: { signal?: AbortSignal } = {}) {
  const events: StreamEvent[] = [];
  const fetchImpl = fetchReturning(sseResponse(body));
  const result = await executePromptStream(REQUEST, {
    idToken: 'tok',
    baseUrl: BASE,
    fetchImpl,
    onEvent: (e) => events.push(e),
    ...options,
  });
  return { result, events, fetchImpl };
}

async function runExpectingError(body: string) {
  const events: StreamEvent[] = [];
  const error = await executePromptStream(REQUEST, {
    idToken: 'tok',
    baseUrl: BASE,
    fetchImpl: fetchReturning(sseResponse(body)),
    onEvent: (e) => events.push(e),
  }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ExecutionError);
  return { error: error as ExecutionError, events };
}

describe('executePromptStream: request', () => {
  it('posts the snake_case body with the bearer token to execute_prompt_stream', async () => {
    const { fetchImpl } = await run(FULL_STREAM);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    const [url, init] = fetchImpl.mock.calls[0]!;
    expect(url).toBe(`${BASE}/execute_prompt_stream`);
    expect(init?.method).toBe('POST');
    const headers = init?.headers as Record<string, string>;
    expect(headers.Authorization).toBe('Bearer tok');
    expect(headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(init?.body as string)).toEqual({
      prompt_id: 'p1',
      variables: { topic: 'cats' },
      model: 'demo/local-model',
    });
  });
});

describe('executePromptStream: framing', () => {
  it('decodes the whole stream in one read', async () => {
    const { result, events } = await run(FULL_STREAM);
    expect(events).toEqual(EXPECTED_EVENTS);
    expect(result).toEqual({
      executionId: 'ex1',
      model: 'demo/local-model',
      content: 'Hello 🌍 世界'.replace('e', 'é'),
      reasoning: '',
      finishReason: 'stop',
      usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0.5 },
      generationId: 'gen-1',
      attempts: [],
      cancelled: false,
    });
  });

  it('gives the same events when split in two at every byte offset', async () => {
    const bytes = encoder.encode(FULL_STREAM);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { result, events } = await run(bodyOf([bytes.slice(0, cut), bytes.slice(cut)]));
      expect(events, `cut at ${cut}`).toEqual(EXPECTED_EVENTS);
      expect(result.content).toBe('Héllo 🌍 世界');
    }
  });

  it('gives the same events when every byte is its own read', async () => {
    const bytes = encoder.encode(FULL_STREAM);
    const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
    const { events } = await run(bodyOf(chunks));
    expect(events).toEqual(EXPECTED_EVENTS);
  });

  it('reassembles multi-byte characters split across reads', async () => {
    const text = 'é🌍世界ß';
    const frame = `data: ${JSON.stringify({ content: text, finish_reason: null })}\n\ndata: [DONE]\n\n`;
    const bytes = encoder.encode(frame);
    const start = bytes.indexOf(0xc3); // first byte of "é"
    // Every cut inside and between the multi-byte sequences.
    for (let cut = start; cut <= start + encoder.encode(text).length; cut++) {
      const { result } = await run(bodyOf([bytes.slice(0, cut), bytes.slice(cut, cut + 1), bytes.slice(cut + 1)]));
      expect(result.content, `cut at ${cut}`).toBe(text);
      expect(result.content).not.toContain('\uFFFD');
    }
  });

  it('accepts CRLF and CR line endings', async () => {
    for (const eol of ['\r\n', '\r']) {
      const { events } = await run(FULL_STREAM.replaceAll('\n', eol));
      expect(events).toEqual(EXPECTED_EVENTS);
    }
  });

  it('ignores heartbeat comments wherever they fall', async () => {
    const body =
      ': ping\n\n' +
      'data: {"content": "a", "finish_reason": null}\n\n' +
      ': ping\n: ping\n\n' +
      'data: {"content": "b", "finish_reason": "stop"}\n\n' +
      ': ping\n\ndata: [DONE]\n\n';
    const { result, events } = await run(body);
    expect(events.map((e) => e.type)).toEqual(['content', 'content', 'done']);
    expect(result.content).toBe('ab');
  });

  it('collects reasoning deltas apart from content', async () => {
    const body =
      'data: {"content": "", "reasoning": "think ", "finish_reason": null}\n\n' +
      'data: {"content": "", "reasoning": "more", "finish_reason": null}\n\n' +
      'data: {"content": "answer", "finish_reason": "stop"}\n\ndata: [DONE]\n\n';
    const { result, events } = await run(body);
    expect(result.reasoning).toBe('think more');
    expect(result.content).toBe('answer');
    expect(events[0]).toMatchObject({ type: 'content', reasoning: 'think ' });
  });

  it('skips unknown event types', async () => {
    const body = 'event: future\ndata: {"x": 1}\n\ndata: {"content": "a", "finish_reason": null}\n\ndata: [DONE]\n\n';
    const { events } = await run(body);
    expect(events.map((e) => e.type)).toEqual(['content', 'done']);
  });
});

describe('executePromptStream: endings', () => {
  it('finishes on [DONE] without an end event, with no usage', async () => {
    const { result } = await run('data: {"content": "a", "finish_reason": "stop"}\n\ndata: [DONE]\n\n');
    expect(result.content).toBe('a');
    expect(result.usage).toBeNull();
    expect(result.cancelled).toBe(false);
  });

  it('ignores anything after [DONE]', async () => {
    const { events } = await run('data: [DONE]\n\ndata: {"content": "late", "finish_reason": null}\n\n');
    expect(events).toEqual([{ type: 'done' }]);
  });

  it('finishes on an end event when the connection then closes without [DONE]', async () => {
    const body = FULL_STREAM.slice(0, FULL_STREAM.indexOf('data: [DONE]'));
    const { result, events } = await run(body);
    expect(events.at(-1)?.type).toBe('end');
    expect(result.usage?.total_tokens).toBe(11);
  });

  it('rejects as stream_interrupted when the stream ends without end or [DONE]', async () => {
    const body = FULL_STREAM.slice(0, FULL_STREAM.indexOf('event: end'));
    const { error, events } = await runExpectingError(body);
    expect(error.code).toBe('stream_interrupted');
    expect(error.isNetwork).toBe(true);
    expect(events.filter((e) => e.type === 'content')).toHaveLength(2);
  });

  it('rejects as stream_interrupted when the last event is cut in half', async () => {
    const body = 'data: {"content": "a", "finish_reason": null}\n\ndata: {"content": "b", "fin';
    const { error } = await runExpectingError(body);
    expect(error.code).toBe('stream_interrupted');
  });

  it('turns a mid-stream error event into a typed error after the partial content', async () => {
    const body =
      'event: start\ndata: {"execution_id": "ex2", "prompt_id": "p1", "model": "m"}\n\n' +
      'id: 1\ndata: {"content": "partial ", "finish_reason": null}\n\n' +
      'id: 2\ndata: {"content": "text", "finish_reason": null}\n\n' +
      'event: error\ndata: {"code": "upstream_error", "message": "Provider returned error"}\n\n' +
      'data: [DONE]\n\n';
    const { error, events } = await runExpectingError(body);
    expect(error.code).toBe('upstream_error');
    expect(error.message).toBe('Provider returned error');
    expect(error.midStream).toBe(true);
    expect(events.map((e) => e.type)).toEqual(['start', 'content', 'content', 'error', 'done']);
    const partial = events.flatMap((e) => (e.type === 'content' ? [e.content] : [])).join('');
    expect(partial).toBe('partial text');
  });

  it('reads the comparison id and the models to try from start, and the attempts from end and error', async () => {
    const skipped = '{"model": "a", "outcome": "skipped", "error_code": "rate_limited", "status": 429, "message": "slow down"}';
    const body =
      'event: start\ndata: {"execution_id": "ex3", "prompt_id": "p1", "model": "a", "comparison_id": "c1", "models": ["a", "b", 7]}\n\n' +
      'data: {"content": "hi", "finish_reason": "stop"}\n\n' +
      `event: end\ndata: {"execution_id": "ex3", "model": "b", "attempts": [${skipped}, {"model": "b", "outcome": "answered"}, "junk"]}\n\n` +
      'data: [DONE]\n\n';
    const { result, events } = await run(body);
    expect(events[0]).toMatchObject({ type: 'start', comparisonId: 'c1', models: ['a', 'b'] });
    expect(result.model).toBe('b');
    expect(result.attempts).toEqual([
      { model: 'a', outcome: 'skipped', error_code: 'rate_limited', status: 429, message: 'slow down' },
      { model: 'b', outcome: 'answered', error_code: null, status: null, message: null },
    ]);
    const failed = await runExpectingError(
      `event: error\ndata: {"code": "upstream_error", "message": "all failed", "attempts": [${skipped}]}\n\n`,
    );
    expect(failed.events[0]).toMatchObject({ type: 'error', attempts: [{ model: 'a', outcome: 'skipped' }] });
    expect(failed.error.details).toEqual({ attempts: [expect.objectContaining({ model: 'a', status: 429 })] });
  });

  it('reports the error event even if the stream then drops before [DONE]', async () => {
    const { error } = await runExpectingError('event: error\ndata: {"code": "upstream_disconnected", "message": "gone"}\n\n');
    expect(error.code).toBe('upstream_disconnected');
  });

  it('rejects data that is not JSON as bad_response', async () => {
    const { error } = await runExpectingError('data: {not json\n\ndata: [DONE]\n\n');
    expect(error.code).toBe('bad_response');
  });

  it('rejects a 200 that is not an event stream', async () => {
    const fetchImpl = fetchReturning(
      new Response('{"ok": true}', { status: 200, headers: { 'Content-Type': 'application/json' } }),
    );
    await expect(executePromptStream(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl })).rejects.toMatchObject({
      code: 'bad_response',
    });
  });

  it('rejects as streaming_unsupported when the response has no body', async () => {
    const response = sseResponse('data: [DONE]\n\n');
    Object.defineProperty(response, 'body', { value: null });
    await expect(
      executePromptStream(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl: fetchReturning(response) }),
    ).rejects.toMatchObject({ code: 'streaming_unsupported' });
  });
});

describe('executePromptStream: HTTP errors', () => {
  const table: Array<{ status: number; body: string; headers?: Record<string, string>; expected: Partial<ExecutionError> }> = [
    {
      status: 400,
      body: '{"error": {"code": "missing_variables", "message": "Missing required variables: audience, tone", "details": {"missing": ["audience", "tone"]}}}',
      expected: { code: 'missing_variables', status: 400, details: { missing: ['audience', 'tone'] }, retryAfter: null },
    },
    {
      status: 401,
      body: '{"error": {"code": "unauthenticated", "message": "Missing bearer token"}}',
      expected: { code: 'unauthenticated', status: 401, message: 'Missing bearer token', details: null },
    },
    {
      status: 404,
      body: '{"error": {"code": "prompt_not_found", "message": "Prompt not found", "details": {}}}',
      expected: { code: 'prompt_not_found', status: 404 },
    },
    {
      status: 429,
      body: '{"error": {"code": "rate_limited", "message": "Slow down"}}',
      headers: { 'Retry-After': '7' },
      expected: { code: 'rate_limited', status: 429, retryAfter: 7 },
    },
    {
      status: 402,
      body: '{"error": {"code": "out_of_credits", "message": "No credits"}}',
      expected: { code: 'out_of_credits', status: 402 },
    },
    {
      status: 502,
      body: '<html>Bad gateway</html>',
      expected: { code: 'http_502', status: 502 },
    },
  ];

  it.each(table)('$status $expected.code becomes a typed ExecutionError', async ({ status, body, headers, expected }) => {
    const response = new Response(body, { status, headers: { 'Content-Type': 'application/json', ...headers } });
    const error = await executePromptStream(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl: fetchReturning(response) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject(expected);
  });
});

describe('executePromptStream: network and abort', () => {
  it('turns a fetch TypeError into network_error', async () => {
    const fetchImpl = vi.fn(async () => {
      throw new TypeError('Failed to fetch');
    });
    const error = (await executePromptStream(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl }).catch((e: unknown) => e)) as ExecutionError;
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error.code).toBe('network_error');
    expect(error.isNetwork).toBe(true);
    expect(error.cause).toBeInstanceOf(TypeError);
  });

  it('turns a body read failure into network_error', async () => {
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(encoder.encode('data: {"content": "a", "finish_reason": null}\n\n'));
        } else {
          controller.error(new TypeError('network error'));
        }
      },
    });
    const events: StreamEvent[] = [];
    const error = (await executePromptStream(REQUEST, {
      idToken: 't',
      baseUrl: BASE,
      fetchImpl: fetchReturning(sseResponse(body)),
      onEvent: (e) => events.push(e),
    }).catch((e: unknown) => e)) as ExecutionError;
    expect(error.code).toBe('network_error');
    expect(events).toHaveLength(1);
  });

  it('passes the signal to fetch and resolves as cancelled with the partial text on abort', async () => {
    const controller = new AbortController();
    let cancelledReason: unknown = 'not cancelled';
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(encoder.encode('event: start\ndata: {"execution_id": "ex3", "prompt_id": "p1", "model": "m"}\n\n'));
        c.enqueue(encoder.encode('data: {"content": "so far", "finish_reason": null}\n\n'));
        // Never closes: only the abort can end this stream.
      },
      cancel(reason) {
        cancelledReason = reason;
      },
    });
    const fetchImpl = fetchReturning(sseResponse(body));
    const promise = executePromptStream(REQUEST, {
      idToken: 't',
      baseUrl: BASE,
      fetchImpl,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'content') controller.abort();
      },
    });
    const result = await promise;
    expect(fetchImpl.mock.calls[0]![1]?.signal).toBe(controller.signal);
    expect(result.cancelled).toBe(true);
    expect(result.content).toBe('so far');
    expect(result.executionId).toBe('ex3');
    expect(cancelledReason).not.toBe('not cancelled');
  });

  it('resolves as cancelled when aborted before the response arrives', async () => {
    const controller = new AbortController();
    const fetchImpl = vi.fn(
      (_url: RequestInfo | URL, init?: RequestInit) =>
        new Promise<Response>((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        }),
    );
    const promise = executePromptStream(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl, signal: controller.signal });
    controller.abort();
    await expect(promise).resolves.toMatchObject({ cancelled: true, content: '' });
  });

  it('does not call fetch when the signal is already aborted', async () => {
    const fetchImpl = fetchReturning(sseResponse(FULL_STREAM));
    const result = await executePromptStream(REQUEST, {
      idToken: 't',
      baseUrl: BASE,
      fetchImpl,
      signal: AbortSignal.abort(),
    });
    expect(result.cancelled).toBe(true);
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('gives up as stream_interrupted after the idle timeout', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(encoder.encode('data: {"content": "a", "finish_reason": null}\n\n'));
      },
    });
    const error = (await executePromptStream(REQUEST, {
      idToken: 't',
      baseUrl: BASE,
      fetchImpl: fetchReturning(sseResponse(body)),
      idleTimeoutMs: 50,
    }).catch((e: unknown) => e)) as ExecutionError;
    expect(error.code).toBe('stream_interrupted');
  });
});

describe('executePromptStream over a real loopback server', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('streams chunks as they are written and closes the connection on abort', async () => {
    let requestBody = '';
    let serverSawClose!: () => void;
    const closed = new Promise<void>((resolve) => (serverSawClose = resolve));
    let timer: ReturnType<typeof setInterval> | undefined;
    const base = await listen((req, res) => {
      req.on('data', (d: Buffer) => (requestBody += d.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write('event: start\ndata: {"execution_id": "ex4", "prompt_id": "p1", "model": "m"}\n\n');
        let n = 0;
        timer = setInterval(() => {
          n += 1;
          if (n > 200) return; // bounded: the test aborts long before this
          res.write(`id: ${n}\ndata: {"content": "t${n} ", "finish_reason": null}\n\n`);
        }, 10);
      });
      res.on('close', () => {
        clearInterval(timer);
        serverSawClose();
      });
    });

    const controller = new AbortController();
    const seen: string[] = [];
    const result = await executePromptStream(REQUEST, {
      idToken: 't',
      baseUrl: base,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'content') {
          seen.push(e.content);
          if (seen.length === 3) controller.abort();
        }
      },
    });
    expect(JSON.parse(requestBody)).toEqual(REQUEST);
    expect(result.cancelled).toBe(true);
    expect(seen).toEqual(['t1 ', 't2 ', 't3 ']);
    await closed; // the server noticed the client went away
  });

  it('reads a JSON error body with Retry-After from a real response', async () => {
    const base = await listen((_req, res) => {
      res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '12' });
      res.end('{"error": {"code": "concurrency_limit", "message": "Too many streams", "details": {"limit": 2}}}');
    });
    await expect(executePromptStream(REQUEST, { idToken: 't', baseUrl: base })).rejects.toMatchObject({
      code: 'concurrency_limit',
      status: 429,
      retryAfter: 12,
      details: { limit: 2 },
    });
  });

  it('reports a refused connection as network_error', async () => {
    const base = await listen(() => undefined);
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    await expect(executePromptStream(REQUEST, { idToken: 't', baseUrl: base })).rejects.toMatchObject({
      code: 'network_error',
    });
  });
});

describe('executePrompt (non-streaming)', () => {
  it('posts to execute_prompt and maps the JSON answer', async () => {
    const fetchImpl = fetchReturning(
      new Response(
        JSON.stringify({
          execution_id: 'ex9',
          prompt_id: 'p1',
          model: 'demo/local-model',
          content: 'full text',
          reasoning: null,
          finish_reason: 'stop',
          usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0 },
          generation_id: 'gen-9',
          duration_ms: 812,
        }),
        { status: 200, headers: { 'Content-Type': 'application/json' } },
      ),
    );
    const result = await executePrompt(REQUEST, { idToken: 'tok', baseUrl: BASE, fetchImpl });
    expect(fetchImpl.mock.calls[0]![0]).toBe(`${BASE}/execute_prompt`);
    expect(result).toEqual({
      executionId: 'ex9',
      model: 'demo/local-model',
      content: 'full text',
      reasoning: '',
      finishReason: 'stop',
      usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11, cost: 0 },
      generationId: 'gen-9',
      attempts: [],
      cancelled: false,
      durationMs: 812,
    });
  });

  it('raises the typed error of a non-2xx answer', async () => {
    const fetchImpl = fetchReturning(
      new Response('{"error": {"code": "unknown_variables", "message": "x", "details": {"unknown": ["zzz"]}}}', {
        status: 400,
      }),
    );
    await expect(executePrompt(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl })).rejects.toMatchObject({
      code: 'unknown_variables',
      details: { unknown: ['zzz'] },
    });
  });

  it('rejects invalid JSON as bad_response and a fetch failure as network_error', async () => {
    await expect(
      executePrompt(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl: fetchReturning(new Response('nope')) }),
    ).rejects.toMatchObject({ code: 'bad_response' });
    const failing = vi.fn(async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(executePrompt(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl: failing })).rejects.toMatchObject({
      code: 'network_error',
    });
  });

  it('resolves as cancelled on abort', async () => {
    const controller = new AbortController();
    const fetchImpl = vi.fn(
      (_url: RequestInfo | URL, init?: RequestInit) =>
        new Promise<Response>((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        }),
    );
    const promise = executePrompt(REQUEST, { idToken: 't', baseUrl: BASE, fetchImpl, signal: controller.signal });
    controller.abort();
    await expect(promise).resolves.toMatchObject({ cancelled: true });
  });
});
