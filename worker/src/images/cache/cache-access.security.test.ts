/**
 * Host root through the image cache (issue 9, item 1): cached layers keep setuid bits and file
 * capabilities (the jobs need them), so an unprivileged user of the worker host must not reach them.
 * Each test pulls an image with a setuid-root busybox from a real registry into a store under a state
 * directory prepared as the worker does, then attacks it as uid 65534 from outside.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ConfigError } from '../../../../core/src/config.ts';
import { egressAllowList } from '../../../../core/src/egress/egress-allow.ts';
import { startRegistry, type RunningRegistry } from '../../../../test/harness/registry.ts';
import { busyboxImage } from '../../../../test/fixtures/build-images.ts';
import { buildPrivilegeProbe } from '../../../../test/fixtures/privilege-probe.ts';
import { buildLayer, pushImage } from '../../../../test/fixtures/oci-builder.ts';
import { prepareStateDir, type StateDirLogger } from '../../state-dir.ts';
import { ImageStore } from '../image-store.ts';

const it = (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { timeout: 60_000 }, fn);

const NOBODY = 65534;
let registry: RunningRegistry;
let image: string;
/** Plays /var/lib: a directory everybody may traverse (a mkdtemp dir is 0700, which would hide the bug). */
let base: string;
/** A static program printing its euid (test/fixtures/privilege-probe.ts); busybox would drop setuid root for `id`. */
let probe: Buffer;
const stores: ImageStore[] = [];

before(async () => {
  registry = await startRegistry();
  probe = buildPrivilegeProbe();
  const suid = await buildLayer([
    { type: 'dir', path: 'opt' },
    { type: 'file', path: 'opt/privprobe', content: probe, mode: 0o4755, uid: 0, gid: 0 },
  ]);
  image = `${registry.host}/test/setuid:latest`;
  await pushImage(registry.url, 'test/setuid', 'latest', await busyboxImage({ extraLayers: [suid] }));
  base = await mkdtemp(join(tmpdir(), 'sbx-cache-access-'));
  chmodSync(base, 0o755);
});

after(async () => {
  for (const s of stores) await s.close();
  await registry?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

/**
 * Runs argv as uid/gid 65534 without supplementary groups (what any local user can do). Not with
 * setpriv(1): it execs while root's capabilities are still effective (so execve of a file in a 0700
 * root directory succeeds); node drops groups, gid and uid in the child first.
 */
function asNobody(argv: string[]): { status: number | null; errno: string | undefined; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, errno: (r.error as NodeJS.ErrnoException | undefined)?.code, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Pulls the setuid image into a store at `root`; returns the cached setuid binary's path. */
async function pullSetuid(root: string): Promise<string> {
  const store = new ImageStore({ root, egressAllow: egressAllowList(registry.host), retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20, deadlineMs: 5_000 } });
  stores.push(store);
  const held = await store.acquire(image);
  held.release();
  const path = join(held.layerDirs.at(-1)!, 'opt/privprobe');
  const st = statSync(path);
  // The cached copy is what the attack wants: setuid, owned by host root.
  assert.equal(st.mode & 0o7777, 0o4755, 'the cache keeps the setuid bit');
  assert.equal(st.uid, 0);
  return path;
}

function assertUnreachable(binary: string, dirs: string[]): void {
  const ran = asNobody([binary, 'euid']);
  assert.equal(ran.errno, 'EACCES', `uid ${NOBODY} ran the cached setuid binary: exit ${ran.status}, euid ${JSON.stringify(ran.stdout.trim())} ${ran.stderr}`);
  for (const dir of dirs) {
    const listed = asNobody(['ls', dir]);
    assert.notEqual(listed.status, 0, `uid ${NOBODY} listed ${dir}: ${listed.stdout}`);
    assert.match(listed.stderr, /Permission denied/, listed.stderr);
  }
}

const logs: Array<{ level: string; msg: string; obj: object }> = [];
const logger: StateDirLogger = { warn: (obj, msg) => void logs.push({ level: 'warn', obj, msg }) };

it('control: uid 65534 runs a setuid-root binary it can reach, with euid 0 (what the cache must prevent)', async () => {
  const r = asNobody(['id', '-u']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), String(NOBODY));
  const reachable = join(base, 'reachable');
  mkdirSync(reachable, { mode: 0o755 });
  writeFileSync(join(reachable, 'privprobe'), probe);
  chmodSync(join(reachable, 'privprobe'), 0o4755);
  const ran = asNobody([join(reachable, 'privprobe'), 'euid']);
  assert.equal(ran.stdout.trim(), '0', `${ran.errno ?? ''} ${ran.stderr}`);
  assert.equal(asNobody(['ls', reachable]).stdout.trim(), 'privprobe');
});

it('an unprivileged host user cannot run a cached setuid-root binary (EACCES), nor list the cache', async () => {
  // An existing state dir as an older worker or `mkdir -p` left it: 0755.
  const stateDir = join(base, 'state');
  mkdirSync(stateDir, { mode: 0o755 });
  chmodSync(stateDir, 0o755);
  logs.length = 0;
  await prepareStateDir(stateDir, logger);
  const binary = await pullSetuid(join(stateDir, 'images'));
  assertUnreachable(binary, [stateDir, join(stateDir, 'images'), join(stateDir, 'images/layers/sha256')]);
  assert.equal(statSync(stateDir).mode & 0o7777, 0o700);
  assert.ok(logs.some((l) => l.level === 'warn' && /tightened to 0700/.test(l.msg) && /was 0755/.test(l.msg)), JSON.stringify(logs));
});

it('the image cache alone is root-only: every directory of its own 0700, an older 0755 cache tightened', async () => {
  // No prepared state dir around it (the store is also used on its own): it must hold by itself.
  const root = join(base, 'images-only');
  for (const dir of ['', 'layers', 'layers/sha256', 'tmp', 'blobs', 'blobs/sha256']) mkdirSync(join(root, dir), { recursive: true, mode: 0o755 });
  const binary = await pullSetuid(root);
  assertUnreachable(binary, [root]);
  const loose: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (relative(root, dir) === join('layers', 'sha256')) continue; // a layer keeps its image's modes
      const mode = statSync(path).mode & 0o7777;
      if (e.isDirectory() && mode !== 0o700) loose.push(`${relative(root, path)} ${mode.toString(8)}`);
      if (e.isFile() && (mode & 0o077) !== 0) loose.push(`${relative(root, path)} ${mode.toString(8)}`);
      if (e.isDirectory()) walk(path);
    }
  };
  assert.equal(statSync(root).mode & 0o7777, 0o700);
  walk(root);
  assert.deepEqual(loose, [], 'cache directories and records reachable by others');
});

it('prepareStateDir: created 0700 with 0755 parents; another owner taken back; a file or a shared dir refused; unsafe parents warned', async () => {
  const fresh = join(base, 'a/b/state');
  logs.length = 0;
  assert.equal(await prepareStateDir(fresh, logger), fresh);
  assert.equal(statSync(fresh).mode & 0o7777, 0o700);
  assert.equal(statSync(join(base, 'a')).mode & 0o7777, 0o755);
  assert.equal(logs.length, 0, `a new state dir is nothing to warn about: ${JSON.stringify(logs)}`);

  // Owned by another user, who could chmod it back: ownership goes to root.
  const foreign = join(base, 'foreign');
  mkdirSync(foreign, { mode: 0o777 });
  chmodSync(foreign, 0o777);
  chownSync(foreign, NOBODY, NOBODY);
  await prepareStateDir(foreign, logger);
  const st = statSync(foreign);
  assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o700, 0, 0]);
  assert.ok(logs.some((l) => /was 0777 65534:65534/.test(l.msg)), JSON.stringify(logs));

  const file = join(base, 'file');
  writeFileSync(file, '');
  await assert.rejects(prepareStateDir(file, logger), (e) => e instanceof ConfigError && /is not a directory/.test(e.message));

  // A shared directory (SBX_STATE_DIR=/var/lib by mistake) is refused, not made root-only.
  const shared = join(base, 'shared');
  mkdirSync(join(shared, 'dpkg'), { recursive: true, mode: 0o755 });
  chmodSync(shared, 0o755);
  await assert.rejects(prepareStateDir(shared, logger), (e) => e instanceof ConfigError && /holds dpkg: .* a directory of its own/.test(e.message));
  assert.equal(statSync(shared).mode & 0o7777, 0o755);

  const open = join(base, 'world');
  mkdirSync(open, { mode: 0o777 });
  chmodSync(open, 0o777); // no sticky bit: anyone may rename the state dir away
  logs.length = 0;
  await prepareStateDir(join(open, 'state'), logger);
  assert.ok(logs.some((l) => l.level === 'warn' && /writable by other users/.test(l.msg)), JSON.stringify(logs));
});
