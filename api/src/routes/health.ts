import type { Hono } from 'hono';
import { SbxError } from '../../../core/src/errors.ts';
import type { AppDeps, AppEnv } from '../deps.ts';

/** GET /healthz (process up), /readyz (Redis answers), /metrics (Prometheus text). */
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
  app.get('/metrics', async (c) => c.text(await deps.registry.metrics(), 200, { 'Content-Type': deps.registry.contentType }));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
}
