import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { publishControl } from '../../../core/src/control-messages.ts';
import { InvalidRequestError } from '../../../core/src/errors.ts';
import { parseImageReference } from '../../../core/src/image-ref.ts';
import { Rfc3339 } from '../../../core/src/job-spec.ts';
import { TenantImages, tenantImageMember } from '../../../core/src/tenant-images.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { requireAdmin } from '../middleware/auth.ts';
import { jsonBody } from '../middleware/json-body.ts';
import { bodyErrors, errors, errorsNamingNoJob, forbidden, json } from '../openapi.ts';

const PrePull = z.strictObject({ image: z.string().min(1, 'is required').max(512) });
const DIGEST = /^sha256:[a-f0-9]{64}$/;

const CachedImage = z.object({ image: z.string(), digest: z.string(), sizeBytes: z.number(), workers: z.array(z.string()), lastUsedAt: Rfc3339() });

export const imagesListRoute = createRoute({
  method: 'get', path: '/v1/images', summary: 'Images cached on the workers (a tenant key: only those its own jobs used)', tags: ['images'],
  responses: { 200: json(z.object({ items: z.array(CachedImage) }), 'Cached images'), 401: errors[401], 429: errors[429], 503: errors[503] },
});

export const imagesPullRoute = createRoute({
  method: 'post', path: '/v1/images', summary: 'Pre-pull an image on every live worker (admin keys only)', tags: ['images'],
  request: { body: { required: true, content: { 'application/json': { schema: PrePull } } } },
  responses: { 202: json(z.object({ image: z.string(), workers: z.array(z.string()) }), 'Pull requested'), ...errorsNamingNoJob, 403: forbidden, ...bodyErrors },
});

export const imagesEvictRoute = createRoute({
  method: 'delete', path: '/v1/images/{digest}', summary: 'Evict an image from every worker cache (admin keys only); where a running job uses it, once that job has ended', tags: ['images'],
  request: { params: z.object({ digest: z.string().openapi({ example: `sha256:${'0'.repeat(64)}` }) }) },
  responses: { 202: json(z.object({ digest: z.string(), workers: z.array(z.string()) }), 'Eviction requested'), ...errorsNamingNoJob, 403: forbidden },
});

/**
 * GET /v1/images — what the live workers have cached (from their heartbeats); a tenant key sees only
 * the images its own jobs acquired, at the digests they got (tenant-images.ts), an admin key all of them.
 * POST /v1/images — pre-pull on every live worker; DELETE /v1/images/{digest} — evict everywhere:
 * both fleet-wide, so admin keys only.
 */
export function registerImages(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  const tenantImages = new TenantImages(deps.redis, deps.keys, deps.config.env.SBX_JOB_TTL_SECONDS);
  app.openapi(imagesListRoute, async (c) => {
    // A tenant's own images first (its set), so that only those of the fleet's are gathered.
    const used = c.get('role') === 'admin' ? null : await tenantImages.used(c.get('tenant'));
    const byDigest = new Map<string, { image: string; digest: string; sizeBytes: number; workers: string[]; lastUsedAt: string }>();
    for (const w of used?.size === 0 ? [] : await deps.workers.listShared()) {
      for (const img of w.images) {
        const key = tenantImageMember(img.image, img.digest);
        if (used && !used.has(key)) continue;
        const row = byDigest.get(key) ?? { image: img.image, digest: img.digest, sizeBytes: img.sizeBytes, workers: [], lastUsedAt: img.lastUsedAt };
        row.workers.push(w.id);
        if (img.lastUsedAt > row.lastUsedAt) row.lastUsedAt = img.lastUsedAt;
        byDigest.set(key, row);
      }
    }
    const items = [...byDigest.values()];
    return c.json({ items: items.sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt)) }, 200);
  });

  // The admin check first, then the body: a tenant key gets its 403 without the body being read.
  app.openapi({ ...imagesPullRoute, middleware: [requireAdmin('POST /v1/images (pre-pull on every worker)'), jsonBody(deps.config.env.SBX_BODY_LIMIT_BYTES)] }, async (c) => {
    const body = c.req.valid('json');
    const ref = parseImageReference(body.image);
    const workers = (await deps.workers.list()).map((w) => w.id);
    await publishControl(deps.redis, deps.keys, { type: 'pull', image: ref.canonical });
    return c.json({ image: ref.canonical, workers }, 202);
  });

  app.openapi({ ...imagesEvictRoute, middleware: [requireAdmin('DELETE /v1/images/{digest} (evict from every worker)')] }, async (c) => {
    const { digest } = c.req.valid('param');
    if (!DIGEST.test(digest)) throw new InvalidRequestError('digest must look like sha256:<64 hex digits>', [{ path: 'digest', message: 'is not a sha256 digest' }]);
    const workers = (await deps.workers.list()).map((w) => w.id);
    await publishControl(deps.redis, deps.keys, { type: 'evict', digest });
    return c.json({ digest, workers }, 202);
  });
}
