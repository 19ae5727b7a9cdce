/**
 * certs.d parsing (Docker's layout): what becomes an entry, what is ignored, and every unusable
 * file named in one RegistryCertsError.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ConfigError } from '../../../../core/src/config.ts';
import { createTestCa, type CertPair, type TestCa } from '../../../../test/harness/test-pki.ts';
import { loadRegistryCerts, RegistryCertsError } from './registry-certs.ts';
import { runWithoutDacOverride } from '../../../../test/harness/without-dac-override.ts';

let ca: TestCa;
let client: CertPair;
let other: CertPair;
const dirs: string[] = [];

before(async () => {
  ca = await createTestCa();
  [client, other] = await Promise.all([ca.issue({ commonName: 'a', usage: 'client' }), ca.issue({ commonName: 'b', usage: 'client' })]);
});

after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await ca.remove();
});

async function certsDir(layout: Record<string, Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-certs.d-'));
  dirs.push(dir);
  for (const [host, files] of Object.entries(layout)) {
    await mkdir(join(dir, host));
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, host, name), text);
  }
  return dir;
}

/** Rejects with a RegistryCertsError (a ConfigError) whose problems match `patterns`, in order. */
async function assertProblems(dir: string, patterns: RegExp[]): Promise<void> {
  await assert.rejects(loadRegistryCerts(dir), (e: unknown) => {
    assert.ok(e instanceof RegistryCertsError, String(e));
    assert.ok(e instanceof ConfigError);
    assert.equal(e.code, 'registry_certs_invalid');
    assert.equal(e.problems.length, patterns.length, e.problems.join('\n'));
    patterns.forEach((p, i) => assert.match(e.problems[i]!, p));
    return true;
  });
}

test('a missing directory has no entries', async () => {
  assert.deepEqual(await loadRegistryCerts(join(tmpdir(), 'sbx-no-such-certs.d')), {});
});

test("Docker's layout: *.crt are CAs, one <name>.cert + <name>.key pair, anything else ignored", async () => {
  const bundle = `${ca.caPem}\n${client.certPem}`;
  const dir = await certsDir({
    'registry.example.com:5000': { 'ca.crt': ca.caPem, 'extra.crt': bundle, 'client.cert': client.certPem, 'client.key': client.keyPem, 'README.txt': 'ignored' },
    'ca-only.example.com': { 'ca.crt': ca.caPem },
    '[::1]:5001': {},
  });
  await writeFile(join(dir, 'stray-file.crt'), 'not a host dir: ignored');
  await mkdir(join(dir, '.hidden'));
  const tls = await loadRegistryCerts(dir);
  assert.deepEqual(Object.keys(tls).sort(), ['[::1]:5001', 'ca-only.example.com', 'registry.example.com:5000']);
  assert.deepEqual(tls['registry.example.com:5000'], { ca: [ca.caPem, bundle], client: { cert: client.certPem, key: client.keyPem } });
  assert.deepEqual(tls['ca-only.example.com'], { ca: [ca.caPem] });
  assert.deepEqual(tls['[::1]:5001'], { ca: [] }, 'an empty entry still means https, with the system roots');
});

test('files may be symlinks (Kubernetes secret volumes)', async () => {
  const dir = await certsDir({ 'reg:5000': {} });
  await symlink(ca.caFile, join(dir, 'reg:5000', 'ca.crt'));
  await symlink(client.certFile, join(dir, 'reg:5000', 'client.cert'));
  await symlink(client.keyFile, join(dir, 'reg:5000', 'client.key'));
  const tls = await loadRegistryCerts(dir);
  assert.deepEqual(tls['reg:5000'], { ca: [ca.caPem], client: { cert: client.certPem, key: client.keyPem } });
});

test('a .cert without its .key, or a .key without its .cert, is an error naming the file', async () => {
  const dir = await certsDir({ 'reg:5000': { 'client.cert': client.certPem, 'ca.key': client.keyPem } });
  const host = join(dir, 'reg:5000');
  await assertProblems(dir, [
    new RegExp(`^${host}/ca\\.key: key without its client certificate ca\\.cert$`),
    new RegExp(`^${host}/client\\.cert: client certificate without its key client\\.key \\(CA certificates must end in \\.crt\\)$`),
  ]);
});

test('unusable contents are named: not PEM, a key of another certificate, two pairs; all at once', async () => {
  const dir = await certsDir({
    'a:5000': { 'ca.crt': 'hello' },
    'b:5000': { 'client.cert': client.certPem, 'client.key': other.keyPem },
    'c:5000': { 'one.cert': client.certPem, 'one.key': client.keyPem, 'two.cert': other.certPem, 'two.key': other.keyPem },
    'd:5000': { 'client.cert': client.certPem, 'client.key': 'not a key' },
  });
  await assertProblems(dir, [
    /a:5000\/ca\.crt: no PEM certificate in it/,
    /b:5000\/client\.cert: its key client\.key does not belong to it/,
    /c:5000: one\.cert, two\.cert: one client certificate pair per registry is supported/,
    /d:5000\/client\.key: not a PEM private key/,
  ]);
});

test('an unreadable file is named', async () => {
  const dir = await certsDir({ 'reg:5000': { 'ca.crt': ca.caPem } });
  await chmod(join(dir, 'reg:5000', 'ca.crt'), 0o000);
  // In a child without the capabilities that let root read anything (CI runs as root).
  const module = new URL('./registry-certs.ts', import.meta.url).pathname;
  const r = runWithoutDacOverride(`import { loadRegistryCerts } from ${JSON.stringify(module)};
    try { await loadRegistryCerts(${JSON.stringify(dir)}); console.log('accepted'); } catch (e) { console.log(JSON.stringify({ code: e.code, problems: e.problems })); }`);
  const got = JSON.parse(r.stdout.trim() || '{}') as { code?: string; problems?: string[] };
  assert.equal(got.code, 'registry_certs_invalid', r.stdout + r.stderr);
  assert.equal(got.problems?.length, 1, JSON.stringify(got.problems));
  assert.match(got.problems![0]!, /reg:5000\/ca\.crt: cannot be read \(EACCES\)/);
});
