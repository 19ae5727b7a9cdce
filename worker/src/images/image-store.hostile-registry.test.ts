/**
 * The image store against a hostile registry: a seeded sweep of pulls from an in-process registry
 * that answers each repository with one fault, of six kinds:
 *  - manifest: fields deleted, replaced by hostile values (wrong types, huge and negative numbers,
 *    traversal digests, other algorithms, 100 KB strings, lone surrogates) or repeated;
 *  - config: the same, in the image config (User, Env, WorkingDir, Cmd, rootfs);
 *  - layer: its bytes truncated, flipped, extended, emptied or replaced, served under their own
 *    digest or under the one the manifest names; the descriptor's size or media type lying;
 *  - index: nested, naming itself, 20,000 entries, hostile or missing platforms;
 *  - http: 5xx, 404 with a broken body, 429 with odd Retry-After, 401 with broken or hostile
 *    challenges (file://, metadata addresses), redirect loops and redirects to other schemes or
 *    private addresses, resets, bodies shorter than their Content-Length, stalls;
 *  - headers: a lying Content-Type or Docker-Content-Digest, a 60 KB header, broken chunking.
 * Every pull must end within its bounds, either with a typed error a user can act on
 * (invalid_image, image_pull_failed, image_not_found, registry_unauthorized, egress_refused) whose
 * message names no internal ("undefined", "[object", zod's "received undefined"), or with exactly
 * the image's real files (the digests and diffIDs are checked, so no served corruption is unpacked).
 * Afterwards the cache's work directory is empty and the store still pulls a good image.
 * SBX_HOSTILE_SEED=N runs another sweep (the default seed is fixed, so a failure reproduces).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SbxError } from '../../../core/src/errors.ts';
import { startFakeRegistry, type FakeRegistry } from '../../../test/fixtures/fake-registry.ts';
import { buildImage, buildLayer, MEDIA, sha256, type Blob, type BuiltImage, type BuiltLayer } from '../../../test/fixtures/oci-builder.ts';
import { hostileSeed, seededRandom } from '../../../test/harness/seeded-random.ts';
import { TempImageStores } from '../../../test/harness/temp-image-store.ts';
import type { ImageStore } from './image-store.ts';

const SEED = hostileSeed();
const PULLS = 300;
const CONCURRENCY = 6;
/** Well past the store's bounds below (retries within 3 s, stalls at 1.5 s, the pull deadline at 8 s). */
const ANSWER_WITHIN_MS = 30_000;
const ACTIONABLE = new Set(['invalid_image', 'image_pull_failed', 'image_not_found', 'registry_unauthorized', 'egress_refused']);

const rnd = seededRandom(SEED);
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;

const HOSTILE: readonly unknown[] = [
  null, -1, 0, 1.5, 1e308, 2 ** 53, '', 'x', true, [], [null], {}, '\u0000', '\ud800', 'A'.repeat(100_000),
  'sha256:' + 'a'.repeat(64), 'sha256:' + '../'.repeat(20), 'sha512:' + 'b'.repeat(128),
  MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.ociLayerZstd, MEDIA.ociLayerTar,
  'root', '0:0', '65535:65535', '4294967295', '-1:-1', 'nobody:nogroup', '../..', '/proc/self', 'a=b',
  ['PATH=/x', '=', 'A'], ['', ''], Array(5000).fill('E=1'),
];

let fake: FakeRegistry;
let store: ImageStore;
let root: string;
let good: BuiltImage;
let layers: BuiltLayer[];
const stores = new TempImageStores('sbx-images-hostile-');
/** Per repository (r<n>/img): how the registry answers it. */
const answer = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

before(async () => {
  layers = [
    await buildLayer([{ type: 'dir', path: 'bin' }, { type: 'file', path: 'hello', content: 'hi\n' }]),
    await buildLayer([{ type: 'file', path: 'two', content: 'x'.repeat(5000) }], { compression: 'zstd' }),
  ];
  good = buildImage({ layers, config: { Cmd: ['sh'], Env: ['A=1'] } });
  fake = await startFakeRegistry();
  fake.add('good/img', 'latest', good);
  fake.hook = (req, res) => {
    const repo = /^\/v2\/(r\d+\/img)\//.exec(req.url ?? '')?.[1];
    const serve = repo ? answer.get(repo) : undefined;
    if (!serve) return false;
    serve(req, res);
    return true;
  };
  root = await stores.root();
  store = await stores.make({ root, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20, deadlineMs: 3_000 }, pullTimeoutMs: 8_000, stall: { stallMs: 1_500, stallBytes: 1 } });
});

after(async () => {
  await stores.cleanup();
  await fake.stop();
});

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const blob = (mediaType: string, bytes: Buffer): Blob => ({ mediaType, digest: sha256(bytes), size: bytes.length, bytes });
const descriptorOf = (b: Blob, extra: Record<string, unknown> = {}) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size, ...extra });

/** Replaces, deletes or repeats one field somewhere in `value` (in place); returns the result. */
function mutate(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) return pick(HOSTILE);
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0 || rnd() < 0.15) return pick(HOSTILE);
  const k = pick(keys);
  const r = rnd();
  if (r < 0.2) delete o[k];
  else if (r < 0.5 && depth < 4) o[k] = mutate(o[k], depth + 1);
  else if (r < 0.6 && Array.isArray(o[k])) o[k] = [...(o[k] as unknown[]), ...(o[k] as unknown[]), ...(o[k] as unknown[])];
  else o[k] = pick(HOSTILE);
  return value;
}

/** What the registry serves for one repository: manifests by reference, blobs by digest. */
interface Served {
  top: Blob;
  manifests: Map<string, Blob>;
  blobs: Map<string, Blob>;
  /** Answers a request itself (a fault) or returns false. */
  fault?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

function manifestFault(s: Served): string {
  const manifest = JSON.parse(good.manifest.bytes.toString());
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) mutate(manifest);
  s.top = blob(MEDIA.ociManifest, json(manifest));
  return 'manifest';
}

function configFault(s: Served): string {
  const config = JSON.parse(good.config.bytes.toString());
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) mutate(rnd() < 0.7 ? config.config : config);
  const c = blob(MEDIA.ociConfig, json(config));
  s.blobs.set(c.digest, c);
  s.top = blob(MEDIA.ociManifest, json({ ...JSON.parse(good.manifest.bytes.toString()), config: descriptorOf(c) }));
  return 'config';
}

function layerFault(s: Served): string {
  const manifest = JSON.parse(good.manifest.bytes.toString());
  const at = Math.floor(rnd() * layers.length);
  const l = layers[at]!;
  const how = pick(['truncate', 'flip', 'append', 'empty', 'garbage', 'size', 'mediaType']);
  if (how === 'size') manifest.layers[at].size = pick([0, 1, l.size - 1, l.size + 1, 2 ** 40]);
  else if (how === 'mediaType') manifest.layers[at].mediaType = pick([MEDIA.ociLayerTar, MEDIA.ociLayerGzip, MEDIA.ociLayerZstd, MEDIA.dockerLayerGzip]);
  else {
    let bytes = Buffer.from(l.bytes);
    if (how === 'truncate') bytes = bytes.subarray(0, Math.floor(rnd() * bytes.length));
    if (how === 'flip') bytes[Math.floor(rnd() * bytes.length)]! ^= 0xff;
    if (how === 'append') bytes = Buffer.concat([bytes, Buffer.alloc(1 + Math.floor(rnd() * 3000), 7)]);
    if (how === 'empty') bytes = Buffer.alloc(0);
    if (how === 'garbage') bytes = Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rnd() * 256)));
    if (rnd() < 0.5) {
      const named = blob(l.mediaType, bytes); // the manifest names what is served (the config's diffID does not match)
      manifest.layers[at] = descriptorOf(named);
      s.blobs.set(named.digest, named);
    } else {
      s.blobs.set(l.digest, { ...l, bytes, size: bytes.length }); // served under the digest of other bytes
    }
  }
  s.top = blob(MEDIA.ociManifest, json(manifest));
  return `layer ${how}`;
}

function indexFault(s: Served): string {
  const sub = good.manifest;
  const entry = (b: Blob, platform: unknown = { os: 'linux', architecture: 'amd64' }) => descriptorOf(b, { platform });
  const index = (manifests: unknown[]) => blob(MEDIA.ociIndex, json({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests }));
  const how = pick(['nested', 'cycle', 'many', 'platform', 'no platform']);
  if (how === 'nested') {
    const inner = index([entry(sub)]);
    s.manifests.set(inner.digest, inner);
    s.top = index([{ ...entry(inner), mediaType: MEDIA.ociIndex }]);
  } else if (how === 'cycle') {
    // Two indexes, each listed by the other as a manifest of this platform.
    const first = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] as unknown[] };
    const second = index([{ ...entry(blob(MEDIA.ociIndex, json(first))), mediaType: MEDIA.ociManifest }]);
    first.manifests.push({ ...entry(second), mediaType: MEDIA.ociManifest });
    const top = blob(MEDIA.ociIndex, json(first));
    s.manifests.set(second.digest, second);
    s.top = top;
  } else if (how === 'many') {
    s.top = index([...Array.from({ length: 20_000 }, (_, k) => entry(sub, { os: 'linux', architecture: `arch${k}` })), entry(sub)]);
  } else {
    s.top = index([entry(sub, how === 'no platform' ? undefined : pick(HOSTILE))]);
  }
  return `index ${how}`;
}

function httpFault(s: Served): string {
  const target = pick(['manifest', 'config', 'layer', 'any']);
  const fault = pick(['500', '404', '429', '401 broken', '401 realm', '403', 'redirect loop', 'redirect elsewhere', 'reset', 'cut', 'short', 'stall']);
  const onlyOnce = rnd() < 0.4; // then a retry gets the real answer
  // Chosen here, not per request: the order of requests across concurrent pulls varies, the seed's choices must not.
  const retryAfter = pick(['1', '99999', 'junk', '-5']);
  const challenge = pick(['Bearer', 'Bearer realm', 'Bearer realm="', 'Basic', 'Bearer realm="http://127.0.0.1:1/token",service=', 'Negotiate abc', 'x'.repeat(9000)]);
  const realm = pick(['file:///etc/passwd', 'http://169.254.169.254/latest', 'ftp://x/', 'http://[::1]:1/t', `${fake.url}/v2/`, 'javascript:1']);
  const redirect = pick([301, 302, 307]);
  const location = pick(['file:///etc/shadow', 'gopher://x', 'http://169.254.169.254/', 'http://10.0.0.1/x', '//evil', '', 'http://%zz']);
  let fired = 0;
  s.fault = (req, res) => {
    const url = req.url ?? '';
    const isBlob = url.includes('/blobs/');
    const isConfig = isBlob && url.endsWith(good.config.digest);
    const hit = target === 'any' || (target === 'manifest' && url.includes('/manifests/')) || (target === 'config' && isConfig) || (target === 'layer' && isBlob && !isConfig);
    if (!hit || (onlyOnce && fired > 0)) return false;
    fired++;
    const reply = (status: number, headers: Record<string, string | number> = {}, body = '') => res.writeHead(status, headers).end(body);
    switch (fault) {
      case '500': reply(500, {}, 'boom'); break;
      case '404': reply(404, { 'content-type': 'application/json' }, '{"errors":[{"code":"NAME_UNKNOWN"'); break;
      case '429': reply(429, { 'retry-after': retryAfter }); break;
      case '401 broken': reply(401, { 'www-authenticate': challenge }); break;
      case '401 realm': reply(401, { 'www-authenticate': `Bearer realm="${realm}",service="x",scope="repository:x:pull"` }); break;
      case '403': reply(403); break;
      case 'redirect loop': reply(307, { location: url }); break;
      case 'redirect elsewhere': reply(redirect, { location }); break;
      case 'reset': req.socket.destroy(); break;
      case 'cut': res.writeHead(200, { 'content-length': 100_000 }); res.write(Buffer.alloc(100)); setTimeout(() => req.socket.destroy(), 20); break;
      case 'short': reply(200, { 'content-length': 10 }); break;
      case 'stall': res.writeHead(200, { 'content-length': 1000 }); break; // and nothing more
    }
    return true;
  };
  const detail = { '429': retryAfter, '401 broken': challenge.slice(0, 60), '401 realm': realm, 'redirect elsewhere': `${redirect} ${location}` }[fault];
  return `http ${fault}${detail === undefined ? '' : ` ${JSON.stringify(detail)}`} on ${target}${onlyOnce ? ' once' : ''}`;
}

function headersFault(s: Served): string {
  const fault = pick(['content type', 'digest', 'huge header', 'broken chunks']);
  const contentType = pick(['text/html', MEDIA.ociIndex, MEDIA.dockerList, 'application/vnd.docker.distribution.manifest.v1+prettyjws']);
  const digest = pick(['sha256:' + 'c'.repeat(64), 'md5:x', 'junk']);
  s.fault = (req, res) => {
    const ref = /\/manifests\/([^/]+)$/.exec(req.url ?? '')?.[1];
    const m = ref === 'latest' ? s.top : ref ? s.manifests.get(ref) : undefined;
    if (!m) return false;
    if (fault === 'content type') res.writeHead(200, { 'content-type': contentType }).end(m.bytes);
    if (fault === 'digest') res.writeHead(200, { 'content-type': m.mediaType, 'docker-content-digest': digest }).end(m.bytes);
    if (fault === 'huge header') res.writeHead(200, { 'content-type': m.mediaType, 'x-junk': 'y'.repeat(60_000) }).end(m.bytes);
    if (fault === 'broken chunks') {
      res.writeHead(200, { 'content-type': m.mediaType });
      res.write(m.bytes.subarray(0, 10));
      req.socket.write('zz\r\njunk\r\n');
      req.socket.destroy();
    }
    return true;
  };
  return `headers ${fault}${fault === 'content type' ? ` ${contentType}` : fault === 'digest' ? ` ${digest}` : ''}`;
}

const FAULTS = [manifestFault, configFault, layerFault, indexFault, httpFault, headersFault];

/** Registers repository r<n>/img with one fault; returns what the fault is. */
function hostileRepository(n: number): string {
  const s: Served = {
    top: good.manifest,
    manifests: new Map([[good.manifest.digest, good.manifest]]),
    blobs: new Map<string, Blob>([[good.config.digest, good.config], ...layers.map((l) => [l.digest, l] as [string, Blob])]),
  };
  const what = pick(FAULTS)(s);
  answer.set(`r${n}/img`, (req, res) => {
    if (s.fault?.(req, res)) return;
    const url = req.url ?? '';
    const ref = /\/manifests\/([^/]+)$/.exec(url)?.[1];
    const found = ref === undefined ? s.blobs.get(/\/blobs\/([^/]+)$/.exec(url)?.[1] ?? '') : ref === 'latest' ? s.top : s.manifests.get(ref) ?? (ref === s.top.digest ? s.top : undefined);
    if (!found) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(`{"errors":[{"code":"${ref ? 'MANIFEST' : 'BLOB'}_UNKNOWN","message":"unknown"}]}`);
      return;
    }
    const headers = ref ? { 'content-type': found.mediaType, 'docker-content-digest': found.digest } : { 'content-type': 'application/octet-stream' };
    res.writeHead(200, { ...headers, 'content-length': found.bytes.length }).end(found.bytes);
  });
  return what;
}

/** The files of the good image's layers, bottom first: what any pull that succeeds must have unpacked. */
async function filesOf(layerDirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of layerDirs) {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      out.push(name === 'bin' ? 'bin/' : `${name}=${(await readFile(path)).length}`);
    }
  }
  return out;
}

test(`${PULLS} pulls from a hostile registry (seed ${SEED}) each end with a typed, actionable error or the image's real files; nothing is left`, { timeout: 300_000 }, async () => {
  const faults = Array.from({ length: PULLS }, (_, n) => hostileRepository(n));
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  const expected = ['bin/', 'hello=3', 'two=5000'];
  let next = 0;
  const pullOne = async (n: number): Promise<void> => {
    const what = `#${n} (${faults[n]})`;
    const pull = store.acquire(`${fake.host}/r${n}/img:latest`, { policy: 'always' }).then((image) => ({ image }), (error: unknown) => ({ error }));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), ANSWER_WITHIN_MS); });
    const out = await Promise.race([pull, late]).finally(() => clearTimeout(timer));
    if (out === 'late') return void problems.push(`${what}: no answer within ${ANSWER_WITHIN_MS} ms`);
    if ('image' in out) {
      outcomes.set('pulled', (outcomes.get('pulled') ?? 0) + 1);
      const files = await filesOf(out.image.layerDirs);
      if (JSON.stringify(files) !== JSON.stringify(expected)) problems.push(`${what}: pulled, with files ${JSON.stringify(files)}`);
      out.image.release();
      return;
    }
    const e = out.error;
    if (!(e instanceof SbxError) || !ACTIONABLE.has(e.code)) return void problems.push(`${what}: ${e instanceof SbxError ? e.code : (e as Error)?.name}: ${String((e as Error)?.message).slice(0, 300)}`);
    outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
    if (/undefined|\[object|received undefined|NaN/.test(e.message)) problems.push(`${what}: a message naming an internal: ${e.message.slice(0, 300)}`);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < PULLS) await pullOne(next++);
  }));
  assert.deepEqual(problems, [], `${problems.length} of ${PULLS} pulls broke the contract (seed ${SEED})`);
  // The sweep reached both sides: refusals of several kinds, and faults a retry or the digests made harmless.
  assert.ok((outcomes.get('pulled') ?? 0) > 0 && (outcomes.get('invalid_image') ?? 0) > 0 && (outcomes.get('image_pull_failed') ?? 0) > 0, JSON.stringify(Object.fromEntries(outcomes)));

  const work: string[] = [];
  for (const mine of await readdir(join(root, 'tmp'))) for (const left of await readdir(join(root, 'tmp', mine))) work.push(`tmp/${mine}/${left}`);
  assert.deepEqual(work, [], 'work in progress left in the cache');
  const after = await store.acquire(`${fake.host}/good/img:latest`, { policy: 'always' });
  assert.deepEqual(await filesOf(after.layerDirs), expected);
  after.release();
});
