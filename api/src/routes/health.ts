import type { Hono } from 'hono';
import { SbxError } from '../../../core/src/errors.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { auth, requireAdmin } from '../middleware/auth.ts';

/** GET /healthz (process up), /readyz (Redis answers), /metrics (Prometheus text, admin keys only). */
export function registerHealth(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await withTimeout(deps.redis.ping(), 1000);
    } catch (e) {
      throw new SbxError('dependency_unavailable', 'Redis is unreachable; the API cannot accept jobs', { cause: e });
    }
    return c.json({ status: 'ready' });
  });
  // Fleet-wide figures: admin keys only (open in anonymous mode); /healthz and /readyz stay open.
  app.get('/metrics', auth(deps.config.env.SBX_API_KEYS, deps.config.quotas), requireAdmin('GET /metrics'), async (c) =>
    c.text(await deps.registry.metrics(), 200, { 'Content-Type': deps.registry.contentType }));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
}
