import { describe, expect, it, vi } from 'vitest';
import { describeError, ExecutionError } from './errors';
import {
  contentTypeOf,
  deleteDocument,
  ingestUrl,
  titleOf,
  toDocument,
  uploadDocument,
  type UploadProgress,
} from './documents';

const BASE = 'http://functions.test/demo/us-central1';

type Answer = { status: number; body: string; headers?: Record<string, string> } | 'network-error' | 'hang';

/** Just enough of XMLHttpRequest: records the request, reports progress, then answers. */
class FakeXhr {
  static last: FakeXhr | null = null;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: unknown = null;
  status = 0;
  statusText = '';
  responseText = '';
  aborted = false;
  upload: { onprogress: ((e: ProgressEvent) => void) | null; onload: (() => void) | null } = {
    onprogress: null,
    onload: null,
  };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  private responseHeaders: Record<string, string> = {};

  constructor(private readonly answer: Answer) {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  getResponseHeader(name: string): string | null {
    return this.responseHeaders[name.toLowerCase()] ?? null;
  }
  send(body: unknown) {
    this.body = body;
    queueMicrotask(() => {
      if (this.aborted) return;
      this.upload.onprogress?.({ lengthComputable: true, loaded: 5, total: 10 } as ProgressEvent);
      this.upload.onprogress?.({ lengthComputable: true, loaded: 10, total: 10 } as ProgressEvent);
      this.upload.onload?.();
      if (this.answer === 'hang') return;
      if (this.answer === 'network-error') {
        this.onerror?.();
        return;
      }
      this.status = this.answer.status;
      this.responseText = this.answer.body;
      this.responseHeaders = Object.fromEntries(
        Object.entries(this.answer.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
      );
      this.onload?.();
    });
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
}

function upload(answer: Answer, file = new File(['# Hi\n\nText.'], 'notes.md'), extra = {}) {
  const progress: UploadProgress[] = [];
  const promise = uploadDocument(file, {
    idToken: 'tok',
    baseUrl: BASE,
    onProgress: (p) => progress.push(p),
    xhrFactory: () => new FakeXhr(answer) as unknown as XMLHttpRequest,
    ...extra,
  });
  return { promise, progress };
}

async function uploadError(answer: Answer): Promise<ExecutionError> {
  const error = await upload(answer).promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ExecutionError);
  return error as ExecutionError;
}

const errorBody = (code: string, message: string, details?: object) =>
  JSON.stringify({ error: { code, message, ...(details && { details }) } });

describe('uploadDocument', () => {
  it('posts the raw file with its type, title and file name, and reports progress then indexing', async () => {
    const ok = '{"document_id": "d1", "generation": 1, "passage_count": 3, "tokens": 40, "status": "ready"}';
    const file = new File(['# Hi\n\nText.'], 'Team notes.md');
    const { promise, progress } = upload({ status: 200, body: ok }, file);
    expect(await promise).toEqual({ document_id: 'd1', generation: 1, passage_count: 3, tokens: 40, status: 'ready' });
    const xhr = FakeXhr.last!;
    expect(xhr.method).toBe('POST');
    const url = new URL(xhr.url);
    expect(`${url.origin}${url.pathname}`).toBe(ingestUrl(BASE));
    expect(Object.fromEntries(url.searchParams)).toEqual({ title: 'Team notes', filename: 'Team notes.md' });
    expect(xhr.headers).toEqual({ Authorization: 'Bearer tok', 'Content-Type': 'text/markdown' });
    expect(xhr.body).toBe(file);
    expect(progress).toEqual([
      { phase: 'sending', fraction: 0.5 },
      { phase: 'sending', fraction: 1 },
      { phase: 'indexing' },
    ]);
  });

  // Each refusal of the README's table, as the server sends it, to the code and the words a person reads.
  it.each([
    [413, 'payload_too_large', {}, 'File too large', /5 MiB/],
    [415, 'unsupported_type', {}, 'Unsupported file type', /Markdown/],
    [422, 'invalid_document', { reason: 'empty' }, 'Unreadable document', /no text/],
    [422, 'invalid_document', { reason: 'binary' }, 'Unreadable document', /binary/],
    [422, 'invalid_document', { reason: 'corrupt_pdf' }, 'Unreadable document', /damaged/],
    [422, 'invalid_document', { reason: 'encrypted_pdf' }, 'Unreadable document', /encrypted/],
    [422, 'document_too_long', { reason: 'too_long' }, 'Document too long', /Split it/],
    [404, 'document_not_found', {}, 'Document not found', /not one of your documents/],
    [403, 'too_many_documents', {}, 'Too many documents', /delete one first/],
    [409, 'document_conflict', {}, 'The document changed meanwhile', /Try again/],
    [429, 'budget_exceeded', {}, 'Daily token budget used up', /Try again in 120 s/],
    [429, 'rate_limited', { reason: 'embedding_failed' }, 'Rate limited', /embedding provider.*120 s/],
    [502, 'upstream_error', { reason: 'embedding_failed' }, 'Indexing failed', /embedding provider failed/],
    [503, 'upstream_unavailable', { reason: 'embedding_failed' }, 'Indexing failed', /embedding provider failed/],
    [503, 'unavailable', {}, 'Service temporarily unavailable', /Nothing was changed/],
    [401, 'unauthenticated', {}, 'You are not signed in', /Sign in again/],
  ])('maps %i %s (%o) to "%s"', async (status, code, details, title, detail) => {
    const server = code === 'too_many_documents' ? 'You have 50 documents already: delete one first' : 'server text';
    const error = await uploadError({
      status,
      body: errorBody(code, server, details),
      headers: { 'Retry-After': '120' },
    });
    expect(error.code).toBe(code);
    expect(error.status).toBe(status);
    expect(error.retryAfter).toBe(120);
    const words = describeError(error, 'document');
    expect(words.title).toBe(title);
    expect(words.detail).toMatch(detail);
  });

  it('keeps the status when the body is not the JSON error shape', async () => {
    const error = await uploadError({ status: 502, body: '<html>Bad gateway</html>' });
    expect(error.code).toBe('http_502');
  });

  it('turns a dropped connection into network_error', async () => {
    const error = await uploadError('network-error');
    expect(error.code).toBe('network_error');
    expect(describeError(error, 'document').title).toBe('Network connection lost');
  });

  it('refuses a file over 5 MiB before sending a byte', async () => {
    FakeXhr.last = null;
    const big = new File([new Uint8Array(5 * 1024 * 1024 + 1)], 'big.txt');
    const error = await upload({ status: 200, body: '{}' }, big).promise.catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe('payload_too_large');
    expect(FakeXhr.last).toBeNull();
  });

  it('aborts the request on the signal and rejects with an AbortError', async () => {
    const controller = new AbortController();
    const { promise } = upload('hang', undefined, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 0));
    controller.abort();
    await expect(promise).rejects.toMatchObject({ name: 'AbortError' });
    expect(FakeXhr.last!.aborted).toBe(true);
  });
});

describe('deleteDocument', () => {
  it('sends DELETE with the id and the token, and returns the passages deleted', async () => {
    const fetchImpl = vi.fn(async () => new Response('{"document_id": "a b", "deleted": true, "passages_deleted": 7}'));
    expect(await deleteDocument('a b', { idToken: 'tok', baseUrl: BASE, fetchImpl })).toBe(7);
    const [url, init] = fetchImpl.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe(`${BASE}/ingest_document?document_id=a%20b`);
    expect(init.method).toBe('DELETE');
    expect(init.headers).toEqual({ Authorization: 'Bearer tok' });
  });

  it('rejects with document_not_found for a document that is not yours', async () => {
    const fetchImpl = vi.fn(async () => new Response(errorBody('document_not_found', 'no such document'), { status: 404 }));
    const error = await deleteDocument('x', { idToken: 'tok', baseUrl: BASE, fetchImpl }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(describeError(error as ExecutionError, 'document').title).toBe('Document not found');
  });
});

describe('file names', () => {
  it.each([
    ['notes.md', '', 'text/markdown'],
    ['README.MARKDOWN', '', 'text/markdown'],
    ['a.txt', 'text/plain', 'text/plain'],
    ['paper.pdf', 'application/pdf', 'application/pdf'],
    ['scan.png', 'image/png', 'image/png'],
    ['noext', '', 'application/octet-stream'],
  ])('sends %s (browser type "%s") as %s', (name, type, expected) => {
    expect(contentTypeOf({ name, type })).toBe(expected);
  });

  it('titles a document by its file name without the extension', () => {
    expect(titleOf('Staff handbook.md')).toBe('Staff handbook');
    expect(titleOf('.md')).toBe('.md');
    expect(titleOf(`${'x'.repeat(300)}.txt`)).toHaveLength(200);
  });
});

describe('toDocument', () => {
  it('uses the stored document_id, not the per-user Firestore id', () => {
    const doc = toDocument('handbook~alice', { owner_uid: 'alice', document_id: 'handbook' });
    expect(doc.id).toBe('handbook');
    expect(doc.title).toBe('handbook');
  });

  it('falls back to the Firestore id when no document_id is stored', () => {
    expect(toDocument('old-doc', { owner_uid: 'alice' }).id).toBe('old-doc');
  });
});
