import type { Hono } from 'hono';
import { z } from 'zod';
import { publishControl } from '../../../core/src/control-messages.ts';
import { InvalidRequestError } from '../../../core/src/errors.ts';
import { parseImageReference } from '../../../core/src/image-ref.ts';
import { TenantQuotas, tenantQuotaOptions } from '../../../core/src/tenant-quota.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { requireAdmin } from '../middleware/auth.ts';
import { readJsonBody } from '../middleware/json-body.ts';

const PrePull = z.strictObject({ image: z.string().min(1, 'is required').max(512) });
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * GET /v1/images — what the live workers have cached (from their heartbeats); a tenant key sees only
 * the images its own jobs used (recorded at submission), an admin key all of them.
 * POST /v1/images — pre-pull on every live worker; DELETE /v1/images/{digest} — evict everywhere:
 * both fleet-wide, so admin keys only.
 */
export function registerImages(app: Hono<AppEnv>, deps: AppDeps): void {
  const quotas = new TenantQuotas(deps.redis, deps.keys, tenantQuotaOptions(deps.config));
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
    let items = [...byDigest.values()];
    if (c.get('role') !== 'admin') {
      const used = await quotas.imagesUsed(c.get('tenant'), [...new Set(items.map((i) => i.image))]);
      items = items.filter((i) => used.has(i.image));
    }
    return c.json({ items: items.sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt)) });
  });

  app.post('/v1/images', requireAdmin('POST /v1/images (pre-pull on every worker)'), async (c) => {
    const body = await readJsonBody(c, PrePull, deps.config.env.SBX_BODY_LIMIT_BYTES);
    const ref = parseImageReference(body.image);
    const workers = (await deps.workers.list()).map((w) => w.id);
    await publishControl(deps.redis, deps.keys, { type: 'pull', image: ref.canonical });
    return c.json({ image: ref.canonical, workers }, 202);
  });

  app.delete('/v1/images/:digest', requireAdmin('DELETE /v1/images/{digest} (evict from every worker)'), async (c) => {
    const digest = c.req.param('digest');
    if (!DIGEST.test(digest)) throw new InvalidRequestError('digest must look like sha256:<64 hex digits>', [{ path: 'digest', message: 'is not a sha256 digest' }]);
    const workers = (await deps.workers.list()).map((w) => w.id);
    await publishControl(deps.redis, deps.keys, { type: 'evict', digest });
    return c.json({ digest, workers }, 202);
  });
}
