// @vitest-environment jsdom
import { cleanup, fireEvent, render } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Source } from '../types';
import { splitCitations } from './citations';
import { Markdown } from './Markdown';
import { readableText, SourcesList, SourcesProvider } from './Sources';

afterEach(cleanup);

const source = (n: number, text = `Passage ${n} text.`): Source => ({
  document_id: `doc${n}`,
  title: `Doc ${n}`,
  position: n,
  heading: `Doc ${n} > Part`,
  text,
  score: 0.5 - n / 100,
});

function answer(text: string, sources: Source[] | null | undefined, streaming = false) {
  const view = render(
    <SourcesProvider sources={sources} runKey="ex1">
      <div data-testid="md">
        <Markdown text={text} streaming={streaming} />
      </div>
      <SourcesList />
    </SourcesProvider>,
  );
  return { el: view.getByTestId('md'), view };
}

const citations = (el: HTMLElement) =>
  [...el.querySelectorAll('[data-testid="citation"]')].map((a) => a.getAttribute('data-citation'));

describe('citations', () => {
  it('turns [n] into a link to passage n, in paragraphs, lists, headings and tables', () => {
    const { el } = answer('Four pounds [1].\n\n- per drop [2]\n\n## Why [1]\n\n| a |\n|---|\n| b [2] |\n', [source(1), source(2)]);
    expect(citations(el)).toEqual(['1', '2', '1', '2']);
    const link = el.querySelector('a.citation')!;
    expect(link.textContent).toBe('[1]');
    expect(link.getAttribute('href')).toMatch(/^#run.*-source-1$/);
    expect(el.textContent).toContain('Four pounds [1].');
  });

  it('splits [1, 2] into one link per passage', () => {
    const { el } = answer('Both [1, 2] agree.', [source(1), source(2)]);
    expect(citations(el)).toEqual(['1', '2']);
  });

  it('leaves a number with no passage, code and link text as written', () => {
    const { el } = answer('No such [3]. `arr[1]` and [see [1]](https://example.com)\n\n```\nx[1]\n```\n', [source(1)]);
    expect(citations(el)).toEqual([]);
    expect(el.textContent).toContain('No such [3].');
    expect(el.querySelector('code')?.textContent).toBe('arr[1]');
    expect(el.querySelector('pre')?.textContent).toContain('x[1]');
  });

  it('stays plain text in an answer without sources (a run without documents)', () => {
    const { el } = answer('Footnote style [1].', undefined);
    expect(citations(el)).toEqual([]);
    expect(el.textContent).toBe('Footnote style [1].');
  });

  it('renders no HTML from the model around a citation', () => {
    const { el } = answer('<img src=x onerror="alert(1)">[1]<script>alert(2)</script>', [source(1)]);
    expect(el.querySelector('img, script')).toBeNull();
    expect(citations(el)).toEqual(['1']);
  });

  it('links while the answer streams too', () => {
    const { el } = answer('Partial answer [1', [source(1)], true);
    expect(citations(el)).toEqual([]);
    cleanup();
    const again = answer('Partial answer [1] and', [source(1)], true);
    expect(citations(again.el)).toEqual(['1']);
  });
});

describe('the sources list', () => {
  it('shows each passage: number, title, heading, text and score', () => {
    const { view } = answer('x', [source(1), source(2)]);
    const items = view.getAllByTestId('source');
    expect(items.map((li) => li.getAttribute('data-source'))).toEqual(['1', '2']);
    expect(items[0]!.textContent).toContain('[1]');
    expect(view.getAllByTestId('source-title')[0]!.textContent).toBe('Doc 1');
    expect(view.getAllByTestId('source-heading')[0]!.textContent).toBe('Doc 1 > Part');
    expect(view.getAllByTestId('source-text')[1]!.textContent).toBe('Passage 2 text.');
    expect(items[0]!.textContent).toContain('score 0.49');
  });

  it('says so when the documents gave no passage', () => {
    const { view } = answer('x', []);
    expect(view.getByTestId('sources-empty')).toBeTruthy();
  });

  it('is absent for a run that named no documents', () => {
    const { view } = answer('x', null);
    expect(view.queryByTestId('sources')).toBeNull();
  });

  it('reveals the cited passage when its citation is clicked', () => {
    const long = 'A long passage. '.repeat(30);
    const { el, view } = answer('See [2].', [source(1), source(2, long)]);
    const item = () => view.getAllByTestId('source')[1]!;
    expect(item().getAttribute('data-expanded')).toBe('false');
    expect(view.getAllByTestId('source-text')[1]!.className).toContain('clamped');
    fireEvent.click(el.querySelector('a.citation')!);
    expect(item().getAttribute('aria-current')).toBe('true');
    expect(item().getAttribute('data-expanded')).toBe('true');
    expect(view.getAllByTestId('source-text')[1]!.className).not.toContain('clamped');
    expect(document.activeElement).toBe(item());
    expect(el.querySelector('a.citation')!.getAttribute('href')).toBe(`#${item().id}`);
  });
});

describe('a new run', () => {
  it('starts with no passage picked and every passage folded; a new snapshot of the same run keeps them', () => {
    const long = 'A long passage. '.repeat(30);
    const tree = (sources: Source[], runKey: string) => (
      <SourcesProvider sources={sources} runKey={runKey}>
        <Markdown text="See [1]." />
        <SourcesList />
      </SourcesProvider>
    );
    const view = render(tree([source(1, long)], 'ex1'));
    fireEvent.click(view.getByTestId('citation'));
    expect(view.getByTestId('source').getAttribute('data-expanded')).toBe('true');
    // The same run's record again (a new snapshot): the pick stays.
    view.rerender(tree([source(1, long)], 'ex1'));
    expect(view.getByTestId('source').getAttribute('aria-current')).toBe('true');
    view.rerender(tree([source(1, long)], 'ex2'));
    expect(view.getByTestId('source').getAttribute('aria-current')).toBeNull();
    expect(view.getByTestId('source').getAttribute('data-expanded')).toBe('false');
  });
});

describe('readableText', () => {
  it('joins hard-wrapped lines and keeps paragraphs and list items', () => {
    expect(readableText('We deliver\nfor free.\n\n- one\n- two\n1. three')).toBe('We deliver for free.\n\n- one\n- two\n1. three');
  });
});

describe('splitCitations', () => {
  it('is null for text without a citation', () => {
    expect(splitCitations('no citations [a] here')).toBeNull();
  });

  it('keeps the text around the citations', () => {
    const pieces = splitCitations('a [1] b [2,3]')!;
    expect(pieces.map((p) => p.value)).toEqual(['a ', '[1]', ' b ', '[2]', '[3]']);
  });
});
