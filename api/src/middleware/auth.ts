/**
 * Bearer API keys → tenant. With no keys configured the API is open and every caller is the
 * `default` tenant (main.ts logs a warning at start).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { ApiKey } from '../../../core/src/config.ts';
import { SbxError } from '../../../core/src/errors.ts';
import type { AppEnv } from '../deps.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function auth(keys: ApiKey[]): MiddlewareHandler<AppEnv> {
  const table = keys.map((k) => ({ hash: digest(k.key), tenant: k.tenant }));
  return async (c, next) => {
    if (table.length === 0) {
      c.set('tenant', 'default');
      return next();
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    const presented = m ? digest(m[1]!) : null;
    const match = presented && table.find((k) => timingSafeEqual(k.hash, presented));
    if (!match) throw new SbxError('unauthorized', 'send a valid API key as "Authorization: Bearer <key>"');
    c.set('tenant', match.tenant);
    return next();
  };
}
