import { Fragment } from 'react';

/** Says the answers come from the local demo models, and names them. */
export function DemoModeNote({ models }: { models: readonly string[] }) {
  return (
    <div className="alert alert-warning" role="note" data-testid="demo-mode-note">
      {/* One flex item: in the alert's wrapping flex row, each model would be an item of its own and
          a line could start with its comma. In one run of text the comma stays after its model. */}
      <span>
        Demo mode: no OpenRouter key is set, so answers come from local demo models, not from a real LLM:{' '}
        {models.map((m, i) => (
          <Fragment key={m}>
            <code>{m}</code>
            {i < models.length - 1 ? ', ' : '.'}
          </Fragment>
        ))}
      </span>
    </div>
  );
}
