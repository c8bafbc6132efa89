import { memo, useDeferredValue, useMemo, useRef, type ComponentProps } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';
import remarkGfm from 'remark-gfm';
import remend from 'remend';
import { CopyButton } from '../components/CopyButton';
import { EMPTY_SPLIT, splitBlocks, type BlockSplit } from './blocks';
import { remarkCitations } from './citations';
import { Cite } from './Sources';

function CodeBlock(props: ComponentProps<'pre'>) {
  const ref = useRef<HTMLPreElement>(null);
  const { children, className } = props;
  return (
    <div className="md-code">
      <CopyButton getText={() => ref.current?.textContent ?? ''} label="Copy code" testId="copy-code" />
      <pre ref={ref} className={className}>
        {children}
      </pre>
    </div>
  );
}

// Model output is untrusted. react-markdown renders no raw HTML (there is no rehype-raw here)
// and its default urlTransform drops javascript:, data: and other unsafe URLs. Links open in a
// new tab without the opener or a referrer; images are not loaded (a tracking pixel in an
// answer would tell a third party that it was read), their alt text is shown instead.
const COMPONENTS: Components = {
  pre: ({ node: _node, ...props }) => <CodeBlock {...props} />,
  table: ({ node: _node, ...props }) => (
    <div className="md-table" data-testid="md-table-scroll">
      <table {...props} />
    </div>
  ),
  a: ({ node: _node, href, children }) =>
    href ? (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow">
        {children}
      </a>
    ) : (
      <span>{children}</span>
    ),
  img: ({ alt }) => <span className="md-image">[image{alt ? `: ${alt}` : ''}]</span>,
  // Made only by remarkCitations (there is no raw HTML), from `[n]` in the text.
  cite: ({ node }) => <Cite n={Number(node?.properties?.dataCitation)} />,
};

const REMARK_PLUGINS = [remarkGfm, remarkCitations];

// Each block is its own box with `content-visibility: auto` (styles.css): the browser skips
// layout and paint of the blocks off screen, which on a long answer is most of them.
const Block = memo(function Block({ source }: { source: string }) {
  return (
    <div className="md-block">
      <ReactMarkdown remarkPlugins={REMARK_PLUGINS} components={COMPONENTS}>
        {source}
      </ReactMarkdown>
    </div>
  );
});

/**
 * Renders (possibly still growing) Markdown. Only the last block is parsed again as text
 * arrives, and rendering is deferred, so a burst of chunks costs React one render when it has
 * time, not one per chunk. While `streaming`, the last block's unclosed markers (`**bold`, an
 * open code fence, a half link) are closed by `remend` so it does not flicker as raw syntax.
 */
export function Markdown({ text, streaming = false }: { text: string; streaming?: boolean }) {
  const deferred = useDeferredValue(text);
  const splitRef = useRef<BlockSplit>(EMPTY_SPLIT);
  const blocks = useMemo(() => {
    splitRef.current = splitBlocks(deferred, splitRef.current);
    return splitRef.current.blocks;
  }, [deferred]);
  // The same elements while the deferred text has not moved on, so the urgent render of each
  // chunk does not even compare the (possibly thousand) blocks.
  return useMemo(
    () => (
      <>
        {blocks.map((block, i) => (
          <Block key={i} source={streaming && i === blocks.length - 1 ? remend(block) : block} />
        ))}
      </>
    ),
    [blocks, streaming],
  );
}
