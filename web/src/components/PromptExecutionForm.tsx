import { useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { availableModels, config } from '../config';
import { isBusy } from '../hooks/executionState';
import { useComparison } from '../hooks/useComparison';
import { useReattach } from '../hooks/useReattach';
import { useStandardExecution } from '../hooks/useStandardExecution';
import { useStreamingExecution } from '../hooks/useStreamingExecution';
import {
  columnFallbacks,
  defaultCompared,
  defaultModelFor,
  MAX_COMPARED,
  MIN_COMPARED,
} from '../services/comparisons';
import { supportsStreamingBody } from '../services/streaming';
import { buildRequest } from '../services/request';
import { formVariables } from '../services/templates';
import { checkRun } from '../services/validation';
import { autoId, LATEST, promptAt, targetFields, unionPrompt, type RunTarget } from '../services/versions';
import type { Comparison, ExecuteRequest, ExecutionRecord, Prompt, PromptVersion } from '../types';
import { LiveComparison, type OnWinner } from './ComparisonView';
import { DemoModeNote } from './DemoModeNote';
import { useFieldProblems } from './fieldProblems';
import { RunFollowUp } from './FollowUpBox';
import { ModelChecklist } from './ModelChecklist';
import { StandardExecutionPanel } from './StandardExecutionPanel';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';
import { UsageMeter } from './UsageMeter';
import { VersionChecklist, VersionPicker } from './VersionControls';

/** A past run to run again: its variables and model, and a counter so the same run can be asked twice. */
export interface RerunRequest {
  variables: Record<string, string>;
  model: string;
  seq: number;
}

interface Props {
  prompt: Prompt;
  uid: string;
  getIdToken: () => Promise<string>;
  /** The user's runs of this prompt (live); the panel takes its server timings from them. */
  records: ExecutionRecord[];
  rerun: RerunRequest | null;
  /** The user's comparisons of this prompt (live), for the winner of the one shown. */
  comparisons?: Comparison[];
  /** Writes a new comparison's document and returns its id. */
  openComparison?: (models: string[]) => Promise<string>;
  onWinner?: OnWinner;
  /** The prompt's versions (issue 27), newest first, and the one runs use. */
  versions?: PromptVersion[];
  target?: RunTarget;
  onTarget?: (target: RunTarget) => void;
}

const NO_WINNER: OnWinner = async () => undefined;

export function PromptExecutionForm({
  prompt,
  uid,
  getIdToken,
  records,
  rerun,
  comparisons = [],
  openComparison,
  onWinner = NO_WINNER,
  versions = [],
  target = LATEST,
  onTarget,
}: Props) {
  const canStream = useMemo(() => supportsStreamingBody(), []);
  const [compareVersions, setCompareVersions] = useState(false);
  const [comparedVersions, setComparedVersions] = useState<number[]>([]);
  const comparingVersions = compareVersions && versions.length >= MIN_COMPARED;
  const picked = comparedVersions.map((n) => versions.find((v) => v.number === n)).filter((v) => v !== undefined);
  // The form asks for the variables of the version it runs; comparing versions, for all of theirs.
  const shown = comparingVersions && picked.length > 0 ? unionPrompt(prompt, picked) : promptAt(prompt, versions, target);
  const variables = useMemo(
    () => formVariables(shown.variables, shown.content, shown.system_prompt),
    [shown.variables, shown.content, shown.system_prompt],
  );
  const [values, setValues] = useState<Record<string, string>>({});
  const preferred = defaultModelFor(prompt, availableModels, config.defaultModel);
  const [model, setModel] = useState<string>(preferred);
  const [compare, setCompare] = useState(false);
  const [compared, setCompared] = useState<string[]>(() => defaultCompared(preferred, availableModels));
  const [context, setContext] = useState('');
  const [maxTokens, setMaxTokens] = useState('');
  const [temperature, setTemperature] = useState('');
  const [streaming, setStreaming] = useState(canStream);
  const [lastMode, setLastMode] = useState<'streaming' | 'standard' | 'compare' | null>(null);
  const { report, inputProps, fieldError, clear: clearProblem } = useFieldProblems('run-field');
  const formRef = useRef<HTMLFormElement>(null);

  const stream = useStreamingExecution();
  const standard = useStandardExecution();
  const comparison = useComparison();
  const busy = isBusy(stream.phase) || isBusy(standard.phase) || comparison.busy;
  const canCompare = openComparison !== undefined && availableModels.length >= MIN_COMPARED;
  const comparing = compare && canCompare && !comparingVersions;

  // A winner marked since (here or in the history) becomes the model later runs start with.
  useEffect(() => {
    setModel(preferred);
    setCompared((list) => [preferred, ...list.filter((m) => m !== preferred)].slice(0, MAX_COMPARED));
  }, [preferred]);

  async function runWith(runValues: Record<string, string>, runModel: string, asComparison = false) {
    if (report(checkRun(variables, { values: runValues, maxTokens, temperature }))) return;
    const requestFor = (m: string): ExecuteRequest => ({
      ...buildRequest(prompt, runValues, variables.map((v) => v.name), m, context, maxTokens, temperature),
      ...targetFields(target),
    });
    if (asComparison && comparingVersions) {
      setLastMode('compare');
      // One model on each version; each column sends only the variables its version knows (the
      // server refuses unknown ones). No comparison document: its rules want distinct models.
      await comparison.start(
        picked.map(() => runModel),
        {
          open: async () => autoId(),
          idToken: getIdToken,
          versions: picked.map((v) => v.number),
          requestFor: (m, i) => {
            const v = picked[i]!;
            const names = formVariables(v.variables, v.content, v.system_prompt).map((x) => x.name);
            return { ...buildRequest(prompt, runValues, names, m, context, maxTokens, temperature), version: v.number };
          },
        },
      );
      return;
    }
    if (asComparison && openComparison) {
      setLastMode('compare');
      // Sent explicitly (even `[]`), so no column falls back onto a model that is another column.
      const fallbacks = columnFallbacks(prompt, compared, availableModels);
      await comparison.start(compared, {
        open: openComparison,
        idToken: getIdToken,
        requestFor: (m) => ({ ...requestFor(m), fallback_models: fallbacks }),
      });
      return;
    }
    const request = requestFor(runModel);
    const useStream = streaming && canStream;
    setLastMode(useStream ? 'streaming' : 'standard');
    if (useStream) await stream.execute(request, { idToken: getIdToken });
    else await standard.execute(request, { idToken: getIdToken });
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    if (comparing && (compared.length < MIN_COMPARED || compared.length > MAX_COMPARED)) return;
    if (comparingVersions && picked.length < MIN_COMPARED) return;
    void runWith(values, model, comparing || comparingVersions);
  }

  // Ctrl/Cmd+Enter runs from any field, the Context textarea included (where Enter is a newline).
  function onKeyDown(event: KeyboardEvent<HTMLFormElement>) {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      formRef.current?.requestSubmit();
    }
  }

  // Escape cancels a running run wherever the focus is.
  useEffect(() => {
    if (!busy) return;
    const onEscape = (event: globalThis.KeyboardEvent) => {
      if (event.key !== 'Escape') return;
      stream.cancel();
      standard.cancel();
      comparison.cancelAll();
    };
    document.addEventListener('keydown', onEscape);
    return () => document.removeEventListener('keydown', onEscape);
  }, [busy, stream.cancel, standard.cancel, comparison.cancelAll]);

  // A run picked in the history runs again with its own variables and model.
  const runWithRef = useRef(runWith);
  useEffect(() => {
    runWithRef.current = runWith;
  });
  useEffect(() => {
    if (rerun === null) return;
    const known = new Set(variables.map((v) => v.name));
    const next = Object.fromEntries(Object.entries(rerun.variables).filter(([name]) => known.has(name)));
    const nextModel = availableModels.includes(rerun.model) ? rerun.model : config.defaultModel;
    setValues(next);
    setModel(nextModel);
    setCompare(false);
    setCompareVersions(false);
    void runWithRef.current(next, nextModel);
    // Only a new request runs; the variables list belongs to this prompt's form.
  }, [rerun]);

  // A reload or another tab shows the user's run still streaming here (issue 24).
  const attachRun = stream.attach;
  useReattach(records, lastMode === null && canStream, (executionId) => {
    setLastMode('streaming');
    void attachRun(executionId, { idToken: getIdToken });
  });

  const activeState = lastMode === 'streaming' ? stream : standard;
  const activeId = activeState.executionId;
  const record = records.find((r) => r.id === activeId) ?? null;

  return (
    <>
      <form
        ref={formRef}
        className="card run-form"
        onSubmit={submit}
        onKeyDown={onKeyDown}
        noValidate
        data-testid="execution-form"
      >
        <h3>Run</h3>
        {config.demoModel && <DemoModeNote models={availableModels} />}
        {variables.length > 0 && (
          <div className="grid-2">
            {variables.map((v) => (
              <label key={v.name}>
                <span>
                  {v.name}
                  {v.required && v.default === null && <span className="required">*</span>}
                  {v.description && <span className="muted small"> — {v.description}</span>}
                </span>
                <input
                  {...inputProps(`var:${v.name}`)}
                  value={values[v.name] ?? ''}
                  placeholder={v.default ?? (v.required ? 'required' : 'optional')}
                  onChange={(e) => {
                    setValues((s) => ({ ...s, [v.name]: e.target.value }));
                    clearProblem(`var:${v.name}`);
                  }}
                  data-testid={`var-input-${v.name}`}
                />
                {fieldError(`var:${v.name}`)}
              </label>
            ))}
          </div>
        )}
        {comparing && (
          <ModelChecklist
            legend={
              <>
                Models to compare <span className="muted small">({MIN_COMPARED}–{MAX_COMPARED}, same variables)</span>
              </>
            }
            value={compared}
            onChange={setCompared}
            max={MAX_COMPARED}
            disabled={busy}
            testId="compare"
            order={`Columns: ${compared.length > 0 ? compared.join(', ') : 'none'}`}
          />
        )}
        {comparingVersions && (
          <VersionChecklist
            versions={versions}
            value={comparedVersions}
            onChange={setComparedVersions}
            max={MAX_COMPARED}
            disabled={busy}
            model={model}
          />
        )}
        <div className="grid-2">
          {versions.length > 0 && onTarget && !comparingVersions && (
            <VersionPicker prompt={prompt} versions={versions} value={target} onChange={onTarget} disabled={busy} />
          )}
          <label>
            Model
            <select
              value={model}
              onChange={(e) => setModel(e.target.value)}
              disabled={comparing}
              data-testid="model-select"
            >
              {availableModels.map((m) => (
                <option key={m} value={m}>
                  {m}
                  {m === prompt.preferred_model ? ' (preferred)' : ''}
                </option>
              ))}
            </select>
          </label>
          <div className="grid-2 tight">
            <label>
              Max tokens
              <input
                {...inputProps('max_tokens')}
                type="number"
                min={1}
                max={32000}
                value={maxTokens}
                placeholder="default"
                onChange={(e) => {
                  setMaxTokens(e.target.value);
                  clearProblem('max_tokens');
                }}
                data-testid="max-tokens-input"
              />
              {fieldError('max_tokens')}
            </label>
            <label>
              Temperature
              <input
                {...inputProps('temperature')}
                type="number"
                min={0}
                max={2}
                step={0.1}
                value={temperature}
                placeholder="default"
                onChange={(e) => {
                  setTemperature(e.target.value);
                  clearProblem('temperature');
                }}
                data-testid="temperature-input"
              />
              {fieldError('temperature')}
            </label>
          </div>
        </div>
        <label>
          Context <span className="muted small">optional RAG text, sent as a system message</span>
          <textarea rows={2} value={context} onChange={(e) => setContext(e.target.value)} data-testid="context-input" />
        </label>
        <div className="row run-row">
          {canCompare && (
            <label className="inline toggle">
              <input
                type="checkbox"
                checked={compare && !comparingVersions}
                disabled={busy}
                onChange={(e) => {
                  setCompare(e.target.checked);
                  if (e.target.checked) setCompareVersions(false);
                }}
                data-testid="compare-toggle"
              />
              Compare models
            </label>
          )}
          {versions.length >= MIN_COMPARED && (
            <label className="inline toggle">
              <input
                type="checkbox"
                checked={comparingVersions}
                disabled={busy}
                onChange={(e) => {
                  setCompareVersions(e.target.checked);
                  if (e.target.checked) setCompare(false);
                }}
                data-testid="compare-versions-toggle"
              />
              Compare versions
            </label>
          )}
          <label className="inline toggle">
            <input
              type="checkbox"
              checked={(streaming || comparing || comparingVersions) && canStream}
              disabled={!canStream || busy || comparing || comparingVersions}
              onChange={(e) => setStreaming(e.target.checked)}
              data-testid="streaming-toggle"
            />
            Stream tokens
          </label>
          {!canStream && (
            <span className="muted small" data-testid="no-streaming-note">
              This browser cannot read streams; runs use the standard endpoint.
            </span>
          )}
          <span className="spacer" />
          <UsageMeter uid={uid} />
          <button
            type="submit"
            className="btn btn-primary"
            disabled={busy || (comparing && compared.length < MIN_COMPARED) || (comparingVersions && picked.length < MIN_COMPARED)}
            aria-keyshortcuts="Control+Enter Meta+Enter"
            title="Run (Ctrl/Cmd+Enter)"
            data-testid="run-button"
          >
            {busy
              ? 'Running…'
              : comparing
                ? `Compare ${compared.length} models`
                : comparingVersions
                  ? `Compare ${picked.length} versions`
                  : 'Run prompt'}
          </button>
        </div>
      </form>
      {lastMode === 'streaming' && <StreamingExecutionPanel state={stream} onCancel={stream.cancel} record={record} />}
      {lastMode === 'standard' && (
        <StandardExecutionPanel state={standard} onCancel={standard.cancel} record={record} />
      )}
      {/* A finished run goes on as a conversation on its own page (issue 25). */}
      {(lastMode === 'streaming' || lastMode === 'standard') && activeId && activeState.phase === 'completed' && (
        <section className="card" aria-label="Follow-up">
          <RunFollowUp key={activeId} executionId={activeId} model={activeState.model} />
        </section>
      )}
      {lastMode === 'compare' && (
        <LiveComparison
          run={comparison}
          records={records}
          comparison={comparisons.find((c) => c.id === comparison.comparisonId) ?? null}
          onWinner={comparison.columns.some((c) => c.version !== undefined) ? undefined : onWinner}
          followUp={(id, m) => <RunFollowUp key={id} executionId={id} model={m} compact />}
        />
      )}
    </>
  );
}
