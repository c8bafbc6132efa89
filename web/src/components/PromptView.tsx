import type { Prompt } from '../types';

export function PromptView({ prompt, isOwner, onEdit }: { prompt: Prompt; isOwner: boolean; onEdit: () => void }) {
  return (
    <section className="card prompt-view" data-testid="prompt-view" data-prompt-id={prompt.id}>
      <header className="panel-header">
        <h2 data-testid="prompt-title">{prompt.title}</h2>
        {prompt.public && <span className="badge badge-public">public</span>}
        {!isOwner && <span className="badge">shared with you</span>}
        <span className="spacer" />
        {isOwner && (
          <button type="button" className="btn btn-small" onClick={onEdit} data-testid="edit-prompt-button">
            Edit
          </button>
        )}
      </header>
      {prompt.system_prompt && (
        <pre className="template system" title="System prompt">
          {prompt.system_prompt}
        </pre>
      )}
      <pre className="template" data-testid="prompt-content">
        {prompt.content}
      </pre>
    </section>
  );
}
