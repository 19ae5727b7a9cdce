/**
 * /openapi.json describes exactly the routes the app serves (each route describes itself with
 * createRoute where its handler is), and a described request body is the schema the handler
 * validates with: every field it calls required is demanded, and where it allows no other field
 * an unknown one is refused — through the app, with our error envelope.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRedis, type RunningRedis } from '../../test/harness/redis.ts';
import { createTestApp } from '../../test/harness/api-app.ts';

interface JsonSchema { type?: string; properties?: Record<string, JsonSchema & { description?: string }>; required?: string[]; additionalProperties?: unknown; $ref?: string }
interface Operation { requestBody?: { content: Record<string, { schema: JsonSchema }> }; responses: Record<string, unknown>; parameters?: Array<{ name: string; in: string }> }
interface Spec { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, JsonSchema> } }

let redis: RunningRedis;
let t: ReturnType<typeof createTestApp>;
let spec: Spec;

before(async () => {
  redis = await startRedis();
  t = createTestApp(redis); // anonymous mode: every route is allowed, so each body reaches its validation
  const res = await t.app.request('/openapi.json');
  assert.equal(res.status, 200);
  spec = (await res.json()) as Spec;
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

const resolve = (s: JsonSchema): JsonSchema => (s.$ref ? spec.components.schemas[s.$ref.split('/').pop()!]! : s);

describe('/openapi.json', () => {
  test('every route the app serves is described, and every described route is served', () => {
    const served = new Set(t.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path.replace(/:([^/]+)/g, '{$1}')}`));
    const described = new Set(Object.entries(spec.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    assert.deepEqual([...served].filter((r) => !described.has(r)).sort(), [], 'served but not described');
    assert.deepEqual([...described].filter((r) => !served.has(r)).sort(), [], 'described but not served');
  });

  test('headers a client reads or sends are described: Retry-After on every 429, Location on a submission\'s answers, Last-Event-ID on the event stream', () => {
    const ops = Object.entries(spec.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, op]) => ({ at: `${method} ${path}`, op: op as Operation & { responses: Record<string, { headers?: Record<string, unknown> }>; parameters?: Array<{ name: string; in: string }> } })));
    const without429Header = ops.filter(({ op }) => op.responses['429'] && !op.responses['429'].headers?.['Retry-After']).map((o) => o.at);
    assert.deepEqual(without429Header, [], '429 answers without Retry-After described');
    const submit = ops.find((o) => o.at === 'post /v1/jobs')!.op;
    for (const status of ['200', '202']) assert.ok(submit.responses[status]?.headers?.Location, `POST /v1/jobs ${status}: Location`);
    assert.ok(submit.responses['409'], 'POST /v1/jobs: 409 already_finished (an idempotencyKey whose job record expired)');
    const events = ops.find((o) => o.at === 'get /v1/jobs/{id}/events')!.op;
    assert.ok(events.parameters?.some((p) => p.in === 'header' && p.name.toLowerCase() === 'last-event-id'), 'Last-Event-ID');
    assert.ok(ops.find((o) => o.at === 'get /v1/workers')!.op.responses['503'], 'GET /v1/workers: 503 (it reads Redis)');
  });

  test('path parameters are described as the handlers read them', () => {
    for (const [path, ops] of Object.entries(spec.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(ops)) {
        assert.deepEqual((op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort(), names.sort(), `${method} ${path}`);
      }
    }
  });

  test('each described JSON body is the schema its handler validates with', async () => {
    const withBody = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.entries(ops).filter(([, op]) => op.requestBody?.content['application/json']).map(([method, op]) => ({ method, path, schema: resolve(op.requestBody!.content['application/json']!.schema) })));
    assert.deepEqual(withBody.map((b) => `${b.method} ${b.path}`).sort(), ['post /v1/images', 'post /v1/jobs']);
    for (const { method, path, schema } of withBody) {
      const send = (body: unknown) => t.app.request(path, { method: method.toUpperCase(), headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const missing = await send({});
      assert.equal(missing.status, 400, `${method} ${path} {}`);
      const errs = ((await missing.json()) as { error: { code: string; details: Array<{ path: string }> } }).error;
      assert.equal(errs.code, 'invalid_request');
      assert.deepEqual(errs.details.map((d) => d.path).sort(), [...(schema.required ?? [])].sort(), `${method} ${path}: the fields the handler demands are the described required ones`);
      // An unknown field is refused exactly when the description allows no other fields.
      const unknown = await send({ notDescribedAnywhere: 1 });
      const body = (await unknown.json()) as { error?: { details: Array<{ path: string; message: string }> } };
      const refused = body.error?.details.some((d) => d.path === 'notDescribedAnywhere' && d.message === 'is not a known field') ?? false;
      assert.equal(refused, schema.additionalProperties === false, `${method} ${path}: additionalProperties ${JSON.stringify(schema.additionalProperties)}, answer ${JSON.stringify(body)}`);
    }
  });

  test('a route with a JSON body describes the 413 and 415 it answers (the body is read by jsonBody)', async () => {
    const withBody = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.entries(ops).filter(([, op]) => op.requestBody?.content['application/json']).map(([method, op]) => ({ method, path, op })));
    for (const { method, path, op } of withBody) {
      const send = (type: string, body: string) => t.app.request(path, { method: method.toUpperCase(), headers: { 'content-type': type }, body });
      for (const [status, answer] of [[415, await send('text/plain', '{}')], [413, await send('application/json', JSON.stringify({ image: 'x'.repeat(1_100_000) }))]] as const) {
        assert.equal(answer.status, status, `${method} ${path}`);
        assert.ok(op.responses[String(status)], `${method} ${path} answers ${status} but does not describe it (describes ${Object.keys(op.responses).join(', ')})`);
      }
    }
  });

  test('404 (no such job for this tenant) is described where the path names a job, and only there', () => {
    const ops = Object.entries(spec.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, op]) => ({ at: `${method} ${path}`, namesJob: path.includes('{id}'), op })));
    assert.deepEqual(ops.filter((o) => o.namesJob !== Boolean(o.op.responses['404'])).map((o) => `${o.at}: ${o.namesJob ? 'no' : 'a'} 404 described`), []);
  });

  test('times are described as api.md gives them: RFC 3339 strings (format date-time)', () => {
    type Prop = JsonSchema & { format?: string; items?: JsonSchema };
    const props = (s: JsonSchema | undefined): Record<string, Prop> => (s ? (resolve(s).properties ?? {}) : {}) as Record<string, Prop>;
    const doc = props(spec.components.schemas.JobDocument);
    const times: Array<[string, Prop | undefined]> = [
      ...['createdAt', 'startedAt', 'finishedAt'].map((k) => [`timings.${k}`, props(doc.timings)[k]] as [string, Prop | undefined]),
      ['liveUsage.at', props(doc.liveUsage).at],
      ['callback.nextAttemptAt', props(doc.callback).nextAttemptAt],
      ['callback.attempts[].at', props(props(doc.callback).attempts?.items).at],
      ['history[].endedAt', props(doc.history?.items).endedAt],
    ];
    const listed = (path: string, method: string, field: string): Prop | undefined => {
      const res = (spec.paths[path]![method]!.responses['200'] as { content: Record<string, { schema: JsonSchema }> }).content['application/json']!.schema;
      return props((props(res).items as Prop).items)[field];
    };
    times.push(['GET /v1/images items[].lastUsedAt', listed('/v1/images', 'get', 'lastUsedAt')], ['GET /v1/workers items[].lastHeartbeat', listed('/v1/workers', 'get', 'lastHeartbeat')]);
    for (const [name, p] of times) assert.equal(p?.format, 'date-time', `${name}: ${JSON.stringify(p)}`);
  });

  test('the contract\'s parts are in it: job request and document, limits, webhooks, queue position, 403/429', () => {
    const req = spec.components.schemas.JobRequest!;
    const doc = spec.components.schemas.JobDocument!;
    assert.ok(req && doc, 'components JobRequest and JobDocument');
    assert.deepEqual(spec.paths['/v1/jobs']!.post!.requestBody!.content['application/json']!.schema, req, 'POST /v1/jobs takes a JobRequest');
    const limits = resolve(req.properties!.limits!);
    for (const l of ['memoryBytes', 'cpus', 'pids', 'timeoutMs', 'outputBytes', 'diskBytes', 'cpuTimeMs', 'openFiles']) {
      const p = limits.properties?.[l] as { minimum?: number; maximum?: number } | undefined;
      assert.ok(p && typeof p.minimum === 'number' && typeof p.maximum === 'number', `limits.${l} has the launcher's bounds`);
    }
    for (const l of ['memoryBytes', 'diskBytes']) assert.ok(limits.properties?.[l]?.description, `limits.${l} is described`);
    assert.ok(req.properties!.callbackUrl, 'callbackUrl');
    assert.ok(doc.properties!.queuePosition && doc.properties!.callback, 'queuePosition and callback');
    assert.ok(spec.paths['/v1/jobs']!.post!.responses['429'], '429 on submit');
    for (const [path, method] of [['/v1/images', 'post'], ['/v1/images/{digest}', 'delete'], ['/v1/workers', 'get'], ['/metrics', 'get']] as const) {
      assert.ok(spec.paths[path]![method]!.responses['403'], `403 on ${method} ${path}`);
    }
  });

  test('/docs lists every described route', async () => {
    const res = await t.app.request('/docs');
    assert.equal(res.status, 200);
    const html = await res.text();
    for (const [path, ops] of Object.entries(spec.paths)) {
      for (const m of Object.keys(ops)) assert.ok(html.includes(`<code>${m.toUpperCase()}</code></td><td><code>${path}</code>`), `${m} ${path}`);
    }
  });
});

test('the document is made once per process, not per request: /openapi.json and /docs are answered without a key, outside every request rate', async () => {
  const fresh = createTestApp(redis, { SBX_API_KEYS: 'tenantkey-0000000001:team-a' });
  try {
    // Counted where it is made (20 ms of the API's CPU each, measured; counted here, not timed).
    let made = 0;
    const make = fresh.app.getOpenAPI31Document.bind(fresh.app);
    fresh.app.getOpenAPI31Document = ((...args: Parameters<typeof make>) => (made++, make(...args))) as typeof make;
    const texts = new Set<string>();
    for (let i = 0; i < 20; i++) {
      for (const path of ['/openapi.json', '/docs']) {
        const res = await fresh.app.request(path);
        assert.equal(res.status, 200, path);
        if (path === '/openapi.json') texts.add(await res.text());
        else await res.text();
      }
    }
    assert.ok(made <= 1, `40 requests made the document ${made} times`);
    assert.equal(texts.size, 1);
    assert.deepEqual(Object.keys((JSON.parse([...texts][0]!) as Spec).paths).sort(), Object.keys(spec.paths).sort(), 'the same routes');
  } finally {
    await fresh.close();
  }
});
