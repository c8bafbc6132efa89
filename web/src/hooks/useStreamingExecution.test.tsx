// @vitest-environment jsdom
import { act, renderHook, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest } from '../types';
import { useStreamingExecution } from './useStreamingExecution';

const encoder = new TextEncoder();
const REQUEST: ExecuteRequest = { prompt_id: 'p1', variables: {}, model: 'demo/local-model' };
const OPTIONS = { idToken: 'tok', baseUrl: 'http://functions.test' };

/** A stream the test writes to by hand, one frame at a time. */
function controlledStream() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      cancelled = true;
    },
  });
  return {
    body,
    write: (text: string) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
    wasCancelled: () => cancelled,
  };
}

function stubFetch(respond: (url: string, init?: RequestInit) => Response) {
  const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => respond(String(url), init));
  vi.stubGlobal('fetch', fetchMock);
  return fetchMock;
}

function jsonError(status: number, body: string): Response {
  return new Response(body, { status, headers: { 'Content-Type': 'application/json' } });
}

function sse(body: ReadableStream<Uint8Array>): Response {
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

const START = 'event: start\ndata: {"execution_id": "ex1", "prompt_id": "p1", "model": "demo/local-model", "resumable": true}\n\n';

function isCancel(init: RequestInit | undefined): boolean {
  return typeof init?.body === 'string' && 'cancel' in JSON.parse(init.body);
}

function cancelAnswer(id: string): Response {
  return new Response(JSON.stringify({ execution_id: id, status: 'cancelled' }), {
    status: 200,
    headers: { 'Content-Type': 'application/json' },
  });
}

/** The JSON bodies the app posted, in order. */
function bodies(fetchMock: ReturnType<typeof stubFetch>): unknown[] {
  return fetchMock.mock.calls.map((c) => JSON.parse(String(c[1]?.body)));
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('useStreamingExecution', () => {
  it('grows the content token by token and reports usage and model at the end', async () => {
    const stream = controlledStream();
    stubFetch(() => sse(stream.body));
    const { result } = renderHook(() => useStreamingExecution());

    let done!: Promise<void>;
    act(() => {
      done = result.current.execute(REQUEST, OPTIONS);
    });
    expect(result.current.phase).toBe('connecting');
    expect(result.current.isStreaming).toBe(true);

    stream.write('event: start\ndata: {"execution_id": "ex1", "prompt_id": "p1", "model": "demo/local-model"}\n\n');
    await waitFor(() => expect(result.current.executionId).toBe('ex1'));
    expect(result.current.phase).toBe('connecting');

    stream.write('data: {"content": "Hel", "finish_reason": null}\n\n');
    await waitFor(() => expect(result.current.content).toBe('Hel'));
    expect(result.current.phase).toBe('streaming');

    stream.write('data: {"content": "lo", "finish_reason": "stop"}\n\n');
    await waitFor(() => expect(result.current.content).toBe('Hello'));

    stream.write(
      'event: end\ndata: {"execution_id": "ex1", "model": "demo/local-model", "finish_reason": "stop", ' +
        '"usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.001}, "generation_id": "g"}\n\n' +
        'data: [DONE]\n\n',
    );
    stream.close();
    await act(() => done);
    expect(result.current.phase).toBe('completed');
    expect(result.current.isStreaming).toBe(false);
    expect(result.current.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, cost: 0.001 });
    expect(result.current.model).toBe('demo/local-model');
    expect(result.current.error).toBeNull();
  });

  it('draws chunks that arrive faster than frames in one render a frame, not one a chunk', async () => {
    const stream = controlledStream();
    stubFetch(() => sse(stream.body));
    const seen: string[] = [];
    const { result } = renderHook(() => {
      const state = useStreamingExecution();
      seen.push(state.content);
      return state;
    });
    let done!: Promise<void>;
    act(() => {
      done = result.current.execute(REQUEST, OPTIONS);
    });
    // 40 reads, 1 ms apart: 40 renders without batching, a handful with one a frame.
    for (let i = 0; i < 40; i++) {
      stream.write(`data: {"content": "${i % 10}", "finish_reason": null}\n\n`);
      await act(() => new Promise((r) => setTimeout(r, 1)));
    }
    await waitFor(() => expect(result.current.content).toHaveLength(40));
    expect(new Set(seen.filter((c) => c !== '')).size).toBeLessThan(15);
    stream.write('data: [DONE]\n\n');
    stream.close();
    await act(() => done);
    expect(result.current.content).toBe('0123456789'.repeat(4));
  });

  it('cancel aborts the fetch, asks the server to cancel the run, and keeps the text so far', async () => {
    const stream = controlledStream();
    const fetchMock = stubFetch((_url, init) => (isCancel(init) ? cancelAnswer('ex1') : sse(stream.body)));
    const { result } = renderHook(() => useStreamingExecution());
    let done!: Promise<void>;
    act(() => {
      done = result.current.execute(REQUEST, OPTIONS);
    });
    stream.write(START);
    stream.write('id: 1\ndata: {"content": "partial", "finish_reason": null}\n\n');
    await waitFor(() => expect(result.current.content).toBe('partial'));

    act(() => result.current.cancel());
    await act(() => done);
    const signal = fetchMock.mock.calls[0]![1]?.signal;
    expect(signal?.aborted).toBe(true);
    expect(stream.wasCancelled()).toBe(true);
    expect(result.current.phase).toBe('cancelled');
    expect(result.current.content).toBe('partial');
    await waitFor(() => expect(bodies(fetchMock)).toEqual([{ ...REQUEST, resumable: true }, { cancel: 'ex1' }]));
  });

  it('cancels the run when the component unmounts', async () => {
    const stream = controlledStream();
    const fetchMock = stubFetch((_url, init) => (isCancel(init) ? cancelAnswer('ex1') : sse(stream.body)));
    const { result, unmount } = renderHook(() => useStreamingExecution());
    act(() => {
      void result.current.execute(REQUEST, OPTIONS);
    });
    stream.write(START);
    await waitFor(() => expect(result.current.executionId).toBe('ex1'));
    unmount();
    expect(fetchMock.mock.calls[0]![1]?.signal?.aborted).toBe(true);
    await waitFor(() => expect(bodies(fetchMock)).toContainEqual({ cancel: 'ex1' }));
  });

  it('keeps the partial text and sets a mid-stream error', async () => {
    const stream = controlledStream();
    stubFetch(() => sse(stream.body));
    const { result } = renderHook(() => useStreamingExecution());
    let done!: Promise<void>;
    act(() => {
      done = result.current.execute(REQUEST, OPTIONS);
    });
    stream.write('data: {"content": "half an ", "finish_reason": null}\n\n');
    stream.write('data: {"content": "answer", "finish_reason": null}\n\n');
    stream.write('event: error\ndata: {"code": "upstream_error", "message": "boom"}\n\ndata: [DONE]\n\n');
    stream.close();
    await act(() => done);
    expect(result.current.phase).toBe('error');
    expect(result.current.error?.code).toBe('upstream_error');
    expect(result.current.error?.midStream).toBe(true);
    expect(result.current.content).toBe('half an answer');
  });

  it('reports a typed HTTP error before any content', async () => {
    stubFetch(() => jsonError(400, '{"error": {"code": "missing_variables", "message": "m", "details": {"missing": ["tone"]}}}'));
    const { result } = renderHook(() => useStreamingExecution());
    await act(() => result.current.execute(REQUEST, OPTIONS));
    expect(result.current.phase).toBe('error');
    expect(result.current.error?.code).toBe('missing_variables');
    expect(result.current.error?.details).toEqual({ missing: ['tone'] });
  });

  it('falls back to execute_prompt when the response body cannot be streamed', async () => {
    const fetchMock = stubFetch((url) => {
      if (url.endsWith('/execute_prompt_stream')) {
        const response = sse(controlledStream().body);
        Object.defineProperty(response, 'body', { value: null });
        return response;
      }
      return new Response(
        JSON.stringify({
          execution_id: 'ex7',
          prompt_id: 'p1',
          model: 'demo/local-model',
          content: 'whole answer',
          reasoning: null,
          finish_reason: 'stop',
          usage: { total_tokens: 4 },
          generation_id: 'g',
          duration_ms: 5,
        }),
        { status: 200, headers: { 'Content-Type': 'application/json' } },
      );
    });
    const { result } = renderHook(() => useStreamingExecution());
    await act(() => result.current.execute(REQUEST, OPTIONS));
    expect(fetchMock.mock.calls.map((c) => String(c[0]))).toEqual([
      'http://functions.test/execute_prompt_stream',
      'http://functions.test/execute_prompt',
    ]);
    expect(result.current.usedFallback).toBe(true);
    expect(result.current.phase).toBe('completed');
    expect(result.current.content).toBe('whole answer');
    expect(result.current.executionId).toBe('ex7');
  });
  it('shows reconnecting while a dropped stream is resumed, and ends with the undisturbed text', async () => {
    const first = controlledStream();
    const second = controlledStream();
    const fetchMock = stubFetch((_url, init) => (JSON.parse(String(init?.body)).resume ? sse(second.body) : sse(first.body)));
    const { result } = renderHook(() => useStreamingExecution());
    let done!: Promise<void>;
    act(() => {
      done = result.current.execute(REQUEST, { ...OPTIONS, reconnect: { delaysMs: [1], random: () => 0.5 } });
    });
    first.write(START + 'id: 1\ndata: {"content": "Hel", "finish_reason": null}\n\n');
    await waitFor(() => expect(result.current.content).toBe('Hel'));
    expect(result.current.reconnecting).toBe(false);
    first.close();
    await waitFor(() => expect(result.current.reconnecting).toBe(true));
    expect(result.current.phase).toBe('streaming');
    expect(result.current.isStreaming).toBe(true);
    await waitFor(() => expect(bodies(fetchMock)[1]).toEqual({ resume: 'ex1', last_event_id: 1 }));

    second.write(START.replace('}\n', ', "resumed": true}\n'));
    await waitFor(() => expect(result.current.reconnecting).toBe(false));
    second.write('id: 1\ndata: {"content": "Hel", "finish_reason": null}\n\n');
    second.write('id: 2\ndata: {"content": "lo", "finish_reason": "stop"}\n\n');
    second.write('id: 3\nevent: end\ndata: {"execution_id": "ex1", "model": "demo/local-model", "finish_reason": "stop"}\n\n');
    second.write('data: [DONE]\n\n');
    second.close();
    await act(() => done);
    expect(result.current.phase).toBe('completed');
    expect(result.current.content).toBe('Hello');
  });

  it('attaches to a run already streaming, from its first event', async () => {
    const stream = controlledStream();
    const fetchMock = stubFetch(() => sse(stream.body));
    const { result } = renderHook(() => useStreamingExecution());
    let done!: Promise<void>;
    act(() => {
      done = result.current.attach('ex1', OPTIONS);
    });
    expect(result.current.executionId).toBe('ex1');
    expect(result.current.phase).toBe('connecting');
    stream.write(START.replace('}\n', ', "resumed": true}\n') + 'id: 1\ndata: {"content": "Hi", "finish_reason": null}\n\n');
    stream.write('data: [DONE]\n\n');
    stream.close();
    await act(() => done);
    expect(bodies(fetchMock)).toEqual([{ resume: 'ex1', last_event_id: 0 }]);
    expect(result.current.content).toBe('Hi');
    expect(result.current.phase).toBe('completed');
  });

  it('ends an attach to a run that is not the user’s as an error', async () => {
    stubFetch(() => jsonError(404, '{"error": {"code": "execution_not_found", "message": "No such execution."}}'));
    const { result } = renderHook(() => useStreamingExecution());
    await act(() => result.current.attach('ex1', OPTIONS));
    expect(result.current.phase).toBe('error');
    expect(result.current.error?.code).toBe('execution_not_found');
  });
  it('shows a reattached run that was cancelled meanwhile as cancelled, with its text', async () => {
    const stream = controlledStream();
    stubFetch(() => sse(stream.body));
    const { result } = renderHook(() => useStreamingExecution());
    let done!: Promise<void>;
    act(() => {
      done = result.current.attach('ex1', OPTIONS);
    });
    stream.write(START.replace('}\n', ', "resumed": true}\n') + 'id: 1\ndata: {"content": "Half", "finish_reason": null}\n\n');
    stream.write('id: 2\nevent: error\ndata: {"code": "cancelled", "message": "The execution was cancelled."}\n\ndata: [DONE]\n\n');
    stream.close();
    await act(() => done);
    expect(result.current.phase).toBe('cancelled');
    expect(result.current.error).toBeNull();
    expect(result.current.content).toBe('Half');
  });
});
