// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, renderHook, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_STATE } from '../hooks/executionState';
import type { Upload, Uploads } from '../hooks/useDocuments';
import { useStreamingExecution } from '../hooks/useStreamingExecution';
import { ExecutionError } from '../services/errors';
import type { ExecutionRecord, KbDocument, Prompt, PromptDraft, Source } from '../types';
import { checkKnowledge, DocumentPicker } from './DocumentPicker';
import { DocumentsPage } from './DocumentsPage';
import { ExecutionHistory } from './ExecutionHistory';
import { PromptView } from './PromptView';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const SOURCES: Source[] = [
  { document_id: 'd1', title: 'Handbook', position: 1, heading: 'Deliveries', text: 'Four pounds a drop.', score: 0.44 },
];

describe('sources through a streamed run', () => {
  it('arrive before the first token and stay to the end', async () => {
    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })),
    );
    const { result } = renderHook(() => useStreamingExecution());
    let done!: Promise<void>;
    act(() => {
      done = result.current.execute({ prompt_id: 'p', document_ids: ['d1'] }, { idToken: 't', baseUrl: 'http://f.test' });
    });
    controller.enqueue(encoder.encode('event: start\ndata: {"execution_id": "ex1", "prompt_id": "p", "model": "m"}\n\n'));
    controller.enqueue(encoder.encode(`event: sources\ndata: ${JSON.stringify(SOURCES)}\n\n`));
    await waitFor(() => expect(result.current.sources).toEqual(SOURCES));
    expect(result.current.phase).toBe('connecting');
    expect(result.current.content).toBe('');

    controller.enqueue(encoder.encode('data: {"content": "Four pounds [1].", "finish_reason": "stop"}\n\n'));
    controller.enqueue(encoder.encode('event: end\ndata: {"execution_id": "ex1", "model": "m", "usage": null}\n\ndata: [DONE]\n\n'));
    controller.close();
    await act(() => done);
    expect(result.current.phase).toBe('completed');
    expect(result.current.sources).toEqual(SOURCES);
  });
});

describe('the streaming panel', () => {
  it('lists the sources while it waits for the first token, then links the citations to them', () => {
    const props = { onCancel: () => undefined, record: null };
    const { rerender } = render(
      <StreamingExecutionPanel state={{ ...IDLE_STATE, phase: 'connecting', sources: SOURCES }} {...props} />,
    );
    expect(screen.getByTestId('spinner')).toBeTruthy();
    expect(screen.getByTestId('source-title').textContent).toBe('Handbook');
    rerender(
      <StreamingExecutionPanel
        state={{ ...IDLE_STATE, phase: 'completed', content: 'Four pounds [1].', sources: SOURCES }}
        {...props}
      />,
    );
    fireEvent.click(screen.getByTestId('citation'));
    expect(screen.getByTestId('source').getAttribute('aria-current')).toBe('true');
  });

  it('shows no sources section for a run without documents', () => {
    render(<StreamingExecutionPanel state={{ ...IDLE_STATE, phase: 'completed', content: 'x [1]' }} onCancel={() => undefined} record={null} />);
    expect(screen.queryByTestId('sources')).toBeNull();
    expect(screen.queryByTestId('citation')).toBeNull();
  });
});

describe('the opened run', () => {
  it('shows the record’s sources and links its citations', () => {
    const record: ExecutionRecord = {
      id: 'ex1', prompt_id: 'p', model: 'm', status: 'completed', output: 'See [1].', reasoning: '', variables: {},
      finish_reason: 'stop', error_code: null, error_message: null, usage: null, ttft_ms: null, duration_ms: null,
      createdAtMs: 1, finishedAtMs: 2, sources: SOURCES,
    };
    render(<ExecutionHistory rows={[record]} error={null} onRerun={() => undefined} />);
    fireEvent.click(screen.getByTestId('history-open'));
    const detail = screen.getByTestId('execution-detail');
    expect(within(detail).getByTestId('source-text').textContent).toBe('Four pounds a drop.');
    expect(within(detail).getByTestId('citation').textContent).toBe('[1]');
  });
});

const doc = (id: string, status: string, extra: Partial<KbDocument> = {}): KbDocument => ({
  id, owner_uid: 'u', title: `Title ${id}`, filename: `${id}.md`, content_type: 'text/markdown', size: 2048,
  status, error_message: null, generation: 1, passage_count: 7, createdAtMs: 1, updatedAtMs: 2, ...extra,
});

function uploads(items: Upload[]): Uploads {
  return { items, add: vi.fn(), dismiss: vi.fn() };
}

describe('the documents page', () => {
  it('badges each status, with the error’s message', () => {
    const rows = [doc('a', 'indexing'), doc('b', 'ready'), doc('c', 'error', { error_message: 'The PDF is encrypted' })];
    render(<DocumentsPage documents={{ rows, error: null }} uploads={uploads([])} getIdToken={async () => 't'} />);
    const badges = screen.getAllByTestId('document-status').map((b) => b.textContent);
    expect(badges).toEqual(['indexing', 'ready · 7 passages', 'error']);
    expect(screen.getByTestId('document-error').textContent).toContain('The PDF is encrypted');
  });

  it('shows an upload’s progress, then an indeterminate bar while indexing, then its refusal in words', () => {
    const base = { key: 1, filename: 'big.md', size: 10, result: null, error: null };
    const { rerender } = render(
      <DocumentsPage
        documents={{ rows: [], error: null }}
        uploads={uploads([{ ...base, progress: { phase: 'sending', fraction: 0.4 } }])}
        getIdToken={async () => 't'}
      />,
    );
    expect(screen.getByTestId('upload').textContent).toContain('Uploading 40 %');
    expect(screen.getByRole('progressbar').getAttribute('value')).toBe('0.4');
    rerender(
      <DocumentsPage
        documents={{ rows: [], error: null }}
        uploads={uploads([{ ...base, progress: { phase: 'indexing' } }])}
        getIdToken={async () => 't'}
      />,
    );
    expect(screen.getByTestId('upload-indexing').hasAttribute('value')).toBe(false);
    const error = new ExecutionError('document_too_long', 'The text is longer than 2000000 characters', { status: 422 });
    rerender(
      <DocumentsPage
        documents={{ rows: [], error: null }}
        uploads={uploads([{ ...base, progress: null, error }])}
        getIdToken={async () => 't'}
      />,
    );
    expect(screen.getByTestId('upload-error-title').textContent).toBe('Document too long');
  });

  it('lets a refused new document be dismissed at once, saying nothing of it was kept; a failed re-index asks first', async () => {
    const fetchMock = vi.fn(async () => new Response('{"deleted": true, "passages_deleted": 0}'));
    vi.stubGlobal('fetch', fetchMock);
    const refused = doc('r', 'error', { generation: 0, passage_count: 0, error_message: 'Unsupported type image/png' });
    const reindexed = doc('k', 'error', { generation: 2, error_message: 'The embedding provider failed' });
    render(<DocumentsPage documents={{ rows: [refused, reindexed], error: null }} uploads={uploads([])} getIdToken={async () => 't'} />);
    const [r, k] = screen.getAllByTestId('document-row');
    expect(within(r!).getByTestId('document-refused-note').textContent).toBe('Nothing of it was kept; it stays listed until you dismiss it.');
    expect(within(r!).queryByTestId('document-delete-button')).toBeNull();
    expect(within(k!).queryByTestId('document-dismiss-button')).toBeNull();
    fireEvent.click(within(r!).getByTestId('document-dismiss-button'));
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toMatch(/\?document_id=r$/);
    expect(init.method).toBe('DELETE');
  });

  it('dismisses the server’s record of a refused upload with the upload’s own ✕', async () => {
    const fetchMock = vi.fn(async () => new Response('{"deleted": true, "passages_deleted": 0}'));
    vi.stubGlobal('fetch', fetchMock);
    const error = new ExecutionError('unsupported_type', 'Unsupported type', {
      status: 415,
      details: { reason: 'unsupported_type', document_id: 'r' },
    });
    const list = uploads([{ key: 7, filename: 'photo.png', size: 12, progress: null, result: null, error }]);
    const refused = doc('r', 'error', { generation: 0, error_message: 'Unsupported type' });
    render(<DocumentsPage documents={{ rows: [refused], error: null }} uploads={list} getIdToken={async () => 't'} />);
    fireEvent.click(screen.getByLabelText('Dismiss photo.png'));
    expect(list.dismiss).toHaveBeenCalledWith(7);
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    expect((fetchMock.mock.calls[0] as unknown as [string])[0]).toMatch(/\?document_id=r$/);
  });

  it('deletes through the backend only after a confirmation', async () => {
    const fetchMock = vi.fn(async () => new Response('{"deleted": true, "passages_deleted": 7}'));
    vi.stubGlobal('fetch', fetchMock);
    render(<DocumentsPage documents={{ rows: [doc('a', 'ready')], error: null }} uploads={uploads([])} getIdToken={async () => 't'} />);
    fireEvent.click(screen.getByTestId('document-delete-button'));
    expect(fetchMock).not.toHaveBeenCalled();
    fireEvent.click(screen.getByTestId('document-delete-confirm-button'));
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    expect((fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1].method).toBe('DELETE');
  });
});

const DRAFT: PromptDraft = {
  title: 't', content: '{{q}}', system_prompt: '', public: false,
  variables: [{ name: 'q', required: true, default: null }],
};

describe('the document picker', () => {
  it('offers the ready documents and keeps an attached one that is gone, to detach it', () => {
    const onChange = vi.fn();
    render(
      <DocumentPicker
        draft={{ ...DRAFT, document_ids: ['gone'] }}
        documents={[doc('a', 'ready'), doc('b', 'indexing')]}
        onChange={onChange}
      />,
    );
    const boxes = screen.getAllByTestId('attach-document');
    expect(boxes.map((b) => b.getAttribute('data-document-id'))).toEqual(['a', 'gone']);
    fireEvent.click(boxes[0]!);
    expect(onChange).toHaveBeenLastCalledWith({ document_ids: ['gone', 'a'] });
    fireEvent.click(boxes[1]!);
    expect(onChange).toHaveBeenLastCalledWith({ document_ids: [] });
  });

  it('keeps a detached missing document listed, unchecked, so it can be attached again', () => {
    const props = { documents: [doc('a', 'ready')], onChange: vi.fn() };
    const { rerender } = render(<DocumentPicker draft={{ ...DRAFT, document_ids: ['gone'] }} {...props} />);
    rerender(<DocumentPicker draft={{ ...DRAFT, document_ids: [] }} {...props} />);
    const gone = screen.getAllByTestId('attach-document')[1] as HTMLInputElement;
    expect(gone.getAttribute('data-document-id')).toBe('gone');
    expect(gone.checked).toBe(false);
  });

  it('checks the limits the rules hold', () => {
    const validateKnowledge = (d: PromptDraft) => checkKnowledge(d).map((p) => p.message).join('\n') || null;
    expect(validateKnowledge({ ...DRAFT, document_ids: ['a'], top_k: 4, retrieval_query_variable: 'q' })).toBeNull();
    expect(validateKnowledge({ ...DRAFT, document_ids: Array.from({ length: 11 }, (_, i) => `d${i}`) })).toMatch(/at most 10/);
    expect(validateKnowledge({ ...DRAFT, document_ids: ['a'], top_k: 11 })).toMatch(/1–10/);
    expect(validateKnowledge({ ...DRAFT, document_ids: ['a'], retrieval_query_variable: 'nope' })).toMatch(/not declared/);
  });
});

describe('a prompt that draws on documents', () => {
  const PROMPT: Prompt = {
    id: 'p1', owner_uid: 'u', title: 'T', content: '{{q}}', variables: [], public: false, updatedAtMs: null,
    document_ids: ['a', 'gone'], top_k: 1,
  };
  const view = (isOwner: boolean, documents: KbDocument[] | null) =>
    render(<PromptView prompt={PROMPT} isOwner={isOwner} onEdit={() => undefined} onDelete={async () => undefined} documents={documents} />);

  it('names a document its owner deleted as such, its id in small print, and counts one passage in the singular', () => {
    view(true, [doc('a', 'ready')]);
    expect(screen.getByTestId('prompt-documents').textContent).toBe('Draws on Title a, deleted document gone · 1 passage');
    expect(screen.getByTestId('deleted-document').querySelector('small')?.textContent).toBe('gone');
  });

  it('does not call a document deleted while the list loads, or on another user’s prompt', () => {
    view(true, null);
    expect(screen.queryByTestId('deleted-document')).toBeNull();
    cleanup();
    view(false, [doc('a', 'ready')]);
    expect(screen.queryByTestId('deleted-document')).toBeNull();
    expect(screen.getAllByTestId('unknown-document').map((e) => e.textContent)).toEqual(['document gone']);
  });

  it('says "deleted document" in the editor too, and counts passages by number', () => {
    render(
      <DocumentPicker
        draft={{ ...DRAFT, document_ids: ['gone'] }}
        documents={[doc('a', 'ready', { passage_count: 1 }), doc('b', 'ready', { passage_count: 2 })]}
        onChange={() => undefined}
      />,
    );
    expect(screen.getByTestId('deleted-document').textContent).toBe('deleted document gone');
    expect(screen.getByTestId('document-picker').textContent).toContain('Title a1 passage');
    expect(screen.getByTestId('document-picker').textContent).toContain('Title b2 passages');
  });

  it('counts one passage in the singular on the documents page', () => {
    render(<DocumentsPage documents={{ rows: [doc('a', 'ready', { passage_count: 1 })], error: null }} uploads={uploads([])} getIdToken={async () => 't'} />);
    expect(screen.getByTestId('document-status').textContent).toBe('ready · 1 passage');
  });
});
