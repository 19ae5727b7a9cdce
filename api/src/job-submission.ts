/**
 * Turning a validated JobRequest into the JobSpec the worker trusts: limits defaulted from config
 * and checked against the maxima (a value over the maximum is a 400, never silently lowered), the
 * image reference made canonical.
 */
import type { LimitsPolicy } from '../../core/src/config.ts';
import { InvalidRequestError, type ErrorDetail } from '../../core/src/errors.ts';
import { parseImageReference } from '../../core/src/image-ref.ts';
import { inputFileBytes, type JobRequest, type JobSpec, type Limits } from '../../core/src/job-spec.ts';
import { EXEC_BOUNDS, execBytes } from '../../core/src/launch-bounds.ts';
import { IDLE_MAX_FALLBACK_MS, limitsOverMaxima } from '../../core/src/limits-over-maxima.ts';

/** The policy's defaults under what the request asks. */
function withDefaults(requested: JobRequest['limits'], policy: LimitsPolicy): Limits {
  return { ...policy.defaults, ...stripUndefined(requested ?? {}) };
}

/** A 400 naming every limit above its maximum (a worker checks the same again: core/src/limits-over-maxima.ts). */
function checkMaxima(limits: Limits, policy: LimitsPolicy): void {
  const whose = (name: string) => (policy.tenantMaxima?.has(name as keyof LimitsPolicy['maxima']) ? "this tenant's" : "this server's");
  const details: ErrorDetail[] = limitsOverMaxima(limits, policy).map((o) => ({ path: `limits.${o.name}`, message: `must be <= ${o.max} (${whose(o.name)} maximum)` }));
  if (details.length) throw new InvalidRequestError(`${details[0]!.path} ${details[0]!.message}`, details);
}

export function buildJobSpec(req: JobRequest, id: string, tenant: string, policy: LimitsPolicy, now: Date): JobSpec {
  const ref = parseImageReference(req.image);
  checkExecSize(req);
  const asked = { ...withDefaults(req.limits, policy), ...resolveIdleTimeout(req, policy) };
  checkMaxima(asked, policy);
  const limits = withOutputTail(asked);
  checkNetwork(req, policy);
  return {
    id,
    tenant,
    image: ref.canonical,
    ...(req.pull === 'always' ? { pull: 'always' as const } : {}),
    command: req.command ?? null,
    entrypoint: req.entrypoint ?? null,
    env: req.env ?? {},
    workdir: req.workdir ?? null,
    user: req.user ?? null,
    stdin: req.stdin ?? null,
    ...interactiveFields(req),
    ...inputFiles(req, limits),
    ...(req.outputFiles?.length ? { outputFiles: req.outputFiles } : {}),
    limits,
    ...(req.stopSignal ? { stopSignal: req.stopSignal } : {}),
    network: req.network ?? 'none',
    ...(req.egressHosts ? { egressHosts: req.egressHosts.map((h) => h.toLowerCase()) } : {}),
    labels: req.labels ?? {},
    registryAuth: req.registryAuth ?? null,
    callbackUrl: req.callbackUrl ?? null,
    createdAt: now.toISOString(),
  };
}

/** network "egress" only where the server allows it; egressHosts only with it. */
function checkNetwork(req: JobRequest, policy: LimitsPolicy): void {
  const off = policy.jobEgress === false ? 'this server does not let jobs reach the network (SBX_JOB_EGRESS=false)'
    : policy.tenantJobEgress === false ? 'this tenant\'s jobs may not reach the network (its quota says jobEgress: false)' : null;
  if (req.network === 'egress' && off) {
    const message = `must be "none": ${off}`;
    throw new InvalidRequestError(`network ${message}`, [{ path: 'network', message }]);
  }
  if (req.egressHosts && req.network !== 'egress') {
    const message = 'needs network "egress" (without it the job has no network at all)';
    throw new InvalidRequestError(`egressHosts ${message}`, [{ path: 'egressHosts', message }]);
  }
}

/**
 * The command, entrypoint and env together within their share of what execve(2) takes
 * (EXEC_BOUNDS): past it the kernel refuses to start the job (E2BIG) after it was queued.
 */
function checkExecSize(req: JobRequest): void {
  let total = 0;
  for (const s of [...(req.command ?? []), ...(req.entrypoint ?? [])]) total += execBytes(s);
  for (const [k, v] of Object.entries(req.env ?? {})) total += execBytes(`${k}=${v}`);
  if (total <= EXEC_BOUNDS.totalBytes) return;
  const message = `command, entrypoint and env together must be at most ${EXEC_BOUNDS.totalBytes} bytes (UTF-8, each string counted with 9 bytes more: its NUL and pointer); these are ${total}`;
  throw new InvalidRequestError(message, [{ path: 'command', message }]);
}

/**
 * The request's files with their modes as numbers; absent when there are none (the stored spec is
 * as before). Their bytes are written into the job's writable layer: more than limits.diskBytes
 * could never be written, so it is refused here rather than after the job waited for a slot.
 */
function inputFiles(req: JobRequest, limits: Limits): Pick<JobSpec, 'files'> {
  if (!req.files?.length) return {};
  const files = req.files.map((f) => ({
    path: f.path,
    content: f.content,
    encoding: f.encoding ?? 'utf8',
    mode: typeof f.mode === 'string' ? parseInt(f.mode, 8) : (f.mode ?? 0o644),
  }));
  const bytes = files.reduce((n, f) => n + inputFileBytes(f), 0);
  if (bytes > limits.diskBytes) {
    const message = `the files hold ${bytes} bytes, more than limits.diskBytes (${limits.diskBytes}), the room the job has to write them`;
    throw new InvalidRequestError(`files: ${message}`, [{ path: 'files', message }]);
  }
  return { files };
}

/** limits.outputTailBytes: part of outputBytes, so at most it; absent when 0 (the stored spec is as before). */
function withOutputTail(limits: Limits): Limits {
  const { outputTailBytes, ...rest } = limits;
  if (!outputTailBytes) return rest;
  if (outputTailBytes > limits.outputBytes) {
    const message = `must be <= limits.outputBytes (${limits.outputBytes}): the tail is the part of each stream's outputBytes kept from its end`;
    throw new InvalidRequestError(`limits.outputTailBytes ${message}`, [{ path: 'limits.outputTailBytes', message }]);
  }
  return { ...rest, outputTailBytes };
}

/** Docker's -i / -t; absent on non-interactive jobs (their stored spec is as before). */
function interactiveFields(req: JobRequest): Pick<JobSpec, 'openStdin' | 'tty' | 'ttySize'> {
  if (!req.openStdin && !req.tty) return {};
  return { openStdin: !!req.openStdin, tty: !!req.tty, ttySize: req.tty ? (req.ttySize ?? { rows: 24, cols: 80 }) : null };
}

const IDLE_FALLBACK = { defaultMs: 300_000, maxMs: IDLE_MAX_FALLBACK_MS };

/** limits.idleTimeoutMs: interactive jobs only (defaulted; its maximum is checked with the others); others have none. */
function resolveIdleTimeout(req: JobRequest, policy: LimitsPolicy): Pick<Limits, 'idleTimeoutMs'> {
  const idle = policy.idle ?? IDLE_FALLBACK;
  const asked = req.limits?.idleTimeoutMs;
  if (!req.openStdin && !req.tty) {
    if (asked !== undefined) throw new InvalidRequestError('limits.idleTimeoutMs applies to interactive jobs only (openStdin or tty)', [{ path: 'limits.idleTimeoutMs', message: 'needs openStdin or tty' }]);
    return {};
  }
  return { idleTimeoutMs: asked ?? Math.min(idle.defaultMs, idle.maxMs) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
