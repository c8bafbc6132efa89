/**
 * Side-by-side line diff of two prompt versions (issue 27): Myers' O((N+M)D) shortest edit
 * script, written here rather than taken from a package because a prompt is at most 50,000
 * characters and the app needs only lines. Past MAX_EDITS changes the texts count as wholly
 * replaced, which keeps the work and the memory bounded on any input.
 */

export type DiffKind = 'same' | 'changed' | 'removed' | 'added';

export interface DiffLine {
  /** 1-based line number in its text. */
  n: number;
  text: string;
}

/** One row of the side-by-side view: the left (older) line, the right (newer) line, or both. */
export interface DiffRow {
  kind: DiffKind;
  left: DiffLine | null;
  right: DiffLine | null;
}

type Op = { kind: 'same' | 'removed' | 'added'; a: number; b: number };

const MAX_EDITS = 1000;

export function splitLines(text: string): string[] {
  return text === '' ? [] : text.split(/\r\n|\r|\n/);
}

/** The edits turning a into b (their common ends already taken off), or null past MAX_EDITS. */
function myers(a: string[], b: string[]): Op[] | null {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDITS);
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!);
      let x = down ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(trace, offset, n, m, d);
    }
  }
  return null;
}

function backtrack(trace: Int32Array[], offset: number, n: number, m: number, dEnd: number): Op[] {
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = dEnd; d > 0; d--) {
    const v = trace[d]!;
    const k = x - y;
    const down = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!);
    const prevK = down ? k + 1 : k - 1;
    const prevX = v[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) ops.push({ kind: 'same', a: --x, b: --y });
    if (down) ops.push({ kind: 'added', a: x, b: --y });
    else ops.push({ kind: 'removed', a: --x, b: y });
  }
  while (x > 0 && y > 0) ops.push({ kind: 'same', a: --x, b: --y });
  return ops.reverse();
}

/** The rows of a side-by-side diff: removed and added runs that meet pair up as changed rows. */
export function diffLines(before: string, after: string): DiffRow[] {
  const a = splitLines(before);
  const b = splitLines(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const mid = myers(midA, midB) ?? [
    ...midA.map((_, i): Op => ({ kind: 'removed', a: i, b: 0 })),
    ...midB.map((_, j): Op => ({ kind: 'added', a: 0, b: j })),
  ];
  const ops: Op[] = [
    ...a.slice(0, start).map((_, i): Op => ({ kind: 'same', a: i, b: i })),
    ...mid.map((op) => ({ ...op, a: op.a + start, b: op.b + start })),
    ...a.slice(endA).map((_, i): Op => ({ kind: 'same', a: endA + i, b: endB + i })),
  ];
  const line = (lines: string[], i: number): DiffLine => ({ n: i + 1, text: lines[i]! });
  const rows: DiffRow[] = [];
  let i = 0;
  while (i < ops.length) {
    const op = ops[i]!;
    if (op.kind === 'same') {
      rows.push({ kind: 'same', left: line(a, op.a), right: line(b, op.b) });
      i++;
      continue;
    }
    const removed: number[] = [];
    const added: number[] = [];
    while (i < ops.length && ops[i]!.kind !== 'same') {
      const o = ops[i]!;
      if (o.kind === 'removed') removed.push(o.a);
      else added.push(o.b);
      i++;
    }
    for (let j = 0; j < Math.max(removed.length, added.length); j++) {
      const l = removed[j];
      const r = added[j];
      const kind: DiffKind = l !== undefined && r !== undefined ? 'changed' : l !== undefined ? 'removed' : 'added';
      rows.push({ kind, left: l === undefined ? null : line(a, l), right: r === undefined ? null : line(b, r) });
    }
  }
  return rows;
}

/** How many rows differ: 0 when the texts are the same line for line. */
export function changedRows(rows: DiffRow[]): number {
  return rows.filter((r) => r.kind !== 'same').length;
}
