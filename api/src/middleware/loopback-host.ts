/**
 * An API without keys answers only requests addressed to this machine (P64). It listens on loopback
 * then (listen-policy.ts), or behind a loopback-only port mapping (SBX_ALLOW_ANONYMOUS), but a web
 * page the developer opens can still reach it: its script resolves the page's own domain once to
 * the page's server, then (DNS rebinding) to 127.0.0.1, and talks to the API as the page's own
 * origin, so the browser lets it read every answer. It could run jobs, read every job's output and
 * evict images: anonymous callers are admins. Such requests carry the page's name in `Host`; a local
 * client's carry 127.0.0.1, localhost or [::1]. SBX_API_ALLOWED_HOSTS adds names an operator serves
 * it under ('*': any). With SBX_API_KEYS an attacker would need a key: `Host` is not looked at.
 */
import type { MiddlewareHandler } from 'hono';
import { SbxError } from '../../../core/src/errors.ts';
import { hostHeaderName, isLoopbackName } from '../../../core/src/loopback-names.ts';
import type { AppEnv } from '../deps.ts';

/** `allowed`: SBX_API_ALLOWED_HOSTS (lowercase names; '*' turns the check off). */
export function loopbackHostOnly(allowed: readonly string[]): MiddlewareHandler<AppEnv> {
  const names = new Set(allowed);
  return async (c, next) => {
    const host = c.req.header('host');
    const name = host === undefined ? null : hostHeaderName(host);
    if (name !== null && !isLoopbackName(name) && !names.has(name)) {
      throw new SbxError('forbidden', `this API has no keys, so it answers only requests addressed to this machine (Host 127.0.0.1, localhost or [::1]) or to SBX_API_ALLOWED_HOSTS, not ${JSON.stringify(host!.slice(0, 100))}: a web page can reach a local API under its own name by DNS rebinding; configure SBX_API_KEYS, or name the host in SBX_API_ALLOWED_HOSTS`);
    }
    return next();
  };
}
