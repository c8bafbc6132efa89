import { createContext, useContext, useEffect, useId, useMemo, useRef, useState, type ReactNode } from 'react';
import type { Source } from '../types';

interface CitationState {
  sources: Source[];
  /** Unique per answer, so two answers on a page (the live run, an opened run) never share ids. */
  idPrefix: string;
  /** Counts the lists shown: a passage's own state (folded or not) belongs to one list. */
  generation: number;
  active: { n: number; seq: number } | null;
  cite: (n: number) => void;
}

const CitationContext = createContext<CitationState | null>(null);

const sourceId = (prefix: string, n: number): string => `${prefix}-source-${n}`;

/**
 * The sources of one answer, for its citations and its Sources list. No sources: citations stay
 * text. `runKey` names the run: a new one starts with no passage picked and all folded.
 */
export function SourcesProvider({
  sources,
  runKey,
  children,
}: {
  sources: Source[] | null | undefined;
  runKey: string | null;
  children: ReactNode;
}) {
  const idPrefix = `run${useId().replace(/[^A-Za-z0-9_-]/g, '')}`;
  const [active, setActive] = useState<CitationState['active']>(null);
  const list = sources ?? null;
  // Keyed by the run, not by the list: the opened run's record is a new object at every snapshot.
  const [shown, setShown] = useState({ runKey, generation: 0 });
  if (shown.runKey !== runKey) {
    setShown({ runKey, generation: shown.generation + 1 });
    setActive(null);
  }
  const value = useMemo<CitationState | null>(
    () =>
      list === null
        ? null
        : {
            sources: list,
            idPrefix,
            generation: shown.generation,
            active,
            cite: (n) => setActive((a) => ({ n, seq: (a?.seq ?? 0) + 1 })),
          },
    [list, idPrefix, shown.generation, active],
  );
  return <CitationContext.Provider value={value}>{children}</CitationContext.Provider>;
}

/** `[n]` of an answer: a link to passage n when the run has one, else the text as the model wrote it. */
export function Cite({ n }: { n: number }) {
  const state = useContext(CitationContext);
  const source = state?.sources[n - 1];
  if (!state || !source) return <>[{n}]</>;
  const label = [source.title, source.heading].filter(Boolean).join(' — ');
  return (
    <a
      className="citation"
      href={`#${sourceId(state.idPrefix, n)}`}
      aria-describedby={sourceId(state.idPrefix, n)}
      title={label}
      data-testid="citation"
      data-citation={n}
      onClick={(event) => {
        event.preventDefault();
        state.cite(n);
      }}
    >
      [{n}]
    </a>
  );
}

/**
 * A passage's text for reading: the document's own hard line wraps joined, blank lines (paragraph
 * breaks) and lines that start a list item, heading, quote or table row kept.
 */
export function readableText(text: string): string {
  return text.replace(/([^\n])\n(?![\n\s\-*+#>|]|\d+[.)])/g, '$1 ');
}

function formatScore(score: number | null): string {
  return score === null ? '—' : score.toFixed(2);
}

function SourceItem({ source, n, state }: { source: Source; n: number; state: CitationState }) {
  const [expanded, setExpanded] = useState(false);
  const ref = useRef<HTMLLIElement>(null);
  const active = state.active?.n === n;
  const seq = active ? state.active!.seq : 0;
  useEffect(() => {
    if (seq === 0) return;
    setExpanded(true);
    ref.current?.scrollIntoView?.({ block: 'nearest', behavior: 'smooth' });
    ref.current?.focus({ preventScroll: true });
  }, [seq]);
  const long = source.text.length > 240;
  return (
    <li
      ref={ref}
      id={sourceId(state.idPrefix, n)}
      tabIndex={-1}
      className={`source${active ? ' active' : ''}`}
      data-testid="source"
      data-source={n}
      data-expanded={expanded || !long ? 'true' : 'false'}
      aria-current={active ? 'true' : undefined}
    >
      <div className="source-head">
        <span className="source-n">[{n}]</span>
        <span className="source-title" data-testid="source-title">
          {source.title || source.document_id}
        </span>
        <span className="spacer" />
        <span className="source-score muted small" title="Cosine similarity to the query">
          score {formatScore(source.score)}
        </span>
      </div>
      {source.heading && (
        <div className="source-heading muted small" data-testid="source-heading">
          {source.heading}
        </div>
      )}
      <p className={`source-text${expanded || !long ? '' : ' clamped'}`} data-testid="source-text">
        {readableText(source.text)}
      </p>
      {long && (
        <button type="button" className="link-button small" onClick={() => setExpanded((e) => !e)}>
          {expanded ? 'Show less' : 'Show the whole passage'}
        </button>
      )}
    </li>
  );
}

/** The passages an answer drew on, numbered as its citations; nothing when the run named no documents. */
export function SourcesList() {
  const state = useContext(CitationContext);
  if (!state) return null;
  return (
    <section className="sources" data-testid="sources" aria-label="Sources">
      <h4>
        Sources <span className="muted small">{state.sources.length}</span>
      </h4>
      {state.sources.length === 0 ? (
        <p className="muted small" data-testid="sources-empty">
          No passage of the attached documents matched; the answer drew on none.
        </p>
      ) : (
        <ol>
          {state.sources.map((source, i) => (
            <SourceItem key={`${state.generation}-${i}`} source={source} n={i + 1} state={state} />
          ))}
        </ol>
      )}
    </section>
  );
}
