/** Wire types of the backend contract (README: request, SSE events, JSON answers) and the records the app reads. */

/**
 * Body of POST /execute_prompt_stream and /execute_prompt, and the backend's error codes: generated
 * from the pydantic models by scripts/wire-types (ADR 0500). The rest of this file is not a pydantic
 * model on the server (the SSE events' payloads, the Firestore records) and is kept by hand.
 */
export type { ErrorCode, ExecuteRequest } from './wire.generated';

/** One model tried by a run, in order (`event: end` / `event: error` and the record's `attempts`). */
export interface Attempt {
  model: string;
  outcome: 'answered' | 'failed' | 'skipped' | string;
  error_code: string | null;
  status: number | null;
  message: string | null;
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  cost?: number;
  [key: string]: unknown;
}

export interface StartEvent {
  type: 'start';
  executionId: string;
  promptId: string;
  model: string;
  comparisonId: string | null;
  /** The models to try, primary first. */
  models: string[];
}

export interface ContentEvent {
  type: 'content';
  id: string | undefined;
  content: string;
  reasoning: string | undefined;
  finishReason: string | null;
}

export interface EndEvent {
  type: 'end';
  executionId: string;
  model: string;
  finishReason: string | null;
  usage: Usage | null;
  generationId: string | null;
  attempts: Attempt[];
}

export interface ErrorEvent {
  type: 'error';
  code: string;
  message: string;
  attempts: Attempt[];
}

export interface DoneEvent {
  type: 'done';
}

/** One retrieved passage; element n - 1 of a run's sources is citation [n] of its answer. */
export interface Source {
  document_id: string;
  title: string;
  position: number | null;
  heading: string | null;
  text: string;
  /** Cosine similarity to the query. */
  score: number | null;
}

/** `event: sources`: the passages the answer may cite, sent before the first content event. */
export interface SourcesEvent {
  type: 'sources';
  sources: Source[];
}

export type StreamEvent = StartEvent | SourcesEvent | ContentEvent | EndEvent | ErrorEvent | DoneEvent;

/** What a stream (or the non-streaming call) leaves behind once it finished or was cancelled. */
export interface ExecutionResult {
  executionId: string | null;
  model: string | null;
  content: string;
  reasoning: string;
  finishReason: string | null;
  usage: Usage | null;
  generationId: string | null;
  /** The retrieved passages; absent when the run named no documents. */
  sources?: Source[];
  /** Every model tried, in order; empty when the server sent none (an older backend, a cancel). */
  attempts: Attempt[];
  cancelled: boolean;
}

/** The JSON answer of POST /execute_prompt. */
export interface ExecutePromptResponse {
  execution_id: string;
  prompt_id: string;
  model: string;
  content: string;
  reasoning: string | null;
  finish_reason: string | null;
  usage: Usage | null;
  generation_id: string | null;
  duration_ms: number;
  sources?: Source[];
  attempts?: Attempt[];
  comparison_id?: string | null;
}

export interface PromptVariable {
  name: string;
  required: boolean;
  default: string | null;
  description?: string;
}

/** A `prompts/{id}` document as the app reads it. */
export interface Prompt {
  id: string;
  owner_uid: string;
  title: string;
  content: string;
  system_prompt?: string;
  variables: PromptVariable[];
  public: boolean;
  /** Knowledge bases: the documents the prompt draws on, how many passages, and the variable that is the query. */
  document_ids?: string[];
  top_k?: number | null;
  retrieval_query_variable?: string | null;
  /** The default model of later runs; set by marking a comparison's winner. */
  preferred_model?: string | null;
  /** Tried in turn when the model fails before its first chunk (0–3). */
  fallback_models?: string[];
  updatedAtMs: number | null;
}

/** Fields the editor produces; the store adds owner_uid and timestamps. */
export interface PromptDraft {
  title: string;
  content: string;
  system_prompt: string;
  variables: PromptVariable[];
  public: boolean;
  /** Knowledge bases; absent or empty: none. */
  document_ids?: string[];
  top_k?: number | null;
  retrieval_query_variable?: string | null;
  /** Fallback models (0–3); absent or empty: none. */
  fallback_models?: string[];
}

export type ExecutionStatus = 'streaming' | 'completed' | 'error' | 'cancelled';

/** An `executions/{id}` document, as shown in the history. */
export interface ExecutionRecord {
  id: string;
  prompt_id: string;
  model: string;
  status: ExecutionStatus | string;
  output: string;
  reasoning: string;
  /** The resolved values the run used (defaults filled in). */
  variables: Record<string, string>;
  finish_reason: string | null;
  error_code: string | null;
  error_message: string | null;
  usage: Usage | null;
  ttft_ms: number | null;
  duration_ms: number | null;
  createdAtMs: number | null;
  finishedAtMs: number | null;
  /** The passages the run drew on (each text cut by the backend); null when it named no documents. */
  sources?: Source[] | null;
  /** Set when the run was one column of a comparison. */
  comparison_id?: string | null;
  /** The model asked for (the primary); `model` is the one that answered. */
  requested_model?: string | null;
  attempts?: Attempt[];
  /**
   * What the run cost the daily budget: the usage's total, or the server's estimate when the model
   * sent no usage (a cancelled run, most errors); absent on records older than the field.
   */
  tokens_debited?: number | null;
}

/** A `comparisons/{id}` document: the runs sharing its id are its columns; the winner is here. */
export interface Comparison {
  id: string;
  owner_uid: string;
  prompt_id: string;
  models: string[];
  winner_model: string | null;
  winner_execution_id: string | null;
  createdAtMs: number | null;
}

/** The part of `user_limits/{uid}` the usage meter shows. */
export interface UserLimits {
  tokensToday: number;
}

export type DocumentStatus = 'indexing' | 'ready' | 'error';

/** A `documents/{document_id}~{uid key}` knowledge-base document as the app reads it (written by ingest_document); `id` is its `document_id`. */
export interface KbDocument {
  id: string;
  owner_uid: string;
  title: string;
  filename: string;
  content_type: string;
  size: number | null;
  status: DocumentStatus | string;
  error_message: string | null;
  generation: number | null;
  passage_count: number | null;
  createdAtMs: number | null;
  updatedAtMs: number | null;
}
