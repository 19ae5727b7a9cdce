/**
 * Where the API may listen. Without API keys anyone who reaches it may run jobs, so an anonymous
 * API listens on loopback only unless the operator says otherwise (SBX_ALLOW_ANONYMOUS=true).
 */
import type { Env } from '../../core/src/config.ts';
import { isLoopbackHost } from '../../core/src/loopback-names.ts';

/** Why the API must not start with this configuration, or null. */
export function anonymousListenProblem(env: Pick<Env, 'SBX_API_HOST' | 'SBX_API_KEYS' | 'SBX_ALLOW_ANONYMOUS'>): string | null {
  if (env.SBX_API_KEYS.length > 0 || env.SBX_ALLOW_ANONYMOUS || isLoopbackHost(env.SBX_API_HOST)) return null;
  return `SBX_API_HOST=${env.SBX_API_HOST} is not a loopback address and no SBX_API_KEYS are configured: anyone who reaches it could run jobs; set SBX_API_KEYS, listen on 127.0.0.1, or set SBX_ALLOW_ANONYMOUS=true to run an open API on purpose`;
}
