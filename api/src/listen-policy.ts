/**
 * Where the API may listen. Without API keys anyone who reaches it may run jobs, so an anonymous
 * API listens on loopback only unless the operator says otherwise (SBX_ALLOW_ANONYMOUS=true).
 */
import net from 'node:net';
import type { Env } from '../../core/src/config.ts';

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** 127.0.0.0/8, ::1, ::ffff:127.x.y.z and the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = net.isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** Why the API must not start with this configuration, or null. */
export function anonymousListenProblem(env: Pick<Env, 'SBX_API_HOST' | 'SBX_API_KEYS' | 'SBX_ALLOW_ANONYMOUS'>): string | null {
  if (env.SBX_API_KEYS.length > 0 || env.SBX_ALLOW_ANONYMOUS || isLoopbackHost(env.SBX_API_HOST)) return null;
  return `SBX_API_HOST=${env.SBX_API_HOST} is not a loopback address and no SBX_API_KEYS are configured: anyone who reaches it could run jobs; set SBX_API_KEYS, listen on 127.0.0.1, or set SBX_ALLOW_ANONYMOUS=true to run an open API on purpose`;
}
