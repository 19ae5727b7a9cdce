/**
 * Every error sbx raises on purpose is an SbxError: a stable snake_case `code` (branch on it, never
 * on `message`), a one-sentence `message` saying what to fix, optional field `details`, and `cause`.
 * The HTTP status for each code lives in one table, ERROR_STATUS, used only by the API edge.
 */

export interface ErrorDetail {
  path: string;
  message: string;
}

export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  already_finished: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  request_timeout: 408, // the request itself was not sent in time (P46; api/src/http-server.ts)
  headers_too_large: 431, // the request's header block is over Node's limit (api/src/http-server.ts)
  rate_limited: 429,
  dependency_unavailable: 503,
  internal: 500,
  // Job failure codes (error.code inside a job document; not HTTP answers by themselves).
  image_not_found: 422,
  image_pull_failed: 502,
  registry_unauthorized: 502,
  invalid_image: 422,
  egress_refused: 403,
  command_not_found: 422,
  worker_lost: 500,
  host_unsupported: 503,
  launch_failed: 500,
  host_exhausted: 503, // the worker's host ran out of open files or processes starting the job (worker/src/launch-errors.ts)
  idle_timeout: 408, // an interactive job's limits.idleTimeoutMs passed with nothing attached or written
  output_idle_timeout: 408, // limits.outputIdleTimeoutMs passed with no output from the job
  exceeds_capacity: 422, // limits.memoryBytes above every live worker's SBX_JOBS_MEMORY_BYTES (worker/src/placement)
  worker_outdated: 503, // the stored request has fields or values a newer API wrote and this worker does not know
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: ErrorDetail[] };
}

/** What a client is told of an error of ours (the error itself goes to the log). */
export const INTERNAL_ERROR_MESSAGE = 'an internal error occurred; it has been logged';

/** The one error body of every API answer and the SSE `error` event (api.md "Errors"). */
export function errorBody(code: ErrorCode, message: string, details: ErrorDetail[] = []): ErrorBody {
  return { error: { code, message, details } };
}

export class SbxError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[];
  /** Whether retrying the same work later may succeed (infra fault) or never will (user's fault). */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, opts: { details?: ErrorDetail[]; cause?: unknown; retryable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = opts.details ?? [];
    this.retryable = opts.retryable ?? false;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toBody(): ErrorBody {
    return errorBody(this.code, this.message, this.details);
  }
}

/** 400: the request is malformed or a field is invalid. */
export class InvalidRequestError extends SbxError {
  constructor(message: string, details: ErrorDetail[] = []) {
    super('invalid_request', message, { details });
  }
}

export class NotFoundError extends SbxError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class AlreadyFinishedError extends SbxError {
  constructor(id: string, status: string) {
    super('already_finished', `job ${id} already finished with status ${status}; only queued or running jobs can be cancelled`);
  }
}

/**
 * 409: an idempotencyKey whose job ran within its 24 h but whose record has expired since
 * (SBX_JOB_TTL_SECONDS): the job is not run a second time, and cannot be shown either.
 */
export class IdempotentJobExpiredError extends SbxError {
  constructor(id: string, ttlSeconds: number) {
    super('already_finished', `this idempotencyKey already ran job ${id}, whose record has expired (records are kept ${ttlSeconds} s after their job ends); the key holds for 24 h, so send a new key to run again`);
  }
}

/** 403: a valid key whose role may not do this (fleet-wide operations are for admin keys). */
export class ForbiddenError extends SbxError {
  constructor(what: string) {
    super('forbidden', `${what} needs an admin API key; this key's role is tenant`);
  }
}

/** 429: a tenant quota (jobs at once, submissions per second) is used up; retry after `retryAfterSeconds`. */
export class RateLimitedError extends SbxError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('rate_limited', message, { retryable: true });
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}

/** 503: a service the API needs (Redis) does not answer. */
export class DependencyUnavailableError extends SbxError {
  constructor(message: string, cause?: unknown) {
    super('dependency_unavailable', message, { cause, retryable: true });
  }
}

// ---- Image store errors (worker/src/images) ----

/** The registry says the repository, tag or digest does not exist. */
export class ImageNotFoundError extends SbxError {
  constructor(reference: string, cause?: unknown) {
    super('image_not_found', `image ${reference} was not found in its registry; check the name and tag`, { cause });
  }
}

/** The registry refused our credentials (or anonymous access). */
export class RegistryUnauthorizedError extends SbxError {
  constructor(registry: string, detail: string, cause?: unknown) {
    super('registry_unauthorized', `registry ${registry} refused access: ${detail}`, { cause });
  }
}

/** Transport or server failure while pulling; retryable. `detail` carries the registry's own message. */
export class ImagePullFailedError extends SbxError {
  constructor(reference: string, detail: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super('image_pull_failed', `pulling ${reference} failed: ${detail}`, { cause: opts.cause, retryable: opts.retryable ?? true });
  }
}

/** The image itself is unusable: bad manifest, digest mismatch, no matching platform, unsafe layer. */
export class InvalidImageError extends SbxError {
  constructor(reference: string, detail: string, cause?: unknown) {
    super('invalid_image', `image ${reference} is invalid: ${detail}`, { cause });
  }
}

/**
 * An outbound connection (registry, redirect, token server, mirror, webhook) to an address that is
 * not public, or is one of the host's own, and is not allow-listed. Raised before connecting, with
 * one message whatever the port, whatever listens there and whichever of the two it is, so that it
 * tells nothing about the network behind it.
 */
export class EgressRefusedError extends SbxError {
  constructor(host: string) {
    const shown = host.length > 100 ? `${host.slice(0, 100)}…` : host;
    super('egress_refused', `connecting to ${shown} is refused: it is not a public address, or it is one of this host's own (loopback, private, link-local and other special-purpose addresses, and the host's own, need an SBX_EGRESS_ALLOW entry)`);
  }
}

// ---- Launch errors (native launcher; mapped from its LaunchError in worker/src/launch-errors.ts) ----

/** The command (or entrypoint) is missing in the image or not executable: the job's own fault. */
export class CommandNotFoundError extends SbxError {
  constructor(command: string, detail = 'no such file or not executable in the image') {
    super('command_not_found', `command ${JSON.stringify(command)} could not be started: ${detail}`);
  }
}

/** The host lacks something the launcher needs (a cgroup controller, a namespace kind): not the job's fault. */
export class HostUnsupportedError extends SbxError {
  constructor(missing: string[]) {
    super('host_unsupported', `this host cannot run jobs: ${missing.join('; ')}`);
  }
}

/**
 * The worker's host ran out of something starting the job (open files, processes): the host's
 * state at that moment, not the job's fault; its command did not run, and it may be submitted again.
 */
export class HostExhaustedError extends SbxError {
  /** `resource`: what ran out and the errno that said so, e.g. "open files (EMFILE: …)". */
  constructor(resource: string, cause?: unknown) {
    super('host_exhausted', `the worker ran out of ${resource} starting this job; its command did not run: submit it again`, { cause, retryable: true });
  }
}

/** Any other failure starting the job (a system call failed: an errno name in the cause); retryable. */
export class LaunchFailedError extends SbxError {
  constructor(message: string, cause?: unknown) {
    super('launch_failed', message, { cause, retryable: true });
  }
}

/**
 * The job's stored request has fields or values this worker does not know: a newer API accepted it
 * (a rolling deploy that upgraded API copies before workers). Running it without them would drop
 * what they ask for, so nothing of it runs.
 */
export class WorkerOutdatedError extends SbxError {
  constructor(worker: string, unknown: string[]) {
    super('worker_outdated', `this job asks for ${unknown.join(', ')}, which worker ${worker} does not know (a newer version of sbx accepted it); nothing of it ran: upgrade the workers before the API copies, then submit it again`);
  }
}

// ---- Placement (worker/src/placement) ----

/** The job's limits.memoryBytes is more than any live worker may give all its jobs together: it could never start. */
export class ExceedsCapacityError extends SbxError {
  constructor(memoryBytes: number, largestBudget: number) {
    super('exceeds_capacity', `limits.memoryBytes ${memoryBytes} is above the job memory budget (SBX_JOBS_MEMORY_BYTES) of every live worker (largest: ${largestBudget}); ask for less memory or add a larger worker`);
  }
}

export function isSbxError(e: unknown): e is SbxError {
  return e instanceof SbxError;
}
