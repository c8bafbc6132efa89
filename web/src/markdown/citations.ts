/**
 * A remark plugin that turns `[1]`, `[2]` (and `[1, 3]`) in an answer's text into `<cite>`
 * elements, which `Markdown` renders as links to the passages of the run's sources.
 *
 * Only text nodes are touched: code, inline code and the text of a link stay as written. A
 * number with no passage behind it is rendered as the plain text it was (see `Cite`).
 */

interface Node {
  type: string;
  value?: string;
  children?: Node[];
  data?: Record<string, unknown>;
}

const CITATION = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
// Text inside these is left alone: a citation link inside a link is a nested link.
const SKIP = new Set(['link', 'linkReference', 'inlineCode', 'code', 'definition', 'html']);

function citeNode(n: number): Node {
  return { type: 'text', value: `[${n}]`, data: { hName: 'cite', hProperties: { dataCitation: n } } };
}

/** The pieces of one text: plain text and citation nodes, in order; null when there is no citation. */
export function splitCitations(value: string): Node[] | null {
  CITATION.lastIndex = 0;
  if (!CITATION.test(value)) return null;
  CITATION.lastIndex = 0;
  const out: Node[] = [];
  let at = 0;
  for (let m = CITATION.exec(value); m !== null; m = CITATION.exec(value)) {
    if (m.index > at) out.push({ type: 'text', value: value.slice(at, m.index) });
    for (const part of m[1]!.split(',')) out.push(citeNode(Number(part.trim())));
    at = m.index + m[0].length;
  }
  if (at < value.length) out.push({ type: 'text', value: value.slice(at) });
  return out;
}

function walk(node: Node): void {
  const children = node.children;
  if (!children || SKIP.has(node.type)) return;
  const next: Node[] = [];
  for (const child of children) {
    const pieces = child.type === 'text' && child.data === undefined ? splitCitations(child.value ?? '') : null;
    if (pieces) next.push(...pieces);
    else {
      walk(child);
      next.push(child);
    }
  }
  node.children = next;
}

/** The plugin (`remarkPlugins={[remarkCitations]}`). */
export function remarkCitations() {
  return (tree: Node) => walk(tree);
}
