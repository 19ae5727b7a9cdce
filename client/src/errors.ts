/**
 * Errors of the sbx HTTP API as typed classes. Every error answer has the body
 * `{ error: { code, message, details } }`; the class is chosen by the HTTP status family, the exact
 * `code` is kept as sent (branch on `code`, never on `message`). Codes the client does not know yet
 * still arrive as an SbxApiError with their own code and status.
 */
import type { ErrorCode, ErrorDetail } from '../../core/src/errors.ts';

/** A code of core/src/errors.ts, or one added to the API after this client was built. */
export type ApiErrorCode = ErrorCode | 'forbidden' | (string & {});

export interface ApiErrorInit {
  code: ApiErrorCode;
  message: string;
  status: number;
  details?: ErrorDetail[];
  /** Seconds from the `Retry-After` header (429, 503), or null. */
  retryAfter?: number | null;
  requestId?: string | null;
  cause?: unknown;
}

export class SbxApiError extends Error {
  readonly code: ApiErrorCode;
  /** The HTTP status; 0 when no answer came (SbxConnectionError). */
  readonly status: number;
  readonly details: ErrorDetail[];
  readonly retryAfter: number | null;
  readonly requestId: string | null;

  constructor(init: ApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.status = init.status;
    this.details = init.details ?? [];
    this.retryAfter = init.retryAfter ?? null;
    this.requestId = init.requestId ?? null;
  }
}

/** 400, 413, 415: the request is malformed or a field is invalid (`details` names the fields). */
export class SbxInvalidRequestError extends SbxApiError {}
/** 401: a missing or wrong API key. */
export class SbxUnauthorizedError extends SbxApiError {}
/** 403: not allowed (`forbidden`, `egress_refused`). */
export class SbxForbiddenError extends SbxApiError {}
/** 404: no such job or image for this tenant. */
export class SbxNotFoundError extends SbxApiError {}
/** 409: the state does not allow it (`already_finished`, `conflict`). */
export class SbxConflictError extends SbxApiError {}
/** 429: quota or rate limit; `retryAfter` says when to try again. */
export class SbxRateLimitedError extends SbxApiError {}
/** 5xx: the service or one of its dependencies failed; retrying later may succeed. */
export class SbxUnavailableError extends SbxApiError {}
/** No HTTP answer at all: the API is unreachable, the connection broke, or the request timed out. */
export class SbxConnectionError extends SbxApiError {}

type ErrorClass = new (init: ApiErrorInit) => SbxApiError;

function classFor(status: number): ErrorClass {
  if (status === 401) return SbxUnauthorizedError;
  if (status === 403) return SbxForbiddenError;
  if (status === 404) return SbxNotFoundError;
  if (status === 409) return SbxConflictError;
  if (status === 429) return SbxRateLimitedError;
  if (status >= 500) return SbxUnavailableError;
  if (status >= 400) return SbxInvalidRequestError;
  return SbxApiError;
}

/** `Retry-After` as seconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The typed error for a non-2xx answer; a body that is not the error envelope still gives a useful message. */
export function apiErrorFromAnswer(status: number, body: unknown, headers: Headers): SbxApiError {
  const envelope = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  const code = typeof envelope?.code === 'string' ? envelope.code : `http_${status}`;
  const message = typeof envelope?.message === 'string' ? envelope.message : `the API answered ${status}${typeof body === 'string' && body ? `: ${body.slice(0, 200)}` : ''}`;
  const details = Array.isArray(envelope?.details) ? (envelope.details as ErrorDetail[]) : [];
  const Class = classFor(status);
  return new Class({ code, message, status, details, retryAfter: parseRetryAfter(headers.get('retry-after')), requestId: headers.get('x-request-id') });
}

export function connectionError(baseUrl: string, cause: unknown): SbxConnectionError {
  const e = cause as { code?: string; message?: string } | null;
  const why = e?.code && e.code !== 'UND_ERR_SOCKET' ? e.code : (e?.message ?? String(cause));
  return new SbxConnectionError({ code: 'connection_failed', message: `cannot reach the sbx API at ${baseUrl}: ${why}`, status: 0, cause });
}
