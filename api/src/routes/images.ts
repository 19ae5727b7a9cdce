import type { Hono } from 'hono';
import { z } from 'zod';
import { InvalidRequestError } from '../../../core/src/errors.ts';
import { parseImageReference } from '../../../core/src/image-ref.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { readJsonBody } from '../middleware/json-body.ts';

const PrePull = z.strictObject({ image: z.string().min(1, 'is required').max(512) });
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * GET /v1/images — what the live workers have cached (from their heartbeats);
 * POST /v1/images — pre-pull on every live worker; DELETE /v1/images/{digest} — evict everywhere.
 */
export function registerImages(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/v1/images', async (c) => {
    const byDigest = new Map<string, { image: string; digest: string; sizeBytes: number; workers: string[]; lastUsedAt: string }>();
    for (const w of await deps.workers.list()) {
      for (const img of w.images) {
        const key = `${img.image}@${img.digest}`;
        const row = byDigest.get(key) ?? { image: img.image, digest: img.digest, sizeBytes: img.sizeBytes, workers: [], lastUsedAt: img.lastUsedAt };
        row.workers.push(w.id);
        if (img.lastUsedAt > row.lastUsedAt) row.lastUsedAt = img.lastUsedAt;
        byDigest.set(key, row);
      }
    }
    return c.json({ items: [...byDigest.values()].sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt)) });
  });

  app.post('/v1/images', async (c) => {
    const body = await readJsonBody(c, PrePull, deps.config.env.SBX_BODY_LIMIT_BYTES);
    const ref = parseImageReference(body.image);
    const workers = (await deps.workers.list()).map((w) => w.id);
    await deps.redis.publish(deps.keys.control(), JSON.stringify({ type: 'pull', image: ref.canonical }));
    return c.json({ image: ref.canonical, workers }, 202);
  });

  app.delete('/v1/images/:digest', async (c) => {
    const digest = c.req.param('digest');
    if (!DIGEST.test(digest)) throw new InvalidRequestError('digest must look like sha256:<64 hex digits>', [{ path: 'digest', message: 'is not a sha256 digest' }]);
    const workers = (await deps.workers.list()).map((w) => w.id);
    await deps.redis.publish(deps.keys.control(), JSON.stringify({ type: 'evict', digest }));
    return c.json({ digest, workers }, 202);
  });
}
