/**
 * The HTTP app: middleware, routes, and the two places that build error bodies (notFound and
 * onError). Built from explicit deps so tests drive it with app.request() or a real server.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { routePath } from 'hono/route';
import { DependencyUnavailableError, errorBody, INTERNAL_ERROR_MESSAGE, isSbxError, RateLimitedError } from '../../core/src/errors.ts';
import { countFinished } from '../../core/src/metrics.ts';
import type { AppDeps, AppEnv } from './deps.ts';
import { auth } from './middleware/auth.ts';
import { loopbackHostOnly } from './middleware/loopback-host.ts';
import { openRequests } from './middleware/open-requests.ts';
import { requestRate } from './middleware/request-rate.ts';
import { TenantRequestRate } from './tenant-request-rate.ts';
import { validationError } from './middleware/json-body.ts';
import { registerOpenApi } from './openapi.ts';
import { isRedisOutage } from './redis-outage.ts';
import { registerHealth } from './routes/health.ts';
import { registerImages } from './routes/images.ts';
import { registerJobsAttach } from './routes/jobs-attach.ts';
import { registerJobsCancel } from './routes/jobs-cancel.ts';
import { registerJobsCreate } from './routes/jobs-create.ts';
import { registerJobsEvents } from './routes/jobs-events.ts';
import { registerJobsFiles } from './routes/jobs-files.ts';
import { registerJobsGet } from './routes/jobs-get.ts';
import { registerJobsList } from './routes/jobs-list.ts';
import { registerReceiptKeys } from './routes/receipt-keys.ts';
import { registerWorkersList } from './routes/workers-list.ts';
import { JSON_CONTENT_TYPE } from './http-server.ts';

export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  // Query, path and body validation of every route (app.openapi) answers with our error envelope.
  const app = new OpenAPIHono<AppEnv>({ defaultHook: (result) => { if (!result.success) throw validationError(result.error); } });
  // Metrics read at scrape time, and jobs this API finishes (cancel while queued, worker_lost).
  deps.metrics.queueDepth.source = () => deps.queue.depth();
  deps.store.onFinished((doc, tenant) => countFinished(deps.metrics, doc, tenant));

  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    // Hono's c.json() says application/json alone; api.md names the charset.
    if (c.res.headers.get('content-type') === 'application/json') c.res.headers.set('content-type', JSON_CONTENT_TYPE);
    const route = routePath(c) || 'unmatched';
    deps.metrics.requests.inc({ method: c.req.method, route, status: c.res.status });
    deps.metrics.requestSeconds.observe({ method: c.req.method, route }, (performance.now() - started) / 1000);
  });
  const env = deps.config.env;
  if (env.SBX_API_KEYS.length === 0 && !env.SBX_API_ALLOWED_HOSTS.includes('*')) app.use('*', loopbackHostOnly(env.SBX_API_ALLOWED_HOSTS)); // P64: no DNS rebinding into an open API
  app.use('/v1/*', auth(env.SBX_API_KEYS, deps.config.quotas));
  app.use('/v1/*', requestRate(new TenantRequestRate({ redis: deps.redis, keys: deps.keys, logger: deps.logger }))); // 429 past the tenant's `requestsPerSecond`
  app.use('/v1/*', openRequests(deps.requests)); // 429 past the tenant's `requests` open at once

  registerHealth(app, deps);
  registerJobsCreate(app, deps);
  registerJobsList(app, deps);
  registerJobsGet(app, deps);
  registerJobsFiles(app, deps);
  registerJobsEvents(app, deps);
  registerJobsAttach(app, deps);
  registerJobsCancel(app, deps);
  registerWorkersList(app, deps);
  registerReceiptKeys(app, deps);
  registerImages(app, deps);
  registerOpenApi(app);

  app.notFound((c) => c.json(errorBody('not_found', `no route ${c.req.method} ${c.req.path}; see /docs`), 404));
  app.onError((err, c) => {
    if (isRedisOutage(err, deps.redis)) {
      deps.logger.error({ err }, 'Redis unreachable or cannot serve now');
      err = new DependencyUnavailableError('Redis is unreachable or cannot serve now; retry shortly', err);
    }
    if (isSbxError(err)) {
      if (err.code === 'rate_limited') c.header('Retry-After', String(err instanceof RateLimitedError ? err.retryAfterSeconds : 1));
      // Redis down, loading or full: retryable, and said so in the header clients already read for 429 (client/src/errors.ts).
      if (err.code === 'dependency_unavailable') c.header('Retry-After', '1');
      return c.json(err.toBody(), err.status as 400);
    }
    deps.logger.error({ err, path: c.req.path }, 'unhandled error');
    return c.json(errorBody('internal', INTERNAL_ERROR_MESSAGE), 500);
  });
  return app;
}
