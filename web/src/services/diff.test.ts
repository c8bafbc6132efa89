import { describe, expect, it } from 'vitest';
import { changedRows, diffLines, type DiffRow } from './diff';

/** A row as one short string: "=a", "-a", "+b", "~a>b". */
const show = (rows: DiffRow[]) =>
  rows.map((r) =>
    r.kind === 'same' ? `=${r.left!.text}` : r.kind === 'removed' ? `-${r.left!.text}` : r.kind === 'added' ? `+${r.right!.text}` : `~${r.left!.text}>${r.right!.text}`,
  );

/** Rebuilds both texts from the rows: every line of each side once, in order. */
function sides(rows: DiffRow[]): [string[], string[]] {
  return [rows.flatMap((r) => (r.left ? [r.left.text] : [])), rows.flatMap((r) => (r.right ? [r.right.text] : []))];
}

describe('diffLines', () => {
  it('marks nothing when the texts are equal', () => {
    const rows = diffLines('a\nb\nc', 'a\nb\nc');
    expect(show(rows)).toEqual(['=a', '=b', '=c']);
    expect(changedRows(rows)).toBe(0);
  });

  it('pairs a changed line side by side and keeps the lines around it', () => {
    expect(show(diffLines('Hello {{name}}.\nBye.', 'Hi {{name}}!\nBye.'))).toEqual(['~Hello {{name}}.>Hi {{name}}!', '=Bye.']);
  });

  it('shows an insertion and a deletion in the middle with the right line numbers', () => {
    const rows = diffLines('a\nb\nc\nd', 'a\nc\nx\nd');
    expect(show(rows)).toEqual(['=a', '-b', '=c', '+x', '=d']);
    const added = rows.find((r) => r.kind === 'added')!;
    expect([added.left, added.right?.n]).toEqual([null, 3]);
    expect(rows.find((r) => r.kind === 'removed')!.left?.n).toBe(2);
  });

  it('handles empty texts on either side', () => {
    expect(show(diffLines('', 'a\nb'))).toEqual(['+a', '+b']);
    expect(show(diffLines('a', ''))).toEqual(['-a']);
    expect(diffLines('', '')).toEqual([]);
  });

  it('finds the shortest edit: a moved block costs its lines, not the whole text', () => {
    const before = ['intro', 'one', 'two', 'three', 'outro'].join('\n');
    const after = ['intro', 'two', 'three', 'one', 'outro'].join('\n');
    expect(changedRows(diffLines(before, after))).toBe(2);
  });

  it('keeps every line of both texts, in order, on random edits', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let t = 0; t < 200; t++) {
      const a = Array.from({ length: rand(12) }, () => 'abcd'[rand(4)]!);
      const b = Array.from({ length: rand(12) }, () => 'abcd'[rand(4)]!);
      const rows = diffLines(a.join('\n'), b.join('\n'));
      const [left, right] = sides(rows);
      expect(left.join('\n')).toBe(a.join('\n'));
      expect(right.join('\n')).toBe(b.join('\n'));
      for (const r of rows) if (r.kind === 'same') expect(r.left!.text).toBe(r.right!.text);
    }
  });

  it('stays bounded on the largest texts that differ everywhere: past the edit limit they count as replaced', () => {
    // 20,000 one-character lines each, under the 50,000-character content limit: an unbounded
    // search would keep 40,000 rows of 80,000 counters.
    const a = 'x\n'.repeat(19_999) + 'x';
    const b = 'y\n'.repeat(19_999) + 'y';
    const rows = diffLines(a, b);
    expect(rows).toHaveLength(20_000);
    expect(rows.every((r) => r.kind === 'changed')).toBe(true);
  });
});
