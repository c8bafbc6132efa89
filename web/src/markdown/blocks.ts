/**
 * Splits Markdown into top-level blocks (marked's lexer) so that a streamed answer re-parses only
 * its last block: every block before it is finished and keeps its string, so its memoised render
 * is reused. The same idea as streamdown's `parseMarkdownIntoBlocks`.
 */
import { Lexer } from 'marked';

export interface BlockSplit {
  text: string;
  blocks: string[];
}

export const EMPTY_SPLIT: BlockSplit = { text: '', blocks: [] };

function lexBlocks(text: string): string[] {
  const raws = Lexer.lex(text, { gfm: true })
    .map((token) => token.raw)
    .filter((raw) => raw !== '');
  // The lexer's raw pieces add up to its input; if a version ever stops doing so, one block
  // is slower but still right.
  return raws.join('') === text ? raws : [text];
}

/**
 * The blocks of `text`. When `text` extends `previous.text` (a stream growing), only the text
 * from the start of the previous last block on is lexed again; earlier blocks cannot change.
 */
export function splitBlocks(text: string, previous: BlockSplit = EMPTY_SPLIT): BlockSplit {
  const normalised = text.replace(/\r\n?/g, '\n');
  if (normalised === '') return EMPTY_SPLIT;
  if (previous.blocks.length > 1 && normalised.startsWith(previous.text)) {
    const stable = previous.blocks.slice(0, -1);
    const offset = stable.reduce((n, b) => n + b.length, 0);
    return { text: normalised, blocks: [...stable, ...lexBlocks(normalised.slice(offset))] };
  }
  return { text: normalised, blocks: lexBlocks(normalised) };
}
