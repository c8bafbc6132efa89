import { useEffect, useState } from 'react';

type CopyState = 'idle' | 'copied' | 'failed';

const LABEL: Record<CopyState, string> = { idle: 'Copy', copied: 'Copied', failed: 'Copy failed' };

/** Writes `getText()` to the clipboard; the label says for two seconds whether it worked. */
export function CopyButton({ getText, label, testId }: { getText: () => string; label: string; testId: string }) {
  const [state, setState] = useState<CopyState>('idle');

  useEffect(() => {
    if (state === 'idle') return;
    const timer = setTimeout(() => setState('idle'), 2000);
    return () => clearTimeout(timer);
  }, [state]);

  async function copy() {
    try {
      await navigator.clipboard.writeText(getText());
      setState('copied');
    } catch {
      setState('failed');
    }
  }

  return (
    <button
      type="button"
      className="btn btn-small btn-copy"
      aria-label={label}
      title={label}
      data-testid={testId}
      data-state={state}
      onClick={() => void copy()}
    >
      {LABEL[state]}
    </button>
  );
}
