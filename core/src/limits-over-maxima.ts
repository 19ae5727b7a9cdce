/**
 * Which of a job's limits are above a limits policy's maxima: the API refuses such a request (400),
 * and a worker refuses such a stored spec, which no API of the deployment wrote (SECURITY.md P67).
 */
import type { LimitsPolicy } from './config.ts';
import type { Limits } from './job-spec.ts';
import { STOP_GRACE_BOUND } from './launch-bounds.ts';

export interface LimitOverMaximum {
  /** The field under `limits`. */
  name: keyof Limits;
  value: number;
  max: number;
  /** The SBX_MAX_* variable that sets `max` (a tenant's quota may lower it). */
  variable: string;
}

const VARIABLES: Record<keyof LimitsPolicy['maxima'], string> = {
  memoryBytes: 'SBX_MAX_MEMORY_BYTES', cpus: 'SBX_MAX_CPUS', pids: 'SBX_MAX_PIDS', timeoutMs: 'SBX_MAX_TIMEOUT_MS',
  outputBytes: 'SBX_MAX_OUTPUT_BYTES', diskBytes: 'SBX_MAX_DISK_BYTES', openFiles: 'SBX_MAX_OPEN_FILES', cpuTimeMs: 'SBX_MAX_CPU_TIME_MS',
};

/** The policy's idle maximum when it names none (config.ts: SBX_MAX_IDLE_TIMEOUT_MS's default). */
export const IDLE_MAX_FALLBACK_MS = 3_600_000;

/** Each limit of `limits` above its maximum in `policy`, in the order of the policy's maxima. */
export function limitsOverMaxima(limits: Limits, policy: LimitsPolicy): LimitOverMaximum[] {
  const over: LimitOverMaximum[] = [];
  for (const name of Object.keys(policy.maxima) as Array<keyof LimitsPolicy['maxima']>) {
    const value = limits[name];
    if (value !== null && value !== undefined && value > policy.maxima[name]) over.push({ name, value, max: policy.maxima[name], variable: VARIABLES[name] });
  }
  const idleMax = policy.idle?.maxMs ?? IDLE_MAX_FALLBACK_MS;
  if (limits.idleTimeoutMs != null && limits.idleTimeoutMs > idleMax) over.push({ name: 'idleTimeoutMs', value: limits.idleTimeoutMs, max: idleMax, variable: 'SBX_MAX_IDLE_TIMEOUT_MS' });
  const graceMax = policy.maxStopGraceMs ?? STOP_GRACE_BOUND.max;
  if ((limits.stopGraceMs ?? 0) > graceMax) over.push({ name: 'stopGraceMs', value: limits.stopGraceMs!, max: graceMax, variable: 'SBX_MAX_STOP_GRACE_MS' });
  return over;
}
