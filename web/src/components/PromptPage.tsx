import type { User } from 'firebase/auth';
import { useState } from 'react';
import { useNavigate, useParams } from 'react-router';
import { db } from '../firebase';
import { useComparisons } from '../hooks/useComparisons';
import type { Documents } from '../hooks/useDocuments';
import { useExecutions } from '../hooks/useExecutions';
import { usePrompt } from '../hooks/useRuns';
import { useVersions } from '../hooks/useVersions';
import { createComparison, markWinner, preferredModelWrites } from '../services/comparisons';
import { deletePrompt } from '../services/prompts';
import { createPrompt, LATEST, updatePrompt, type RunTarget } from '../services/versions';
import type { Prompt, PromptDraft } from '../types';
import { ExecutionHistory } from './ExecutionHistory';
import { NotFound, PageLoading } from './NotFound';
import { EMPTY_DRAFT, PromptEditor } from './PromptEditor';
import { PromptExecutionForm, type RerunRequest } from './PromptExecutionForm';
import { PromptVersions } from './PromptVersions';
import { PromptView } from './PromptView';

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

/** `/prompts/:promptId`: the prompt, its run form and its recent runs. */
export function PromptPage({ user, documents }: { user: User; documents: Documents }) {
  const { promptId = '' } = useParams();
  const navigate = useNavigate();
  const prompt = usePrompt(promptId);
  if (prompt === undefined) return <PageLoading />;
  if (prompt === null) return <NotFound what="prompt" />;
  return (
    <>
      <PromptView
        prompt={prompt}
        isOwner={prompt.owner_uid === user.uid}
        documents={documents.rows}
        onEdit={() => navigate(`/prompts/${prompt.id}/edit`)}
        onDelete={async () => {
          await deletePrompt(db, prompt.id);
          navigate('/', { replace: true });
        }}
      />
      <PromptRunner key={prompt.id} prompt={prompt} user={user} />
    </>
  );
}

/** `/prompts/new` and `/prompts/:promptId/edit`; saving replaces the editor's entry with the prompt's. */
export function PromptEditorPage({ user, documents, isNew }: { user: User; documents: Documents; isNew: boolean }) {
  const { promptId = '' } = useParams();
  const navigate = useNavigate();
  const prompt = usePrompt(isNew ? null : promptId);
  const back = () => navigate(isNew ? '/' : `/prompts/${promptId}`);
  if (isNew) {
    return (
      <PromptEditor
        key="new"
        initial={EMPTY_DRAFT}
        isNew
        onSave={async (draft) => navigate(`/prompts/${await createPrompt(db, user.uid, draft)}`, { replace: true })}
        onCancel={back}
        documents={documents.rows}
      />
    );
  }
  if (prompt === undefined) return <PageLoading />;
  if (prompt === null || prompt.owner_uid !== user.uid) return <NotFound what="prompt" />;
  return <PromptEdit key={`edit-${prompt.id}`} prompt={prompt} user={user} documents={documents} onDone={back} />;
}

function PromptEdit({ prompt, user, documents, onDone }: { prompt: Prompt; user: User; documents: Documents; onDone: () => void }) {
  const navigate = useNavigate();
  // An edit remembers the version it started from: a save made on top of another one since is refused.
  const [base] = useState(prompt.version ?? null);
  return (
    <PromptEditor
      initial={draftOf(prompt)}
      isNew={false}
      onSave={async (draft) => {
        await updatePrompt(db, prompt, draft, user.uid, base);
        navigate(`/prompts/${prompt.id}`, { replace: true });
      }}
      onCancel={onDone}
      documents={documents.rows}
    />
  );
}
