/**
 * Turning a validated JobRequest into the JobSpec the worker trusts: limits defaulted from config
 * and checked against the maxima (a value over the maximum is a 400, never silently lowered), the
 * image reference made canonical.
 */
import type { LimitsPolicy } from '../../core/src/config.ts';
import { InvalidRequestError, type ErrorDetail } from '../../core/src/errors.ts';
import { parseImageReference } from '../../core/src/image-ref.ts';
import type { JobRequest, JobSpec, Limits } from '../../core/src/job-spec.ts';

export function resolveLimits(requested: JobRequest['limits'], policy: LimitsPolicy): Limits {
  const limits: Limits = { ...policy.defaults, ...stripUndefined(requested ?? {}) };
  const details: ErrorDetail[] = [];
  for (const k of Object.keys(policy.maxima) as Array<keyof Limits>) {
    const v = limits[k];
    if (v !== null && v > policy.maxima[k]) details.push({ path: `limits.${k}`, message: `must be <= ${policy.maxima[k]} (${policy.tenantMaxima?.has(k) ? "this tenant's" : "this server's"} maximum)` });
  }
  if (details.length) throw new InvalidRequestError(`${details[0]!.path} ${details[0]!.message}`, details);
  return limits;
}

export function buildJobSpec(req: JobRequest, id: string, tenant: string, policy: LimitsPolicy, now: Date): JobSpec {
  const ref = parseImageReference(req.image);
  return {
    id,
    tenant,
    image: ref.canonical,
    command: req.command ?? null,
    entrypoint: req.entrypoint ?? null,
    env: req.env ?? {},
    workdir: req.workdir ?? null,
    user: req.user ?? null,
    stdin: req.stdin ?? null,
    limits: resolveLimits(req.limits, policy),
    network: req.network ?? 'none',
    labels: req.labels ?? {},
    registryAuth: req.registryAuth ?? null,
    callbackUrl: req.callbackUrl ?? null,
    createdAt: now.toISOString(),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
