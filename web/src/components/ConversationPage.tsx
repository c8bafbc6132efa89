import type { User } from 'firebase/auth';
import { useEffect, useMemo, useState } from 'react';
import { Link, useLocation, useNavigate, useParams } from 'react-router';
import { isBusy, stateOfRecord } from '../hooks/executionState';
import { turnToReattach, useReattach } from '../hooks/useReattach';
import { useExecution, useRunsWhere } from '../hooks/useRuns';
import { useStreamingExecution } from '../hooks/useStreamingExecution';
import {
  editRequest,
  FOLLOWABLE,
  followUpRequest,
  linksOf,
  parentKey,
  regenerateRequest,
  threadOf,
  threadWithPending,
  type Choices,
  type PendingTurn,
} from '../services/conversation';
import type { ExecuteRequest, ExecutionRecord, Prompt } from '../types';
import { askedModel, ConversationThread, type TurnView } from './ConversationThread';
import { FollowUpBox, followUpModel, handoffOf } from './FollowUpBox';
import { NotFound, PageLoading } from './NotFound';

const FINAL = new Set(['completed', 'error', 'cancelled', 'interrupted']);

/** A turn in flight, and the conversation it belongs to (null: a new one, not yet opened). */
interface Pending extends PendingTurn {
  conversationId: string | null;
}

function merged(...lists: Array<ExecutionRecord[] | ExecutionRecord | null | undefined>): ExecutionRecord[] {
  const byId = new Map<string, ExecutionRecord>();
  for (const item of lists) for (const r of Array.isArray(item) ? item : item ? [item] : []) byId.set(r.id, r);
  return [...byId.values()];
}

/**
 * `/runs/:executionId`: the conversation the run belongs to, showing the version of each turn on
 * the way to that run, and a box to continue it; the last answer can be regenerated (on another
 * model, too) and the last question edited. The stream outlives a move between conversations.
 */
export function ConversationPage({ user, prompts }: { user: User; prompts: Prompt[] }) {
  const { executionId = '' } = useParams();
  const location = useLocation();
  const navigate = useNavigate();
  const live = useStreamingExecution();
  const [pending, setPending] = useState<Pending | null>(null);
  const [choices, setChoices] = useState<{ conversationId: string | null; chosen: Choices }>({
    conversationId: null,
    chosen: {},
  });

  const record = useExecution(executionId);
  const conversationId = record ? linksOf(record).conversationId : null;
  const turns = useRunsWhere(user.uid, 'conversation_id', conversationId);
  // A first turn written before runs carried `conversation_id` is not in the query's answer.
  const root = useExecution(conversationId !== null && conversationId !== executionId ? conversationId : null);
  const records = useMemo(() => merged(turns.rows, record, root), [turns.rows, record, root]);
  const chosen = choices.conversationId === conversationId ? choices.chosen : {};
  const thread = useMemo(() => threadOf(records, { focus: executionId, chosen }), [records, executionId, chosen]);

  const ours = pending !== null && (pending.conversationId === conversationId || pending.conversationId === null);
  const busy = isBusy(live.phase);
  // A reload or another tab mid-answer shows the turn still streaming (issue 24), once the
  // conversation's runs are known (the run the URL names alone may not be the one streaming).
  const attachTurn = live.attach;
  useReattach(turns.rows === undefined ? [] : records, live.phase === 'idle' && pending === null, (id) => {
    void attachTurn(id, { idToken: () => user.getIdToken() });
  }, turnToReattach);
  const shown = threadWithPending(thread, ours ? pending : null, live.executionId, records);

  const choose = (parentId: string | null, id: string) =>
    setChoices({ conversationId, chosen: { ...chosen, [parentKey(parentId)]: id } });

  // The new turn is the version shown at its place as soon as it has an id.
  useEffect(() => {
    if (!pending || !live.executionId) return;
    if (pending.conversationId === null) {
      // A first turn run again is a conversation of its own: its page.
      setPending({ ...pending, conversationId: live.executionId });
      navigate(`/runs/${live.executionId}`);
      return;
    }
    setChoices((c) =>
      c.conversationId === pending.conversationId
        ? { ...c, chosen: { ...c.chosen, [parentKey(pending.parentId)]: live.executionId! } }
        : { conversationId: pending.conversationId, chosen: { [parentKey(pending.parentId)]: live.executionId! } },
    );
  }, [live.executionId]);

  function send(request: ExecuteRequest, turn: Pending) {
    setPending(turn);
    void live.execute(request, { idToken: () => user.getIdToken() });
  }

  // Escape cancels the answer in flight wherever the focus is, as on the prompt page.
  useEffect(() => {
    if (!busy) return undefined;
    const onEscape = (event: KeyboardEvent) => {
      if (event.key === 'Escape') live.cancel();
    };
    document.addEventListener('keydown', onEscape);
    return () => document.removeEventListener('keydown', onEscape);
  }, [busy, live.cancel]);

  // A follow-up written under a run on the prompt page arrives with the navigation: sent once.
  const handoff = handoffOf(location.state);
  useEffect(() => {
    if (!handoff || !record) return undefined;
    // A timer, so React's development double mount does not send it and then cancel it.
    const timer = setTimeout(() => {
      navigate(location.pathname, { replace: true, state: null });
      send(followUpRequest(record, handoff.message, handoff.model), {
        parentId: record.id,
        message: handoff.message,
        conversationId: linksOf(record).conversationId,
      });
    }, 0);
    return () => clearTimeout(timer);
  }, [handoff, record?.id]);

  const last = shown.showPending ? null : (shown.turns[shown.turns.length - 1]?.record ?? null);
  const [model, setModel] = useState<string | null>(null);
  const nextModel = model ?? followUpModel(last ? askedModel(last) : null);

  if (record === undefined) return <PageLoading />;
  if (record === null) return <NotFound what="run" />;

  const prompt = prompts.find((p) => p.id === record.prompt_id);
  const views: TurnView[] = shown.turns.map((t) => {
    const r = t.record;
    const isLive = r.id === live.executionId && (!FINAL.has(r.status) || busy);
    return {
      key: r.id,
      turn: t,
      message: linksOf(r).parentId === null ? null : (linksOf(r).message ?? ''),
      variables: r.variables,
      state: isLive ? live : stateOfRecord(r),
      model: askedModel(r),
      turnNumber: linksOf(r).turn,
    };
  });
  if (shown.showPending && pending) {
    const parent = shown.turns[shown.turns.length - 1]?.record;
    views.push({
      key: 'pending',
      turn: null,
      message: pending.parentId === null ? null : pending.message,
      variables: record.variables,
      state: live,
      model: nextModel,
      turnNumber: parent ? linksOf(parent).turn + 1 : 1,
    });
  }

  const lastDone = last !== null && FINAL.has(last.status) && !busy;
  const canFollowUp = lastDone && FOLLOWABLE.has(last.status) && last.output !== '';
  const lastTurn = shown.showPending ? undefined : shown.turns[shown.turns.length - 1];
  const lastIsNewest = lastTurn === undefined || lastTurn.index === lastTurn.versions.length - 1;
  const lastLinks = last ? linksOf(last) : null;

  return (
    <section className="card conversation" data-testid="conversation" data-conversation-id={conversationId ?? ''}>
      <header className="panel-header wrap">
        <h2>Conversation</h2>
        {prompt ? (
          <Link to={`/prompts/${prompt.id}`} data-testid="conversation-prompt">
            {prompt.title}
          </Link>
        ) : (
          <span className="muted small" data-testid="conversation-prompt-gone">
            prompt deleted or no longer shared
          </span>
        )}
        <span className="spacer" />
        {busy && (
          <button
            type="button"
            className="btn btn-danger btn-small"
            onClick={live.cancel}
            aria-keyshortcuts="Escape"
            title="Cancel (Esc)"
            data-testid="cancel-button"
          >
            Cancel
          </button>
        )}
      </header>
      {views.length === 0 ? (
        <PageLoading />
      ) : (
        <ConversationThread
          turns={views}
          promptTitle={prompt?.title ?? 'Deleted prompt'}
          onPick={(id) => {
            const r = records.find((x) => x.id === id);
            if (r) choose(linksOf(r).parentId, id);
          }}
          lastActions={
            last && lastDone ? (
              <button
                type="button"
                className="btn btn-small"
                title={`Another answer from ${nextModel}`}
                onClick={() =>
                  send(regenerateRequest(last, nextModel, lastIsNewest), {
                    parentId: lastLinks!.parentId,
                    message: lastLinks!.message,
                    conversationId: lastLinks!.parentId === null ? null : lastLinks!.conversationId,
                  })
                }
                data-testid="regenerate-button"
              >
                {nextModel === askedModel(last) ? 'Regenerate' : `Regenerate on ${nextModel}`}
              </button>
            ) : undefined
          }
          onEditLast={
            last && lastDone && lastLinks!.parentId !== null
              ? (message) =>
                  send(editRequest(last, message, nextModel), {
                    parentId: lastLinks!.parentId,
                    message,
                    conversationId: lastLinks!.conversationId,
                  })
              : undefined
          }
        />
      )}
      <FollowUpBox
        model={nextModel}
        onModel={setModel}
        disabled={!canFollowUp || last === null}
        note={
          busy
            ? 'Waiting for the answer…'
            : last && !canFollowUp
              ? 'The last answer has nothing to follow: regenerate it, or pick another version.'
              : null
        }
        onSend={(message, m) => {
          if (!last) return;
          send(followUpRequest(last, message, m), { parentId: last.id, message, conversationId: lastLinks!.conversationId });
        }}
      />
    </section>
  );
}
