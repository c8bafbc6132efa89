import { describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest, Source, StreamEvent } from '../types';
import { ExecutionError } from './errors';
import { sourcesOf } from './sources';
import { executePrompt, executePromptStream } from './streaming';

const encoder = new TextEncoder();
const BASE = 'http://functions.test/demo/us-central1';
const REQUEST: ExecuteRequest = { prompt_id: 'kb', variables: { question: 'delivery?' }, document_ids: ['bakery'] };

const SOURCES_JSON =
  '[{"document_id": "bakery", "title": "Bakery handbook", "position": 4, "heading": "Handbook > Deliveries", ' +
  '"text": "Beyond 3 km we charge four pounds — per drop.", "score": 0.443}, ' +
  '{"document_id": "cli", "title": "Nimbus CLI", "position": 0, "heading": "", "text": "nimbus init", "score": 0.2}]';

const SOURCES: Source[] = [
  {
    document_id: 'bakery',
    title: 'Bakery handbook',
    position: 4,
    heading: 'Handbook > Deliveries',
    text: 'Beyond 3 km we charge four pounds — per drop.',
    score: 0.443,
  },
  { document_id: 'cli', title: 'Nimbus CLI', position: 0, heading: null, text: 'nimbus init', score: 0.2 },
];

const STREAM = [
  'event: start\ndata: {"execution_id": "ex1", "prompt_id": "kb", "model": "demo/local-model"}\n\n',
  `event: sources\ndata: ${SOURCES_JSON}\n\n`,
  'id: 1\ndata: {"content": "Four pounds [1].", "finish_reason": "stop"}\n\n',
  'event: end\ndata: {"execution_id": "ex1", "model": "demo/local-model", "finish_reason": "stop", "usage": null}\n\n',
  'data: [DONE]\n\n',
].join('');

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

async function run(chunks: Uint8Array[]) {
  const events: StreamEvent[] = [];
  const response = new Response(bodyOf(chunks), { headers: { 'Content-Type': 'text/event-stream' } });
  const result = await executePromptStream(REQUEST, {
    idToken: 'tok',
    baseUrl: BASE,
    fetchImpl: vi.fn(async () => response),
    onEvent: (e) => events.push(e),
  });
  return { result, events };
}

describe('event: sources', () => {
  it('comes out between start and the first content event, and stays in the result', async () => {
    const { result, events } = await run([encoder.encode(STREAM)]);
    expect(events.map((e) => e.type)).toEqual(['start', 'sources', 'content', 'end', 'done']);
    expect(events[1]).toEqual({ type: 'sources', sources: SOURCES });
    expect(result.sources).toEqual(SOURCES);
    expect(result.content).toBe('Four pounds [1].');
  });

  it('is the same when the stream is split at every byte offset (the dash is 3 bytes)', async () => {
    const bytes = encoder.encode(STREAM);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { result } = await run([bytes.slice(0, cut), bytes.slice(cut)]);
      expect(result.sources, `cut at ${cut}`).toEqual(SOURCES);
    }
  });

  it('keeps an empty list: the run named documents and none matched', async () => {
    const { result, events } = await run([encoder.encode(STREAM.replace(SOURCES_JSON, '[]'))]);
    expect(events[1]).toEqual({ type: 'sources', sources: [] });
    expect(result.sources).toEqual([]);
  });

  it('is absent from the result of a run without documents', async () => {
    const { result } = await run([encoder.encode(STREAM.replace(`event: sources\ndata: ${SOURCES_JSON}\n\n`, ''))]);
    expect(result.sources).toBeUndefined();
  });

  it('refuses sources that are not a list as a bad response', async () => {
    const error = await run([encoder.encode(STREAM.replace(SOURCES_JSON, '{"text": "x"}'))]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as ExecutionError).code).toBe('bad_response');
  });

  it('comes back from execute_prompt too', async () => {
    const body = `{"execution_id": "ex2", "model": "m", "content": "See [2].", "sources": ${SOURCES_JSON}}`;
    const result = await executePrompt(REQUEST, {
      idToken: 'tok',
      baseUrl: BASE,
      fetchImpl: vi.fn(async () => new Response(body, { headers: { 'Content-Type': 'application/json' } })),
    });
    expect(result.sources).toEqual(SOURCES);
  });
});

describe('sourcesOf', () => {
  it('keeps the numbering when an element is malformed', () => {
    const sources = sourcesOf([null, { title: 'T', text: 'x', score: 'high', position: 2 }]);
    expect(sources).toHaveLength(2);
    expect(sources![0]).toEqual({ document_id: '', title: '', position: null, heading: null, text: '', score: null });
    expect(sources![1]).toMatchObject({ title: 'T', text: 'x', score: null, position: 2 });
  });

  it('is null for anything but a list', () => {
    expect(sourcesOf(undefined)).toBeNull();
    expect(sourcesOf({})).toBeNull();
  });
});
