import { useMemo, useState, type FormEvent } from 'react';
import { config, MODELS } from '../config';
import { isBusy } from '../hooks/executionState';
import { useStandardExecution } from '../hooks/useStandardExecution';
import { useStreamingExecution } from '../hooks/useStreamingExecution';
import { supportsStreamingBody } from '../services/streaming';
import { filledVariables, formVariables } from '../services/templates';
import type { ExecuteRequest, Prompt } from '../types';
import { StandardExecutionPanel } from './StandardExecutionPanel';
import { StreamingExecutionPanel } from './StreamingExecutionPanel';

interface Props {
  prompt: Prompt;
  getIdToken: () => Promise<string>;
}

/** Builds the request body; snake_case and only the fields the backend accepts. */
export function buildRequest(
  prompt: Prompt,
  values: Record<string, string>,
  names: string[],
  model: string,
  context: string,
  maxTokens: string,
  temperature: string,
): ExecuteRequest {
  const request: ExecuteRequest = { prompt_id: prompt.id, variables: filledVariables(values, names), model };
  if (context.trim() !== '') request.context = context;
  if (maxTokens.trim() !== '') request.max_tokens = Number(maxTokens);
  if (temperature.trim() !== '') request.temperature = Number(temperature);
  return request;
}

export function PromptExecutionForm({ prompt, getIdToken }: Props) {
  const canStream = useMemo(() => supportsStreamingBody(), []);
  const variables = useMemo(
    () => formVariables(prompt.variables, prompt.content, prompt.system_prompt),
    [prompt.variables, prompt.content, prompt.system_prompt],
  );
  const [values, setValues] = useState<Record<string, string>>({});
  const [model, setModel] = useState<string>(config.defaultModel);
  const [context, setContext] = useState('');
  const [maxTokens, setMaxTokens] = useState('');
  const [temperature, setTemperature] = useState('');
  const [streaming, setStreaming] = useState(canStream);
  const [lastMode, setLastMode] = useState<'streaming' | 'standard' | null>(null);

  const stream = useStreamingExecution();
  const standard = useStandardExecution();
  const busy = isBusy(stream.phase) || isBusy(standard.phase);

  async function run(event: FormEvent) {
    event.preventDefault();
    const request = buildRequest(prompt, values, variables.map((v) => v.name), model, context, maxTokens, temperature);
    const useStream = streaming && canStream;
    setLastMode(useStream ? 'streaming' : 'standard');
    if (useStream) await stream.execute(request, { idToken: getIdToken });
    else await standard.execute(request, { idToken: getIdToken });
  }

  return (
    <>
      <form className="card run-form" onSubmit={(e) => void run(e)} data-testid="execution-form">
        <h3>Run</h3>
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
                  value={values[v.name] ?? ''}
                  placeholder={v.default ?? (v.required ? 'required' : 'optional')}
                  onChange={(e) => setValues((s) => ({ ...s, [v.name]: e.target.value }))}
                  data-testid={`var-input-${v.name}`}
                />
              </label>
            ))}
          </div>
        )}
        <div className="grid-2">
          <label>
            Model
            <select value={model} onChange={(e) => setModel(e.target.value)} data-testid="model-select">
              {MODELS.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </label>
          <div className="grid-2 tight">
            <label>
              Max tokens
              <input
                type="number"
                min={1}
                max={32000}
                value={maxTokens}
                placeholder="default"
                onChange={(e) => setMaxTokens(e.target.value)}
                data-testid="max-tokens-input"
              />
            </label>
            <label>
              Temperature
              <input
                type="number"
                min={0}
                max={2}
                step={0.1}
                value={temperature}
                placeholder="default"
                onChange={(e) => setTemperature(e.target.value)}
                data-testid="temperature-input"
              />
            </label>
          </div>
        </div>
        <label>
          Context <span className="muted small">optional RAG text, sent as a system message</span>
          <textarea rows={2} value={context} onChange={(e) => setContext(e.target.value)} data-testid="context-input" />
        </label>
        <div className="row">
          <label className="inline toggle">
            <input
              type="checkbox"
              checked={streaming && canStream}
              disabled={!canStream || busy}
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
          <button type="submit" className="btn btn-primary" disabled={busy} data-testid="run-button">
            {busy ? 'Running…' : 'Run prompt'}
          </button>
        </div>
      </form>
      {lastMode === 'streaming' && <StreamingExecutionPanel state={stream} onCancel={stream.cancel} />}
      {lastMode === 'standard' && <StandardExecutionPanel state={standard} onCancel={standard.cancel} />}
    </>
  );
}
