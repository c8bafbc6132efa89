import type { Prompt } from '../types';

interface Props {
  prompts: Prompt[];
  uid: string;
  selectedId: string | null;
  onSelect: (id: string) => void;
  onNew: () => void;
}

function Section({ title, prompts, selectedId, onSelect, testId }: {
  title: string;
  prompts: Prompt[];
  selectedId: string | null;
  onSelect: (id: string) => void;
  testId: string;
}) {
  return (
    <section className="prompt-section" data-testid={testId}>
      <h3>{title}</h3>
      {prompts.length === 0 ? (
        <p className="muted small">None yet.</p>
      ) : (
        <ul>
          {prompts.map((p) => (
            <li key={p.id}>
              <button
                type="button"
                className={`prompt-item${p.id === selectedId ? ' selected' : ''}`}
                onClick={() => onSelect(p.id)}
                data-testid="prompt-item"
                data-prompt-id={p.id}
              >
                <span className="prompt-item-title">{p.title}</span>
                {p.public && <span className="badge badge-public">public</span>}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function PromptList({ prompts, uid, selectedId, onSelect, onNew }: Props) {
  const mine = prompts.filter((p) => p.owner_uid === uid);
  const others = prompts.filter((p) => p.owner_uid !== uid);
  return (
    <nav className="sidebar" id="prompt-list" aria-label="Prompts">
      <button type="button" className="btn btn-primary btn-block" onClick={onNew} data-testid="new-prompt-button">
        + New prompt
      </button>
      <Section title="My prompts" prompts={mine} selectedId={selectedId} onSelect={onSelect} testId="my-prompts" />
      <Section title="Public" prompts={others} selectedId={selectedId} onSelect={onSelect} testId="public-prompts" />
    </nav>
  );
}
