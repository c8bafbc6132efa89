import { signOut, type User } from 'firebase/auth';
import { useEffect, useState } from 'react';
import { DocumentsPage } from './components/DocumentsPage';
import { ExecutionHistory } from './components/ExecutionHistory';
import { EMPTY_DRAFT, PromptEditor } from './components/PromptEditor';
import { PromptExecutionForm, type RerunRequest } from './components/PromptExecutionForm';
import { PromptList } from './components/PromptList';
import { PromptVersions } from './components/PromptVersions';
import { PromptView } from './components/PromptView';
import { SignIn } from './components/SignIn';
import { auth, db } from './firebase';
import { useAuth } from './hooks/useAuth';
import { useDocuments, useUploads } from './hooks/useDocuments';
import { useComparisons } from './hooks/useComparisons';
import { useExecutions } from './hooks/useExecutions';
import { useVersions } from './hooks/useVersions';
import { createComparison, markWinner, preferredModelWrites } from './services/comparisons';
import { deletePrompt, watchPrompts } from './services/prompts';
import { createPrompt, LATEST, updatePrompt, type RunTarget } from './services/versions';
import type { Prompt, PromptDraft } from './types';

// An edit remembers the version it started from: a save made on top of another one since is refused.
type Mode = { kind: 'view' } | { kind: 'new' } | { kind: 'edit'; id: string; version: number | null } | { kind: 'documents' };

function draftOf(p: Prompt): PromptDraft {
  return {
    title: p.title,
    content: p.content,
    system_prompt: p.system_prompt ?? '',
    variables: p.variables,
    public: p.public,
    document_ids: p.document_ids ?? [],
    top_k: p.top_k ?? null,
    retrieval_query_variable: p.retrieval_query_variable ?? null,
    fallback_models: p.fallback_models ?? [],
  };
}

/** One prompt: the form and the history share one live listener on the user's runs of it. */
function PromptRunner({ prompt, user }: { prompt: Prompt; user: User }) {
  const executions = useExecutions(user.uid, prompt.id);
  const comparisons = useComparisons(user.uid, prompt.id);
  const [rerun, setRerun] = useState<RerunRequest | null>(null);
  const versions = useVersions(prompt);
  const [target, setTarget] = useState<RunTarget>(LATEST);
  const onWinner = (comparisonId: string, model: string, executionId: string) =>
    markWinner(db, { comparisonId, model, executionId, promptWrites: preferredModelWrites(prompt, user.uid, model) });
  return (
    <>
      <PromptVersions prompt={prompt} uid={user.uid} versions={versions} onRun={setTarget} />
      <PromptExecutionForm
        prompt={prompt}
        uid={user.uid}
        getIdToken={() => user.getIdToken()}
        records={executions.rows ?? []}
        rerun={rerun}
        comparisons={comparisons}
        openComparison={(models) => createComparison(db, user.uid, prompt.id, models)}
        onWinner={onWinner}
        versions={versions.rows ?? []}
        target={target}
        onTarget={setTarget}
      />
      <ExecutionHistory
        {...executions}
        comparisons={comparisons}
        onWinner={onWinner}
        onRerun={(r) => {
          setRerun((prev) => ({ variables: r.variables, model: r.model, seq: (prev?.seq ?? 0) + 1 }));
          // The same version again, when the record names it.
          if (r.prompt_version) setTarget(r.prompt_version === (prompt.version ?? 1) ? LATEST : { kind: 'version', version: r.prompt_version });
          window.scrollTo({ top: 0, behavior: 'smooth' });
        }}
      />
    </>
  );
}

function Workspace({ user }: { user: User }) {
  const [prompts, setPrompts] = useState<Prompt[]>([]);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [mode, setMode] = useState<Mode>({ kind: 'view' });
  const getIdToken = () => user.getIdToken();
  const documents = useDocuments(user.uid);
  const uploads = useUploads(getIdToken);

  useEffect(
    () =>
      watchPrompts(
        db,
        user.uid,
        (list) => {
          setPrompts(list);
          setLoadError(null);
        },
        (e) => setLoadError(e.message),
      ),
    [user.uid],
  );

  const selected = prompts.find((p) => p.id === selectedId) ?? null;

  async function save(draft: PromptDraft) {
    if (mode.kind === 'edit') {
      if (!selected) throw new Error('the prompt was deleted');
      await updatePrompt(db, selected, draft, user.uid, mode.version);
      setSelectedId(mode.id);
    } else {
      setSelectedId(await createPrompt(db, user.uid, draft));
    }
    setMode({ kind: 'view' });
  }

  return (
    <div className="layout">
      <header className="topbar">
        <span className="brand">
          <span className="logo" aria-hidden="true">
            ◆
          </span>{' '}
          RAG Prompt Library
        </span>
        <nav className="tabs" aria-label="Pages">
          <button
            type="button"
            className={`tab${mode.kind !== 'documents' ? ' active' : ''}`}
            aria-current={mode.kind !== 'documents' ? 'page' : undefined}
            onClick={() => setMode({ kind: 'view' })}
            data-testid="nav-prompts"
          >
            Prompts
          </button>
          <button
            type="button"
            className={`tab${mode.kind === 'documents' ? ' active' : ''}`}
            aria-current={mode.kind === 'documents' ? 'page' : undefined}
            onClick={() => setMode({ kind: 'documents' })}
            data-testid="nav-documents"
          >
            Documents
          </button>
        </nav>
        <span className="spacer" />
        <span className="muted small" data-testid="user-email">
          {user.email}
        </span>
        <button type="button" className="btn btn-small btn-ghost" onClick={() => void signOut(auth)} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <PromptList
        prompts={prompts}
        uid={user.uid}
        selectedId={selectedId}
        onSelect={(id) => {
          setSelectedId(id);
          setMode({ kind: 'view' });
        }}
        onNew={() => setMode({ kind: 'new' })}
      />
      <main className="main">
        {loadError && <div className="alert alert-error">Could not load prompts: {loadError}</div>}
        {mode.kind === 'documents' && <DocumentsPage documents={documents} uploads={uploads} getIdToken={getIdToken} />}
        {mode.kind === 'new' && (
          <PromptEditor
            key="new"
            initial={EMPTY_DRAFT}
            isNew
            onSave={save}
            onCancel={() => setMode({ kind: 'view' })}
            documents={documents.rows}
          />
        )}
        {mode.kind === 'edit' && selected && (
          <PromptEditor
            key={`edit-${selected.id}`}
            initial={draftOf(selected)}
            isNew={false}
            onSave={save}
            onCancel={() => setMode({ kind: 'view' })}
            documents={documents.rows}
          />
        )}
        {mode.kind === 'view' && selected && (
          <>
            <PromptView
              prompt={selected}
              isOwner={selected.owner_uid === user.uid}
              documents={documents.rows}
              onEdit={() => setMode({ kind: 'edit', id: selected.id, version: selected.version ?? null })}
              onDelete={async () => {
                await deletePrompt(db, selected.id);
                setSelectedId(null);
              }}
            />
            <PromptRunner key={selected.id} prompt={selected} user={user} />
          </>
        )}
        {mode.kind === 'view' && !selected && (
          <div className="card empty">
            <h2>Pick a prompt</h2>
            <p className="muted">Choose one on the left, or create a new one, then run it and watch the answer stream in.</p>
          </div>
        )}
      </main>
    </div>
  );
}

export function App() {
  const { user, loading } = useAuth();
  if (loading) return <div className="loading">Loading…</div>;
  return user ? <Workspace user={user} /> : <SignIn />;
}
