import { describe, expect, it } from 'vitest';
import { describeError, ExecutionError, parseRetryAfter } from './errors';

// Every code in the README's error table and mid-stream list, plus the client's own.
const KNOWN_CODES = [
  'invalid_request', 'missing_variables', 'unknown_variables', 'model_not_allowed', 'prompt_too_large',
  'unauthenticated', 'prompt_not_found', 'version_not_found', 'payload_too_large', 'concurrency_limit', 'budget_exceeded',
  'rate_limited', 'out_of_credits', 'upstream_error', 'upstream_auth', 'upstream_bad_request',
  'content_blocked', 'upstream_unavailable', 'upstream_timeout', 'configuration_error', 'internal',
  'upstream_disconnected', 'unavailable', 'method_not_allowed', 'network_error', 'stream_interrupted', 'bad_response', 'streaming_unsupported',
  'conversation_not_found', 'turn_out_of_order', 'conversation_too_long',
];

describe('describeError', () => {
  it.each(KNOWN_CODES)('has its own words for %s', (code) => {
    const { title } = describeError(new ExecutionError(code, 'server text'));
    expect(title).not.toBe('Request failed');
  });

  it('gives distinct titles to the cases a person must tell apart', () => {
    const codes = ['unauthenticated', 'prompt_not_found', 'missing_variables', 'unknown_variables',
      'model_not_allowed', 'rate_limited', 'out_of_credits', 'upstream_error', 'network_error'];
    const titles = codes.map((c) => describeError(new ExecutionError(c, 'x')).title);
    expect(new Set(titles).size).toBe(codes.length);
  });

  it('names the missing and unknown variables from details', () => {
    const missing = new ExecutionError('missing_variables', 'm', { details: { missing: ['audience', 'tone'] } });
    expect(describeError(missing).detail).toBe('Fill in: audience, tone.');
    const unknown = new ExecutionError('unknown_variables', 'm', { details: { unknown: ['zzz'] } });
    expect(describeError(unknown).detail).toContain('zzz');
  });

  it('names the label a run asked for that the prompt lacks', () => {
    const error = new ExecutionError('version_not_found', 'm', { details: { label: 'production' } });
    expect(describeError(error).detail).toBe('The prompt has no label “production”.');
    expect(describeError(new ExecutionError('version_not_found', 'No version 4.')).detail).toBe('No version 4.');
  });

  it('shows Retry-After for rate limits', () => {
    const error = new ExecutionError('rate_limited', 'm', { status: 429, retryAfter: 30 });
    expect(describeError(error).detail).toContain('30 s');
  });

  it("says whose rate limit it is in the server's words, ending in one full stop", () => {
    const own = new ExecutionError('rate_limited', 'Too many executions: at most 20 at once and 60 a minute', { status: 429, retryAfter: 3 });
    expect(describeError(own).detail).toBe('Too many executions: at most 20 at once and 60 a minute. Try again in 3 s.');
    const upstream = new ExecutionError('rate_limited', 'Provider throttled.', { status: 429, retryAfter: null });
    expect(describeError(upstream, 'document').detail).toBe('Provider throttled. Try again shortly.');
  });

  it('falls back to the server message for an unknown code', () => {
    expect(describeError(new ExecutionError('brand_new', 'Something new'))).toEqual({
      title: 'Request failed',
      detail: 'Something new',
    });
  });
});

describe('parseRetryAfter', () => {
  it.each([
    [null, null],
    ['', null],
    ['7', 7],
    ['1.2', 2],
    ['soon', null],
  ])('%j -> %j', (value, expected) => {
    expect(parseRetryAfter(value)).toBe(expected);
  });

  it('reads an HTTP date relative to now', () => {
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:30 GMT', now)).toBe(30);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now)).toBe(0);
  });
});
