import type { ExecuteRequest, Prompt } from '../types';
import { filledVariables } from './templates';

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
