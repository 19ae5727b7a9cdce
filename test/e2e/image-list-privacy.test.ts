/**
 * GET /v1/images shows a tenant only the images its own jobs were given (P43). Tenant B runs a
 * private image with its registryAuth; tenant A submits the same reference without credentials and
 * is refused registry_unauthorized. Before, the image was recorded for A at submission, so A's list
 * showed B's private image, its digest, size, workers and last use (auditor). Now the worker records
 * a tenant's use once its job has the image.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { busyboxImage } from '../fixtures/build-images.ts';
import { pushImage } from '../fixtures/oci-builder.ts';
import { SbxClient } from '../harness/api-client.ts';
import { startRegistry, type RunningRegistry } from '../harness/registry.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';

const KEY_A = 'key-tenant-alpha-aaaaaaaaaaaa';
const KEY_B = 'key-tenant-beta-bbbbbbbbbbbbb';
const KEY_ADMIN = 'key-admin-ops-cccccccccccccccc';
const user = { username: 'grader', password: 's3cret-pass-word' };
let stack: Stack;
let registry: RunningRegistry;
let a: SbxClient;
let b: SbxClient;

before(async () => {
  registry = await startRegistry({ htpasswd: { user: user.username, password: user.password } });
  stack = await startStack({ adminKey: KEY_ADMIN, egressAllow: [registry.host], env: { SBX_API_KEYS: `${KEY_A}:alpha,${KEY_B}:beta,${KEY_ADMIN}:ops:admin` } });
  a = new SbxClient(stack.apiUrl, KEY_A);
  b = new SbxClient(stack.apiUrl, KEY_B);
});
after(async () => {
  await stack?.stop();
  await registry?.stop();
});

type Row = { image: string; digest: string };
const listed = async (client: SbxClient) => (await client.request<{ items: Row[] }>('GET', '/v1/images')).body.items;

test('a tenant refused registry_unauthorized for another tenant\'s private image does not get it listed', { timeout: 90_000 }, async () => {
  await pushImage(registry.url, 'private/grader', 'v7', await busyboxImage(), { authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` });
  const image = `${registry.host}/private/grader:v7`;
  const bJob = await b.submit({ image, command: ['true'], registryAuth: user }, { wait: true });
  assert.equal(bJob.body.status, 'succeeded', JSON.stringify(bJob.body));
  let bRows: Row[] = [];
  await waitUntil(async () => (bRows = await listed(b)).length > 0, 15_000, 'B\'s list to show its image (the worker\'s heartbeat and its record)');
  assert.deepEqual(bRows.map((r) => [r.image, r.digest]), [[image, bJob.body.imageDigest]]);

  const aJob = await a.submit({ image, command: ['true'] }, { wait: true });
  assert.equal(aJob.body.error?.code, 'registry_unauthorized', JSON.stringify(aJob.body));
  assert.deepEqual(await listed(a), [], 'A was never given the image');
});
