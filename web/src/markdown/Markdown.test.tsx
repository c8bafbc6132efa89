// @vitest-environment jsdom
import { act, cleanup, fireEvent, render } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Markdown } from './Markdown';

afterEach(cleanup);

function html(text: string, streaming = false): HTMLElement {
  return render(
    <div data-testid="md">
      <Markdown text={text} streaming={streaming} />
    </div>,
  ).getByTestId('md');
}

describe('Markdown', () => {
  it('renders headings, lists, a fenced code block and a GFM table', () => {
    const el = html('# Title\n\n- one\n- two\n\n```py\nprint(1)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n');
    expect(el.querySelector('h1')?.textContent).toBe('Title');
    expect(el.querySelectorAll('li')).toHaveLength(2);
    expect(el.querySelector('pre code')?.textContent).toBe('print(1)\n');
    expect(el.querySelector('.md-table > table td')?.textContent).toBe('1');
  });

  it('renders no raw HTML and drops unsafe link targets', () => {
    const el = html('<script>alert(1)</script><img src=x onerror="alert(2)">\n\n[click](javascript:alert(3)) [ok](https://example.com)');
    expect(el.querySelector('script')).toBeNull();
    expect(el.querySelector('img')).toBeNull();
    const links = [...el.querySelectorAll('a')];
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['https://example.com']);
    expect(el.textContent).toContain('click');
    for (const a of links) expect(a.getAttribute('rel')).toBe('noopener noreferrer nofollow');
  });

  it('loads no images from the answer', () => {
    const el = html('![pixel](https://tracker.example/p.gif)');
    expect(el.querySelector('img')).toBeNull();
    expect(el.textContent).toContain('[image: pixel]');
  });

  it('closes an unfinished bold marker while streaming, not once the text is final', () => {
    expect(html('Some **bold', true).querySelector('strong')?.textContent).toBe('bold');
    cleanup();
    expect(html('Some **bold', false).querySelector('strong')).toBeNull();
  });

  it('copies the text of one code block', async () => {
    const writeText = vi.fn(async () => undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    const el = html('```\nfirst\n```\n\ntext\n\n```\nsecond\n```\n');
    const buttons = el.querySelectorAll('[data-testid="copy-code"]');
    expect(buttons).toHaveLength(2);
    await act(async () => {
      fireEvent.click(buttons[1]!);
    });
    expect(writeText).toHaveBeenCalledWith('second\n');
    expect(buttons[1]!.getAttribute('data-state')).toBe('copied');
  });
});
