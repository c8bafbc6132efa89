// @vitest-environment jsdom
import { act, renderHook, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest } from '../types';
import { useComparison } from './useComparison';

const encoder = new TextEncoder();
const OPTIONS = { idToken: 'tok', baseUrl: 'http://functions.test' };
const requestFor = (model: string): ExecuteRequest => ({ prompt_id: 'p1', variables: { x: '1' }, model, fallback_models: [] });

/** One hand-written stream per request, kept by the model the request named. */
function stubStreams() {
  const streams = new Map<string, { write: (t: string) => void; close: () => void; aborted: () => boolean }>();
  const bodies: Array<Record<string, unknown>> = [];
  const order: string[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
      bodies.push(body);
      order.push('fetch');
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
      streams.set(String(body.model), {
        write: (t) => controller.enqueue(encoder.encode(t)),
        close: () => controller.close(),
        aborted: () => init?.signal?.aborted === true,
      });
      return new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    }),
  );
  return { streams, bodies, order };
}

const start = (id: string, model: string) =>
  `event: start\ndata: {"execution_id": "${id}", "prompt_id": "p1", "model": "${model}", "comparison_id": "c1", "models": ["${model}"]}\n\n`;
const chunk = (text: string) => `data: {"content": "${text}", "finish_reason": null}\n\n`;
const end = (id: string, model: string) =>
  `event: end\ndata: {"execution_id": "${id}", "model": "${model}", "attempts": [{"model": "${model}", "outcome": "answered"}]}\n\ndata: [DONE]\n\n`;

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('useComparison', () => {
  it('writes the comparison first, then runs one stream per model with the same comparison id', async () => {
    const { streams, bodies, order } = stubStreams();
    const open = vi.fn(async (models: string[]) => {
      order.push(`open ${models.join(',')}`);
      return 'c1';
    });
    const { result } = renderHook(() => useComparison());
    let done!: Promise<void>;
    act(() => {
      done = result.current.start(['m/a', 'm/b', 'm/c'], { ...OPTIONS, open, requestFor });
    });
    await waitFor(() => expect(streams.size).toBe(3));
    expect(order).toEqual(['open m/a,m/b,m/c', 'fetch', 'fetch', 'fetch']);
    expect(bodies.map((b) => [b.model, b.comparison_id, b.fallback_models])).toEqual([
      ['m/a', 'c1', []],
      ['m/b', 'c1', []],
      ['m/c', 'c1', []],
    ]);
    expect(result.current.comparisonId).toBe('c1');
    expect(result.current.columns.map((c) => c.model)).toEqual(['m/a', 'm/b', 'm/c']);

    // Each column moves on its own: b finishes while a and c are still open.
    streams.get('m/b')!.write(start('eb', 'm/b') + chunk('bee') + end('eb', 'm/b'));
    streams.get('m/b')!.close();
    streams.get('m/a')!.write(start('ea', 'm/a') + chunk('ay'));
    await waitFor(() => expect(result.current.columns[1]!.state.phase).toBe('completed'));
    await waitFor(() => expect(result.current.columns[0]!.state.content).toBe('ay'));
    expect(result.current.columns[0]!.state.phase).toBe('streaming');
    expect(result.current.columns[2]!.state.phase).toBe('connecting');
    expect(result.current.columns[1]!.state.attempts).toEqual([
      { model: 'm/b', outcome: 'answered', error_code: null, status: null, message: null },
    ]);
    expect(result.current.busy).toBe(true);

    // Cancelling one column closes its request only.
    act(() => result.current.cancel(0));
    await waitFor(() => expect(result.current.columns[0]!.state.phase).toBe('cancelled'));
    expect(result.current.columns[0]!.state.content).toBe('ay');
    expect(streams.get('m/a')!.aborted()).toBe(true);
    expect(streams.get('m/c')!.aborted()).toBe(false);

    streams.get('m/c')!.write(start('ec', 'm/c') + 'event: error\ndata: {"code": "upstream_error", "message": "boom"}\n\n');
    streams.get('m/c')!.close();
    await act(() => done);
    expect(result.current.columns[2]!.state.phase).toBe('error');
    expect(result.current.columns[2]!.state.error?.code).toBe('upstream_error');
    expect(result.current.columns[1]!.state.phase).toBe('completed');
    expect(result.current.busy).toBe(false);
  });

  it('cancels every column at once, on the server too', async () => {
    const { streams, bodies } = stubStreams();
    const { result } = renderHook(() => useComparison());
    act(() => {
      void result.current.start(['m/a', 'm/b'], { ...OPTIONS, open: async () => 'c2', requestFor });
    });
    await waitFor(() => expect(streams.size).toBe(2));
    streams.get('m/a')!.write(start('e1', 'm/a'));
    streams.get('m/b')!.write(start('e2', 'm/b'));
    await waitFor(() => expect(result.current.columns.map((c) => c.state.executionId)).toEqual(['e1', 'e2']));
    act(() => result.current.cancelAll());
    await waitFor(() => expect(result.current.columns.map((c) => c.state.phase)).toEqual(['cancelled', 'cancelled']));
    expect([streams.get('m/a')!, streams.get('m/b')!].every((s) => s.aborted())).toBe(true);
    await waitFor(() => expect(bodies.filter((b) => 'cancel' in b)).toEqual([{ cancel: 'e1' }, { cancel: 'e2' }]));
  });

  it('starts no run when the comparison cannot be written, and says why', async () => {
    const { bodies } = stubStreams();
    const { result } = renderHook(() => useComparison());
    await act(() =>
      result.current.start(['m/a', 'm/b'], {
        ...OPTIONS,
        open: async () => {
          throw new Error('Missing or insufficient permissions.');
        },
        requestFor,
      }),
    );
    expect(bodies).toEqual([]);
    expect(result.current.openError).toBe('Missing or insufficient permissions.');
    expect(result.current.busy).toBe(false);
  });

  it('starts nothing when cancelled while the comparison is being written', async () => {
    const { bodies } = stubStreams();
    let resolve!: (id: string) => void;
    const { result } = renderHook(() => useComparison());
    let done!: Promise<void>;
    act(() => {
      done = result.current.start(['m/a', 'm/b'], { ...OPTIONS, open: () => new Promise((r) => (resolve = r)), requestFor });
    });
    expect(result.current.opening).toBe(true);
    expect(result.current.busy).toBe(true);
    act(() => result.current.cancelAll());
    resolve('c3');
    await act(() => done);
    expect(bodies).toEqual([]);
    expect(result.current.busy).toBe(false);
    expect(result.current.columns).toEqual([]);
  });
});
