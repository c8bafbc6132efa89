import { describe, expect, it } from 'vitest';
import { splitBlocks } from './blocks';

const DOC = [
  '# Title\n\n',
  'A paragraph with **bold**.\n\n',
  '```ts\nconst a = 1;\n\nconst b = 2;\n```\n\n',
  '| a | b |\n|---|---|\n| 1 | 2 |\n\n',
  '- one\n- two\n',
].join('');

describe('splitBlocks', () => {
  it('cuts a document into blocks that join back to it, a fenced block with a blank line staying whole', () => {
    const { blocks } = splitBlocks(DOC);
    expect(blocks.join('')).toBe(DOC);
    expect(blocks.some((b) => b.startsWith('```ts') && b.includes('const b = 2;'))).toBe(true);
    expect(blocks.filter((b) => b.trim() !== '').length).toBe(5);
  });

  it('gives the same blocks when the text arrives one character at a time', () => {
    let split = splitBlocks('');
    for (let i = 1; i <= DOC.length; i++) split = splitBlocks(DOC.slice(0, i), split);
    expect(split.blocks).toEqual(splitBlocks(DOC).blocks);
  });

  it('keeps the very strings of finished blocks while the stream grows', () => {
    const first = splitBlocks(DOC.slice(0, 60));
    const next = splitBlocks(DOC.slice(0, 80), first);
    expect(next.blocks[0]).toBe(first.blocks[0]);
    expect(next.blocks.join('')).toBe(DOC.slice(0, 80));
  });

  it('starts again when the text is not a continuation', () => {
    const first = splitBlocks(DOC);
    expect(splitBlocks('Other text.\n\nMore.', first).blocks.join('')).toBe('Other text.\n\nMore.');
  });

  it('reads CRLF as LF', () => {
    expect(splitBlocks('a\r\n\r\nb').blocks.join('')).toBe('a\n\nb');
  });
});
