/**
 * certs.d against real TLS: Distribution serving https with a private CA (also self-signed, with a
 * certificate for another name, and requiring client certificates), and an in-process TLS registry
 * whose blob redirects go to another host, which must get its own trust and no client certificate.
 * Images are pushed over plain http to a registry sharing the TLS registries' storage.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, test, type TestContext } from 'node:test';
import { ImagePullFailedError } from '../../../core/src/errors.ts';
import { busyboxImage } from '../../../test/fixtures/build-images.ts';
import { pushImage, type BuiltImage } from '../../../test/fixtures/oci-builder.ts';
import { startRegistry, type RunningRegistry } from '../../../test/harness/registry.ts';
import { deadAddress } from '../../../test/harness/ports.ts';
import { createTestCa, selfSignedServerCert, type CertPair, type TestCa } from '../../../test/harness/test-pki.ts';
import { ImageStore } from './image-store.ts';
import { LOOPBACK_EGRESS } from '../../../test/harness/egress.ts';
import { loadRegistryCerts } from './registry/registry-certs.ts';

/** Integration tests fail after a minute instead of stalling the suite. */
const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

/** A retried failure would wait >= 15 s before its second attempt: fast failures were not retried. */
const SLOW_RETRY = { attempts: 10, baseDelayMs: 20_000, maxDelayMs: 60_000, deadlineMs: 600_000 };
const FAST_ENOUGH_MS = 10_000;

const cleanups: Array<() => Promise<void>> = [];
let ca: TestCa;
let otherCa: TestCa;
let image: BuiltImage;
let digest: string;
let client: CertPair;
let foreignClient: CertPair;
let selfSigned: CertPair;
let plain: RunningRegistry;
let tlsRegistry: RunningRegistry;
let mtlsRegistry: RunningRegistry;
let wrongName: RunningRegistry;
let selfSignedRegistry: RunningRegistry;

before(async () => {
  image = await busyboxImage();
  [ca, otherCa] = await Promise.all([createTestCa('sbx-test-ca'), createTestCa('sbx-other-ca')]);
  cleanups.push(ca.remove, otherCa.remove);
  const server = await ca.issue({ commonName: 'localhost', usage: 'server' });
  const elsewhere = await ca.issue({ commonName: 'elsewhere.test', usage: 'server', altNames: ['DNS:elsewhere.test'] });
  client = await ca.issue({ commonName: 'sbx-worker', usage: 'client' });
  foreignClient = await otherCa.issue({ commonName: 'sbx-foreign', usage: 'client' });
  selfSigned = await selfSignedServerCert(ca.dir);

  plain = await startRegistry();
  cleanups.push(plain.stop);
  digest = await pushImage(plain.url, 'test/busybox', 'latest', image);
  const storageDir = plain.storageDir;
  [tlsRegistry, mtlsRegistry, wrongName, selfSignedRegistry] = await Promise.all([
    startRegistry({ storageDir, tls: { certFile: server.certFile, keyFile: server.keyFile } }),
    startRegistry({ storageDir, tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: ca.caFile } }),
    startRegistry({ storageDir, tls: { certFile: elsewhere.certFile, keyFile: elsewhere.keyFile } }),
    startRegistry({ storageDir, tls: { certFile: selfSigned.certFile, keyFile: selfSigned.keyFile } }),
  ]);
  cleanups.push(tlsRegistry.stop, mtlsRegistry.stop, wrongName.stop, selfSignedRegistry.stop);
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** certs.d content: host → file name → text (an empty object makes an empty host dir). */
type CertsLayout = Record<string, Record<string, string>>;

async function writeCertsDir(layout: CertsLayout): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-certs.d-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  for (const [host, files] of Object.entries(layout)) {
    await mkdir(join(dir, host));
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, host, name), text);
  }
  return dir;
}

/** A store whose TLS entries come from a certs.d dir written from `layout`. */
async function store(layout: CertsLayout = {}): Promise<ImageStore> {
  const root = await mkdtemp(join(tmpdir(), 'sbx-images-tls-'));
  const s = new ImageStore({ root, egressAllow: LOOPBACK_EGRESS, tls: await loadRegistryCerts(await writeCertsDir(layout)), retry: SLOW_RETRY });
  cleanups.push(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
  });
  return s;
}

const caOnly = () => ({ 'ca.crt': ca.caPem });
const withClient = (pair: CertPair) => ({ 'ca.crt': ca.caPem, 'client.cert': pair.certPem, 'client.key': pair.keyPem });

async function assertPulled(s: ImageStore, reference: string): Promise<void> {
  const acquired = await s.acquire(reference);
  assert.equal(acquired.pulled, true);
  assert.equal(acquired.digest, digest);
  assert.equal(await readFile(join(acquired.layerDirs[0]!, 'etc/hostname'), 'utf8'), 'sbx\n');
  acquired.release();
}

/** Fails with a final image_pull_failed matching `re`, long before a retry could have happened. */
async function assertFailsFast(pull: Promise<unknown>, re: RegExp): Promise<void> {
  const started = performance.now();
  await assert.rejects(pull, (e: unknown) => {
    assert.ok(e instanceof ImagePullFailedError, String(e));
    assert.equal(e.code, 'image_pull_failed');
    assert.equal(e.retryable, false);
    assert.match(e.message, re);
    return true;
  });
  const ms = performance.now() - started;
  assert.ok(ms < FAST_ENOUGH_MS, `failed after ${Math.round(ms)} ms: it was retried`);
}

const ref = (registry: RunningRegistry) => `${registry.host}/test/busybox:latest`;
const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

it('a loopback TLS registry with a private CA: pulled over https with the CA in certs.d', async () => {
  assert.match(tlsRegistry.url, /^https:/);
  await assertPulled(await store({ [tlsRegistry.host]: caOnly() }), ref(tlsRegistry));
});

it('the same registry without its certs.d entry: plain http is refused, fast, with a hint', async () => {
  await assertFailsFast((await store()).acquire(ref(tlsRegistry)), /HTTP 400: Client sent an HTTP request to an HTTPS server.*give it a certs\.d entry/);
});

it('an entry without the CA (system roots only): certificate signed by unknown authority, not retried', async () => {
  const host = escaped(tlsRegistry.host);
  await assertFailsFast(
    (await store({ [tlsRegistry.host]: {} })).acquire(ref(tlsRegistry)),
    new RegExp(`TLS with registry ${host} failed: certificate signed by unknown authority \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE: .*\\); trust its CA with a \\.crt file in the certs\\.d entry for ${host}`),
  );
  // Another CA does not help either.
  await assertFailsFast((await store({ [tlsRegistry.host]: { 'ca.crt': otherCa.caPem } })).acquire(ref(tlsRegistry)), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

it('a self-signed registry certificate: refused without an entry for it, pulled with it as ca.crt', async () => {
  await assertFailsFast((await store({ [selfSignedRegistry.host]: {} })).acquire(ref(selfSignedRegistry)), /self-signed certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate\); trust that certificate/);
  await assertPulled(await store({ [selfSignedRegistry.host]: { 'ca.crt': selfSigned.certPem } }), ref(selfSignedRegistry));
});

it('a certificate for another name: refused even though its CA is trusted', async () => {
  await assertFailsFast(
    (await store({ [wrongName.host]: caOnly() })).acquire(ref(wrongName)),
    new RegExp(`certificate is not valid for ${escaped(wrongName.host)} \\(ERR_TLS_CERT_ALTNAME_INVALID: IP: 127\\.0\\.0\\.1 is not in the cert's list\\); reach the registry by a name its certificate lists`),
  );
});

it('mTLS: pulled with the client pair in certs.d; without it, or with a foreign one, refused with a clear error', async () => {
  await assertPulled(await store({ [mtlsRegistry.host]: withClient(client) }), ref(mtlsRegistry));
  const refused = new RegExp(
    `TLS with registry ${escaped(mtlsRegistry.host)} failed: the server refused the TLS handshake \\(ERR_SSL_\\w+: [^)]+\\); it may require a client certificate it trusts: a <name>\\.cert and <name>\\.key pair in the certs\\.d entry`,
  );
  await assertFailsFast((await store({ [mtlsRegistry.host]: caOnly() })).acquire(ref(mtlsRegistry)), refused);
  await assertFailsFast((await store({ [mtlsRegistry.host]: withClient(foreignClient) })).acquire(ref(mtlsRegistry)), refused);
});

it('a mirror with a certs.d entry is reached over https with its own CA', async () => {
  const registryDown = await deadAddress();
  const dead = registryDown.host;
  const root = await mkdtemp(join(tmpdir(), 'sbx-images-tls-'));
  const tls = await loadRegistryCerts(await writeCertsDir({ [tlsRegistry.host]: caOnly() }));
  const s = new ImageStore({ root, egressAllow: LOOPBACK_EGRESS, tls, mirrors: { [dead]: [tlsRegistry.host] }, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, deadlineMs: 1 } });
  cleanups.push(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
    await registryDown.close();
  });
  await assertPulled(s, `${dead}/test/busybox:latest`);
});

// ---- blob redirects to another host ----

interface SeenRequest {
  path: string;
  /** CN of the client certificate presented, '' for none. */
  clientCn: string;
  authorization: string | undefined;
}

interface HttpsHost {
  host: string;
  url: string;
  seen: SeenRequest[];
}

async function startHttpsHost(
  address: string,
  tls: { cert: CertPair; clientCa?: string },
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<HttpsHost> {
  const seen: SeenRequest[] = [];
  // A client certificate is asked for always; required only with clientCa.
  const server: Server = createServer(
    { cert: tls.cert.certPem, key: tls.cert.keyPem, requestCert: true, rejectUnauthorized: tls.clientCa !== undefined, ...(tls.clientCa ? { ca: tls.clientCa } : {}) },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({ path: req.url ?? '', clientCn: String(peer?.subject?.CN ?? ''), authorization: req.headers.authorization });
      handle(req, res);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as { port: number }).port;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { host: `${address}:${port}`, url: `https://${address}:${port}`, seen };
}

/** A TLS registry on 127.0.0.1 (client certificates of `ca` required) redirecting the layer to storage on 127.0.0.2. */
async function startRedirectingRegistry(): Promise<{ registry: HttpsHost; storage: HttpsHost }> {
  const layer = image.layers[0]!;
  const storageCert = await ca.issue({ commonName: 'storage', usage: 'server', altNames: ['IP:127.0.0.2'] });
  const storage = await startHttpsHost('127.0.0.2', { cert: storageCert }, (req, res) => {
    if (req.url?.startsWith('/layer')) res.writeHead(200, { 'content-length': layer.size }).end(layer.bytes);
    else res.writeHead(404).end();
  });
  const registryCert = await ca.issue({ commonName: 'localhost', usage: 'server' });
  const registry = await startHttpsHost('127.0.0.1', { cert: registryCert, clientCa: ca.caPem }, (req, res) => {
    const base = '/v2/test/busybox';
    if (req.url === `${base}/manifests/latest`) res.writeHead(200, { 'content-type': image.manifest.mediaType }).end(image.manifest.bytes);
    else if (req.url === `${base}/blobs/${image.config.digest}`) res.writeHead(200).end(image.config.bytes);
    else if (req.url === `${base}/blobs/${layer.digest}`) res.writeHead(307, { location: `${storage.url}/layer?sig=abc` }).end();
    else res.writeHead(404).end();
  });
  return { registry, storage };
}

it('a blob redirect to another host: that host gets the system roots or its own entry, never the registry client certificate', async () => {
  const { registry, storage } = await startRedirectingRegistry();
  const reference = `${registry.host}/test/busybox:latest`;

  // The registry's CA is not trusted for the storage host: it has no entry of its own.
  await assertFailsFast(
    (await store({ [registry.host]: withClient(client) })).acquire(reference),
    new RegExp(`TLS with ${escaped(storage.host)} \\(reached from registry ${escaped(registry.host)}\\) failed: certificate signed by unknown authority`),
  );

  const s = await store({ [registry.host]: withClient(client), [storage.host]: caOnly() });
  const before = storage.seen.length;
  const acquired = await s.acquire(reference);
  assert.equal(acquired.digest, digest);
  assert.equal(await readFile(join(acquired.layerDirs[0]!, 'etc/hostname'), 'utf8'), 'sbx\n');
  acquired.release();
  assert.ok(registry.seen.length >= 3 && registry.seen.every((r) => r.clientCn === 'sbx-worker'), JSON.stringify(registry.seen));
  assert.deepEqual(storage.seen.slice(before).map((r) => [r.path, r.clientCn, r.authorization]), [['/layer?sig=abc', '', undefined]]);
});
