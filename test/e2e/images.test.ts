/**
 * The image endpoints against real workers: what they cached, pre-pulling everywhere, evicting.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SbxClient } from '../harness/api-client.ts';
import { waitUntil } from '../harness/redis.ts';
import { startStack, type Stack } from '../harness/stack.ts';
import { startRegistry, type RunningRegistry } from '../harness/registry.ts';
import { busyboxImage } from '../fixtures/build-images.ts';
import { startFakeRegistry, type FakeRegistry } from '../fixtures/fake-registry.ts';
import { buildImage, buildLayer, pushImage } from '../fixtures/oci-builder.ts';

interface ImageRow { image: string; digest: string; sizeBytes: number; workers: string[]; lastUsedAt: string }

let stack: Stack;
let api: SbxClient;
const listed = async () => (await api.request<{ items: ImageRow[] }>('GET', '/v1/images')).body.items;

// Registry credentials per tenant (the open API's callers are the `default` tenant).
const tenantDir = mkdtempSync(join(tmpdir(), 'sbx-tenant-auth-'));

// Private registries of the credential tests; on loopback, so the workers allow them (SBX_EGRESS_ALLOW).
const graderUser = { username: 'grader', password: 's3cret-pass-word' };
const tenantUser = { username: 'tenant-a', password: 'tenant-pass-word' };
let graderRegistry: RunningRegistry;
let tenantRegistry: RunningRegistry;
// Another tenant's own registry, serving whatever manifest it likes (the layer-privacy test).
let ownRegistry: FakeRegistry;

before(async () => {
  graderRegistry = await startRegistry({ htpasswd: { user: graderUser.username, password: graderUser.password } });
  tenantRegistry = await startRegistry({ htpasswd: { user: tenantUser.username, password: tenantUser.password } });
  ownRegistry = await startFakeRegistry();
  stack = await startStack({ env: { SBX_TENANT_DOCKER_CONFIG_DIR: tenantDir }, egressAllow: [graderRegistry.host, tenantRegistry.host, ownRegistry.host] });
  api = new SbxClient(stack.apiUrl);
});
after(async () => {
  await stack?.stop();
  await graderRegistry?.stop();
  await tenantRegistry?.stop();
  await ownRegistry?.stop();
  rmSync(tenantDir, { recursive: true, force: true });
});

test('an image a job used is listed with its digest, size and worker', async () => {
  const res = await api.submit({ image: stack.images.busybox, command: ['true'] }, { wait: true });
  assert.equal(res.body.status, 'succeeded');
  let row: ImageRow | undefined;
  await waitUntil(async () => Boolean((row = (await listed()).find((i) => i.image === stack.images.busybox))), 10_000, 'the image to be listed');
  assert.equal(row!.digest, res.body.imageDigest);
  assert.ok(row!.sizeBytes > 1_000_000, `size ${row!.sizeBytes}`);
  assert.equal(row!.workers.length, 1);
});

test('a worker\'s cachedBytes counts a layer two images share once (what its cache holds), not once per image', async () => {
  // busybox and the probe image share busybox's layer. Before, cachedBytes (and sbx_image_cache_bytes)
  // summed the images' sizes: the shared layer twice (auditor: 9.9 MB reported, 2.1 MB on disk).
  for (const image of [stack.images.busybox, stack.images.probe]) assert.equal((await api.submit({ image, command: ['true'] }, { wait: true })).body.status, 'succeeded');
  const rows = async () => (await listed()).filter((i) => i.image === stack.images.busybox || i.image === stack.images.probe);
  await waitUntil(async () => (await rows()).length === 2, 10_000, 'both images to be listed');
  const workerBytes = async () => (await api.request<{ items: Array<{ cachedBytes: number }> }>('GET', '/v1/workers')).body.items[0]!.cachedBytes;
  const [busybox, probe] = [stack.images.busybox, stack.images.probe].map((ref) => rows().then((r) => r.find((i) => i.image === ref)!.sizeBytes));
  const sizes = { busybox: await busybox!, probe: await probe! };
  // The probe image is busybox's layer and the probe's: its size less busybox's is the probe layer.
  await waitUntil(async () => (await workerBytes()) < sizes.busybox + sizes.probe, 10_000, 'the next heartbeat');
  const cached = await workerBytes();
  assert.ok(cached >= sizes.probe && cached < sizes.busybox + sizes.probe, `cachedBytes ${cached}; busybox ${sizes.busybox}, probe ${sizes.probe}`);
});

test('POST pre-pulls on the workers; DELETE evicts it again', async () => {
  const image = `${stack.registry.host}/test/busybox-zstd:latest`;
  const post = await api.request<{ image: string; workers: string[] }>('POST', '/v1/images', { image });
  assert.equal(post.status, 202);
  assert.equal(post.body.workers.length, 1);
  let row: ImageRow | undefined;
  await waitUntil(async () => Boolean((row = (await listed()).find((i) => i.image === image))), 15_000, 'the pre-pulled image to be listed');
  // A job on it now starts from the cache.
  const job = await api.submit({ image, command: ['echo', 'zstd'] }, { wait: true });
  assert.equal(job.body.output!.stdout, 'zstd\n');
  assert.equal(job.body.placement?.imageCached, true, JSON.stringify(job.body.placement));

  const del = await api.request('DELETE', `/v1/images/${row!.digest}`);
  assert.equal(del.status, 202);
  await waitUntil(async () => !(await listed()).some((i) => i.image === image), 15_000, 'the image to be evicted');
  assert.ok((await listed()).some((i) => i.image === stack.images.busybox), 'other images stay');

  const bad = await api.request<{ error: { code: string } }>('DELETE', '/v1/images/latest');
  assert.equal(bad.status, 400);
  const badPost = await api.request<{ error: { code: string; details: Array<{ path: string }> } }>('POST', '/v1/images', { image: 'Bad Name' });
  assert.equal(badPost.status, 400);
  assert.equal(badPost.body.error.details[0]!.path, 'image');
});

test('DELETE while a job runs on the image: evicted once the job ends (not dropped as in use)', async () => {
  const image = `${stack.registry.host}/test/busybox-zstd:latest`;
  const job = await api.submit({ image, command: ['sleep', '5'] });
  let digest: string | undefined;
  await waitUntil(async () => Boolean((digest = (await listed()).find((i) => i.image === image)?.digest)), 15_000, 'the image to be listed');
  assert.equal((await api.get(job.body.id)).body.status, 'running', 'the job still runs on it');
  assert.equal((await api.request('DELETE', `/v1/images/${digest}`)).status, 202);
  await new Promise((r) => setTimeout(r, 600)); // a heartbeat: still listed, the job holds it
  assert.ok((await listed()).some((i) => i.image === image), 'kept while the job runs');
  assert.equal((await api.waitFinished(job.body.id, 30_000)).status, 'succeeded');
  await waitUntil(async () => !(await listed()).some((i) => i.image === image), 15_000, 'the image to be evicted after the job');
});

test('pull "always" runs a tag as the registry names it now (docker run --pull always); by default a cached tag runs as cached; "never" is a 400', async () => {
  const repo = 'test/pull-policy';
  const image = `${stack.registry.host}/${repo}:latest`;
  const version = async (v: string) => busyboxImage({ extraLayers: [await buildLayer([{ type: 'file', path: 'version', content: `${v}\n` }])] });
  const cat = async (pull?: 'always') => (await api.submit({ image, command: ['cat', '/version'], ...(pull ? { pull } : {}) }, { wait: true })).body;
  await pushImage(stack.registry.url, repo, 'latest', await version('v1'));
  assert.equal((await cat()).output!.stdout, 'v1\n');
  await pushImage(stack.registry.url, repo, 'latest', await version('v2'));
  assert.equal((await cat()).output!.stdout, 'v1\n', 'the cached tag, without asking the registry');
  const fresh = await cat('always');
  assert.equal(fresh.output!.stdout, 'v2\n');
  assert.equal((await cat()).output!.stdout, 'v2\n', 'the cache now holds what the registry named');
  const never = await api.submit({ image, command: ['true'], pull: 'never' } as never);
  assert.equal(never.status, 400);
  assert.equal((never.body as unknown as { error: { message: string } }).error.message, 'pull must be "missing" or "always"');
});

test("a private image's layer is not handed to a job whose registry only names its digest", async () => {
  // The grader's private image, with a layer of its own, pulled and cached by a job with registryAuth.
  const basic = `Basic ${Buffer.from(`${graderUser.username}:${graderUser.password}`).toString('base64')}`;
  const base = await busyboxImage();
  const secret = await buildLayer([{ type: 'file', path: 'answers.txt', content: 'the grader\'s answers\n' }]);
  await pushImage(graderRegistry.url, 'private/grader', 'latest', buildImage({ layers: [...base.layers, secret] }), { authorization: basic });
  const graded = await api.submit({ image: `${graderRegistry.host}/private/grader:latest`, command: ['cat', '/answers.txt'], registryAuth: graderUser }, { wait: true });
  assert.equal(graded.body.output?.stdout, "the grader's answers\n", JSON.stringify(graded.body.error));

  // Another job's own registry: a manifest naming that layer's digest, without its bytes.
  ownRegistry.add('student/peek', 'latest', buildImage({ layers: [...base.layers, secret], config: { Cmd: ['cat', '/answers.txt'] } }));
  ownRegistry.hook = (req, res) => {
    if (!req.url?.endsWith(secret.digest)) return false;
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
    return true;
  };
  const peek = await api.submit({ image: `${ownRegistry.host}/student/peek:latest` }, { wait: true });
  assert.equal(peek.body.status, 'error', JSON.stringify(peek.body.output));
  assert.equal(peek.body.error?.code, 'invalid_image');
  assert.match(peek.body.error!.message, new RegExp(`its blob ${secret.digest} is missing from the registry`));
  assert.ok(!JSON.stringify(peek.body).includes('answers'), 'nothing of the layer reached the job');
  assert.ok(ownRegistry.requests.some((r) => r.path.endsWith(`/blobs/${secret.digest}`)), 'the worker asked that registry for the blob');

  // A registry that has the bytes may use the layer (it had the files anyway).
  ownRegistry.hook = null;
  const owner = await api.submit({ image: `${ownRegistry.host}/student/peek:latest` }, { wait: true });
  assert.equal(owner.body.output?.stdout, "the grader's answers\n", JSON.stringify(owner.body.error));
});

test('a private registry: registryAuth per job pulls it; jobs without it are refused, also after it is cached', async () => {
  const user = graderUser;
  const registry = graderRegistry;
  try {
    const basic = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
    await pushImage(registry.url, 'private/busybox', 'latest', await busyboxImage(), { authorization: basic });
    const image = `${registry.host}/private/busybox:latest`;

    const anonymous = await api.submit({ image, command: ['true'] }, { wait: true });
    assert.equal(anonymous.body.status, 'error');
    assert.equal(anonymous.body.error!.code, 'registry_unauthorized');

    const authed = await api.submit({ image, command: ['echo', 'private'], registryAuth: user }, { wait: true });
    assert.equal(authed.body.status, 'succeeded', JSON.stringify(authed.body.error));
    assert.equal(authed.body.output!.stdout, 'private\n');
    const seen = JSON.stringify((await api.get(authed.body.id, true)).body);
    assert.ok(!seen.includes(user.password), 'the password never comes back');

    const after = await api.submit({ image, command: ['true'] }, { wait: true });
    assert.equal(after.body.error?.code, 'registry_unauthorized', 'the cached private image is not handed to a job without credentials');
  } finally {
    await registry.stop();
  }
});

test('tenant credentials (SBX_TENANT_DOCKER_CONFIG_DIR): added, rotated and broken without a worker restart', async () => {
  const user = tenantUser;
  const registry = tenantRegistry;
  const file = join(tenantDir, 'default.json');
  const writeAuth = (password: string) =>
    writeFileSync(file, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${user.username}:${password}`).toString('base64') } } }));
  try {
    await pushImage(registry.url, 'tenant/busybox', 'latest', await busyboxImage(), { authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` });
    const image = `${registry.host}/tenant/busybox:latest`;
    const run = async () => (await api.submit({ image, command: ['echo', 'tenant'] }, { wait: true })).body;

    assert.equal((await run()).error?.code, 'registry_unauthorized', 'no credentials yet');
    writeAuth(user.password);
    const ok = await run();
    assert.equal(ok.status, 'succeeded', JSON.stringify(ok.error));
    assert.equal(ok.output!.stdout, 'tenant\n');
    writeAuth('wrong-password-now');
    assert.equal((await run()).error?.code, 'registry_unauthorized', 'rotated to a wrong password: the cached image is not handed out');
    const own = await api.submit({ image, command: ['true'], registryAuth: user }, { wait: true });
    assert.equal(own.body.status, 'succeeded', "the job's own registryAuth wins over the tenant's");
    writeFileSync(file, '{ not json');
    const broken = await run();
    assert.equal(broken.error?.code, 'image_pull_failed');
    assert.match(broken.error!.message, /credentials of tenant default .*default\.json\) is not valid JSON/);
  } finally {
    rmSync(file, { force: true });
    await registry.stop();
  }
});

test('an image whose config no job could start with ends error / invalid_image naming the field; a request that replaces the value runs', async () => {
  const cases: Array<{ config: Record<string, unknown>; expected: RegExp; replaced: Record<string, unknown> }> = [
    { config: { Env: ['PATH=/bin', 'BROKEN'] }, expected: /its config's Env item 1 "BROKEN" is not NAME=value/, replaced: { env: { BROKEN: 'fixed' } } },
    { config: { Entrypoint: [''] }, expected: /its config's Entrypoint names no program/, replaced: { entrypoint: ['echo'] } },
    { config: { Cmd: ['sh', '-c', 'echo \0'] }, expected: /its config's Cmd item 2 contains a NUL byte/, replaced: { command: ['echo', 'ran'] } },
    { config: { WorkingDir: '/proc/self' }, expected: /its config's WorkingDir "\/proc\/self" is inside \/proc/, replaced: { workdir: '/tmp' } },
    { config: { WorkingDir: '/etc/passwd' }, expected: /its config's WorkingDir "\/etc\/passwd" cannot be the job's working directory: it, or a directory on its path, is not a directory \(chdir ENOTDIR\); a job's request can replace it \(workdir\)$/, replaced: { workdir: '/' } },
    { config: { User: 'ghost' }, expected: /its config's User "ghost": no user named "ghost" in the image's \/etc\/passwd/, replaced: { user: 'nobody' } },
    { config: { User: '99999' }, expected: /its config's User "99999": its uid 99999 is outside 0-65535/, replaced: { user: '0' } },
  ];
  for (const [i, c] of cases.entries()) {
    const repo = `test/bad-config-${i}`;
    await pushImage(stack.registry.url, repo, 'latest', await busyboxImage({ config: { Cmd: ['echo', 'ran'], ...c.config } as never }));
    const image = `${stack.registry.host}/${repo}:latest`;
    const refused = await api.submit({ image }, { wait: true });
    assert.equal(refused.body.status, 'error', JSON.stringify(refused.body));
    assert.equal(refused.body.error?.code, 'invalid_image', JSON.stringify(refused.body.error));
    assert.match(refused.body.error!.message, c.expected);
    const ran = await api.submit({ image, ...c.replaced }, { wait: true });
    assert.equal(ran.body.status, 'succeeded', `${JSON.stringify(c.replaced)}: ${JSON.stringify(ran.body.error)}`);
  }
  // The request's own workdir that no job could start in: the request's fault, named as its field (not the launcher's "cwd: chdir `…`: ENOTDIR").
  const workdirs: Array<[Record<string, unknown>, string]> = [
    [{ workdir: '/etc/passwd' }, 'workdir "/etc/passwd" cannot be the job\'s working directory: it, or a directory on its path, is not a directory (chdir ENOTDIR)'],
    [{ workdir: '/etc/passwd/x' }, 'workdir "/etc/passwd/x" cannot be the job\'s working directory: it, or a directory on its path, is not a directory (chdir ENOTDIR)'],
    [{ workdir: '/bin/made/here', user: '1000' }, 'workdir "/bin/made/here" is not in the image and could not be made by the job\'s user, "/bin/made" on its path: the job\'s user may not write there (mkdir EACCES)'],
  ];
  for (const [request, message] of workdirs) {
    const refused = await api.submit({ image: stack.images.busybox, command: ['true'], ...request }, { wait: true });
    assert.equal(refused.body.error?.code, 'invalid_request', JSON.stringify(refused.body));
    assert.equal(refused.body.error?.message, message);
  }
  // The request's own program, empty: the request's fault, said as such (not the launcher's "spec `argv: …`").
  const empty = await api.submit({ image: stack.images.busybox, command: ['', 'x'] }, { wait: true });
  assert.equal(empty.body.error?.code, 'invalid_request');
  assert.equal(empty.body.error?.message, 'the first item of command (the program to run) is empty');
});
