/**
 * Bearer API keys → tenant, role and quota. With no keys configured (anonymous mode: the API then
 * listens on loopback only, unless allowed otherwise) every caller is the `default` tenant with the
 * admin role and no quota, as before keys existed. requireAdmin guards the fleet-wide operations.
 */
import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { ApiKey, TenantQuota } from '../../../core/src/config.ts';
import { ForbiddenError, SbxError } from '../../../core/src/errors.ts';
import type { AppEnv } from '../deps.ts';

/**
 * Keys are looked up by their SHA-256: one map lookup whatever the number of keys (a linear scan cost
 * an unauthenticated request 0.6 ms of CPU with 10,000 keys), and nothing to learn from its timing:
 * the digest of a guess says nothing of the keys near it.
 */
const digest = (s: string) => createHash('sha256').update(s).digest('hex');

export function auth(keys: ApiKey[], quotas: Map<string, TenantQuota>): MiddlewareHandler<AppEnv> {
  const table = new Map(keys.map((k) => [digest(k.key), { tenant: k.tenant, role: k.role }]));
  return async (c, next) => {
    if (table.size === 0) {
      c.set('tenant', 'default');
      c.set('role', 'admin');
      c.set('quota', null);
      return next();
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    const key = m ? m[1]! : webSocketKey(c.req.raw.headers, c.req.url);
    const match = key ? table.get(digest(key)) : undefined;
    if (!match) throw new SbxError('unauthorized', 'send a valid API key as "Authorization: Bearer <key>"');
    c.set('tenant', match.tenant);
    c.set('role', match.role);
    c.set('quota', quotas.get(match.tenant) ?? null);
    return next();
  };
}

/**
 * Browsers cannot set headers on a WebSocket: a WebSocket upgrade (only) may carry the key as a
 * subprotocol `sbx.bearer.<key>` (offer it after `sbx.v1`, which the server echoes) or as `?token=`.
 */
function webSocketKey(headers: Headers, url: string): string | null {
  if (headers.get('upgrade')?.toLowerCase() !== 'websocket') return null;
  for (const p of (headers.get('sec-websocket-protocol') ?? '').split(',')) {
    const t = p.trim();
    if (t.startsWith('sbx.bearer.') && t.length > 11) return t.slice(11);
  }
  return new URL(url).searchParams.get('token');
}

/** 403 `forbidden` unless the caller's key has the admin role (after auth). */
export function requireAdmin(what: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.get('role') !== 'admin') throw new ForbiddenError(what);
    return next();
  };
}
