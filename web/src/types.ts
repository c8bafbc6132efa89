/** Wire types of the backend contract (README: request, SSE events, JSON answers) and the records the app reads. */

/**
 * Body of POST /execute_prompt_stream and /execute_prompt, and the backend's error codes: generated
 * from the pydantic models by scripts/wire-types (ADR 0500). The rest of this file is not a pydantic
 * model on the server (the SSE events' payloads, the Firestore records) and is kept by hand.
 */
export type { ErrorCode, ExecuteRequest } from './wire.generated';

/** The other two bodies of POST /execute_prompt_stream: reattach after an event id, and cancel. */
export interface ResumeRequest {
  resume: string;
  last_event_id: number;
}

export interface CancelRequest {
  cancel: string;
}

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
  /** The server keeps generating when the connection drops, so the client may resume it. */
  resumable: boolean;
  /** This connection resumes an earlier one (the events after its last id follow). */
  resumed: boolean;
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

/** Not from the server: the connection dropped and the client reconnects after `delayMs`. */
export interface ReconnectingEvent {
  type: 'reconnecting';
  /** 1 for the first try after a drop. */
  attempt: number;
  delayMs: number;
}

export type StreamEvent =
  | StartEvent
  | SourcesEvent
  | ContentEvent
  | EndEvent
  | ErrorEvent
  | DoneEvent
  | ReconnectingEvent;

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
  /** The latest version's number; null on a prompt saved before versions were kept (it runs as version 1). */
  version?: number | null;
  /** Label (`production`, `staging`, …) -> the version it points at. */
  labels?: Record<string, number>;
  /**
   * The document as read: the first save of a prompt without versions copies its fields and its
   * `updated_at` into version 1 exactly as stored (the rules compare them).
   */
  stored?: Record<string, unknown>;
}

/** The fields of a prompt that shape a run, as one immutable version holds them. */
export interface VersionFields {
  content: string;
  system_prompt: string;
  variables: PromptVariable[];
  document_ids: string[];
  top_k: number | null;
  retrieval_query_variable: string | null;
  preferred_model: string | null;
  fallback_models: string[];
}

/** A `prompts/{id}/versions/{n}` document (issue 27). */
export interface PromptVersion extends VersionFields {
  number: number;
  created_by: string | null;
  createdAtMs: number | null;
  summary: string | null;
  /** Not stored: version 1 of a prompt saved before versions were kept, read from the prompt itself. */
  implicit?: boolean;
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
  /** A short note kept with the version this save creates; absent or blank: none. */
  summary?: string;
}

/** `interrupted`: the instance generating it died; the record holds the text of its last checkpoint. */
export type ExecutionStatus = 'streaming' | 'completed' | 'error' | 'cancelled' | 'interrupted';

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
  /**
   * Conversations (issue 25): the conversation's id (the first turn's own id), the turn this one
   * follows (null on turn 1), its position (1 for the first) and the user's follow-up text (null
   * on turn 1). Absent on records older than the fields: such a run is turn 1 of its own.
   */
  conversation_id?: string | null;
  parent_execution_id?: string | null;
  turn?: number | null;
  message?: string | null;
  /** The version of the prompt the run used (issue 27); absent on records older than versions. */
  prompt_version?: number | null;
  /** The run asked to survive a dropped connection (issue 24): a reload may reattach to it. */
  resumable?: boolean;
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
