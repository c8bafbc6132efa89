/** Words the pages build from numbers. */

/** A count with its noun in the right number: "1 passage", "0 passages", "1,200 passages". */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? noun : plural}`;
}
