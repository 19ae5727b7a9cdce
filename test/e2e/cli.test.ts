/**
 * The `sbx` command (cli/bin/sbx.js, as a user runs it) as a child process against the real stack:
 * exit codes, live streaming, Ctrl-C, logs -f, the job commands, private images through a Docker
 * config in a throw-away HOME, keys from the environment and the config file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SbxClient, type Job } from '../../client/src/index.ts';
import { busyboxImage } from '../fixtures/build-images.ts';
import { pushImage } from '../fixtures/oci-builder.ts';
import { waitUntil } from '../harness/redis.ts';
import { startRegistry, type RunningRegistry } from '../harness/registry.ts';
import { sbxCli } from '../harness/cli.ts';
import { startStack, type Stack } from '../harness/stack.ts';

/** What a user in this checkout runs (tsx over the sources); the tests run SBX, the same sources bundled (harness/cli.ts). */
const CHECKOUT_BIN = new URL('../../cli/bin/sbx.js', import.meta.url).pathname;
let SBX = '';
const USER_KEY = 'cli-user-key-aaaaaaaaaaaaaaaa';
const ADMIN_KEY = 'cli-admin-key-bbbbbbbbbbbbbbbb';
const PRIVATE = { username: 'cli-user', password: 'cli-pass-word-1' };

let stack: Stack;
let privateRegistry: RunningRegistry;
let privateImage: string;
let api: SbxClient;
let image: string;
const homes: string[] = [];
let receiptKeyFile = '';
let receiptPublicKeyFile = '';

before(async () => {
  SBX = await sbxCli();
  privateRegistry = await startRegistry({ htpasswd: { user: PRIVATE.username, password: PRIVATE.password } });
  const basic = `Basic ${Buffer.from(`${PRIVATE.username}:${PRIVATE.password}`).toString('base64')}`;
  await pushImage(privateRegistry.url, 'private/busybox', 'latest', await busyboxImage(), { authorization: basic });
  privateImage = `${privateRegistry.host}/private/busybox:latest`;
  const keyDir = newHome();
  receiptKeyFile = join(keyDir, 'receipt.pem');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(receiptKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  receiptPublicKeyFile = join(keyDir, 'receipt.pub');
  writeFileSync(receiptPublicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  stack = await startStack({ adminKey: ADMIN_KEY, egressAllow: [privateRegistry.host], env: { SBX_API_KEYS: `${USER_KEY}:cli,${ADMIN_KEY}:ops:admin`, SBX_RECEIPT_KEY_FILE: receiptKeyFile } });
  api = new SbxClient({ baseUrl: stack.apiUrl, apiKey: USER_KEY });
  image = stack.images.busybox;
});
after(async () => {
  await api?.close();
  await stack?.stop();
  await privateRegistry?.stop();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

/** A fresh HOME (no Docker config, no sbx config) per call unless one is given. */
function newHome(): string {
  const h = mkdtempSync(join(tmpdir(), 'sbx-cli-home-'));
  homes.push(h);
  return h;
}

interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function start(args: string[], opts: { env?: Record<string, string>; input?: string; home?: string; bin?: string } = {}): Spawned {
  const env = { PATH: process.env.PATH!, HOME: opts.home ?? newHome(), SBX_HOST: stack.apiUrl, SBX_API_KEY: USER_KEY, ...opts.env };
  const child = spawn(process.execPath, [opts.bin ?? SBX, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin!.end(opts.input ?? '');
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err })),
  );
  return { child, stdout: () => out, stderr: () => err, done };
}

const sbx = (args: string[], opts: Parameters<typeof start>[1] = {}) => start(args, opts).done;

/** The one job carrying this label (the attached `run` does not print its id). */
async function jobWithLabel(value: string): Promise<Job> {
  let found: Job | undefined;
  await waitUntil(async () => {
    for await (const j of api.listAll()) if (j.labels.test === value) found = j;
    return found !== undefined;
  }, 10_000, `the job labelled ${value}`);
  return found!;
}

const oneLine = (stderr: string) => {
  assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
};

describe('sbx run', () => {
  test("exits with the job's own code; stdout to stdout, stderr to stderr", async () => {
    const r = await sbx(['run', '--rm', image, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
    const ok = await sbx(['run', image, 'true']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('cli/bin/sbx.js in a checkout runs the sources (tsx) as the bundle runs them: output, exit code, version', async () => {
    const r = await sbx(['run', '--rm', image, 'sh', '-c', 'echo out; echo err >&2; exit 3'], { bin: CHECKOUT_BIN });
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const fromSources = await sbx(['--version'], { bin: CHECKOUT_BIN });
    const bundled = await sbx(['--version']);
    assert.deepEqual([fromSources.stdout, bundled.stdout], [`sbx version ${version}\n`, `sbx version ${version}\n`]);
  });

  test('Docker flags: -e, --env-file, -w, -u, --entrypoint, -i, limits, labels', async () => {
    const home = newHome();
    const envFile = join(home, 'env.list');
    writeFileSync(envFile, '# comment\nB=from-file\n\nC\n');
    const r = await sbx(
      ['run', '-e', 'A=1', '-eD=4', '--env-file', envFile, '-w', '/tmp', '-u', '1000:1000', '-m', '64m', '--cpus', '0.5', '--pids-limit', '32', '--timeout', '20s', '-l', 'test=flags', '-i',
        '--entrypoint', 'sh', image, '-c', 'echo $A $B $C $D; pwd; id -u; cat'],
      { home, env: { C: 'from-here' }, input: 'piped in\n' },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '1 from-file from-here 4\n/tmp\n1000\npiped in\n');
    const job = await jobWithLabel('flags');
    assert.deepEqual([job.limits.memoryBytes, job.limits.cpus, job.limits.pids, job.limits.timeoutMs], [64 * 1024 * 1024, 0.5, 32, 20_000]);
    assert.deepEqual(job.entrypoint, ['sh']);
  });

  test('--storage-opt size=, --ulimit nofile=, --cpu-time, --stop-signal, --stop-timeout and --idle-timeout set the job\'s limits; other options are usage errors', async () => {
    const r = await sbx(['run', '--storage-opt', 'size=1m', '--ulimit', 'nofile=64', '--cpu-time', '20s', '-l', 'test=more-limits', image, 'sh', '-c',
      'ulimit -n; dd if=/dev/zero of=/a bs=1k count=768 2>/dev/null; dd if=/dev/zero of=/b bs=1k count=768 2>&1 | grep -o "No space left on device" | head -n 1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '64\nNo space left on device\n', 'nofile 64; the writable layer full at 1 MiB (768 KiB, then 768 more)');
    const job = await jobWithLabel('more-limits');
    assert.deepEqual([job.limits.diskBytes, job.limits.openFiles, job.limits.cpuTimeMs], [1024 * 1024, 64, 20_000]);
    const spin = await sbx(['run', '--cpu-time', '300ms', '--timeout', '30s', image, 'sh', '-c', 'while :; do :; done']);
    assert.equal(spin.code, 137, `a job past its CPU time ends as a timeout: ${spin.stderr}`);
    // --stop-signal and --stop-timeout (docker's): at the timeout the command is asked to stop and may clean up first.
    const stopped = await sbx(['run', '--timeout', '1500ms', '--stop-signal', 'INT', '--stop-timeout', '10', image, 'sh', '-c',
      'trap "echo cleaned up; exit 4" INT; while :; do sleep 0.05; done']);
    assert.equal(stopped.code, 137, `still a timeout: ${stopped.stderr}`);
    assert.equal(stopped.stdout, 'cleaned up\n');
    const idle = await sbx(['run', '-d', '--format', 'json', '-i', '--idle-timeout', '5s', image, 'cat']);
    assert.equal((JSON.parse(idle.stdout) as Job).limits.idleTimeoutMs, 5000);
    await api.cancel((JSON.parse(idle.stdout) as Job).id);
    for (const [flags, message] of [
      [['--storage-opt', 'overlay2.size=1m'], /storage option "overlay2.size" is not supported: only size=<bytes>/],
      [['--ulimit', 'core=0'], /ulimit "core" is not supported: only nofile=<n>/],
      [['--ulimit', 'nofile=64:128'], /invalid argument "64:128" for "--ulimit" flag: sbx sets one limit, soft and hard/],
      [['--storage-opt', 'size=lots'], /invalid argument "lots" for "--storage-opt" flag/],
      [['--cpu-time', 'forever'], /invalid argument "forever" for "--cpu-time" flag/],
      [['--stop-signal', 'KILL'], /invalid argument "KILL" for "--stop-signal" flag: use one of SIGTERM, SIGINT/],
      [['--pull', 'never'], /invalid argument "never" for "--pull" flag: use "always" or "missing"/],
      [['--network', 'bridge'], /network "bridge" is not supported: use --network none \(loopback only\) or --network egress/],
      [['--egress-host', 'pypi.org'], /--egress-host needs --network egress/],
    ] as const) {
      const bad = await sbx(['run', ...flags, image, 'true']);
      assert.equal(bad.code, 125, flags.join(' '));
      assert.match(bad.stderr, message);
    }
  });

  test('--network egress gives the job its proxy (HTTPS_PROXY set); --egress-host names the only hosts it may reach', async () => {
    const r = await sbx(['run', '--network', 'egress', '--egress-host', 'pypi.org', image, 'sh', '-c',
      'echo "$HTTPS_PROXY"; printf "CONNECT example.com:443 HTTP/1.1\\r\\n\\r\\n" | nc 127.0.0.1 3128 | tail -n 1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'http://127.0.0.1:3128\nsbx egress proxy: refused example.com:443: example.com is not one of the job\'s egressHosts\n');
    const none = await sbx(['run', image, 'sh', '-c', 'echo "[$HTTPS_PROXY]"; nc 127.0.0.1 3128 </dev/null || echo no proxy']);
    assert.equal(none.stdout, '[]\nno proxy\n');
  });

  test('--file copies local files into the job before its command starts, with their modes; a bad one is refused before any job', async () => {
    const home = newHome();
    writeFileSync(join(home, 'grade.sh'), '#!/bin/sh\necho graded $(cat input.txt)\n', { mode: 0o755 });
    writeFileSync(join(home, 'input.txt'), 'forty-two\n', { mode: 0o600 });
    const r = await sbx(['run', '-w', '/tmp', '--file', join(home, 'grade.sh'), '--file', `${join(home, 'input.txt')}:input.txt`, '--file', `${join(home, 'input.txt')}:/srv/copy`,
      image, 'sh', '-c', './grade.sh && stat -c "%a %n" grade.sh input.txt /srv/copy']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'graded forty-two\n755 grade.sh\n600 input.txt\n600 /srv/copy\n');
    mkdirSync(join(home, 'tree', 'sub'), { recursive: true });
    writeFileSync(join(home, 'tree', 'a.txt'), 'A\n');
    writeFileSync(join(home, 'tree', 'sub', 'b.txt'), 'B\n', { mode: 0o640 });
    const tree = await sbx(['run', '-w', '/tmp', '--file', `${join(home, 'tree')}:in`, image, 'sh', '-c', 'cat in/a.txt in/sub/b.txt; stat -c "%a %n" in/sub/b.txt']);
    assert.equal(tree.code, 0, tree.stderr);
    assert.equal(tree.stdout, 'A\nB\n640 in/sub/b.txt\n', 'a directory brings its files');
    symlinkSync('/etc/passwd', join(home, 'tree', 'link'));
    for (const [arg, message] of [
      [join(home, 'missing'), /cannot read .*missing for --file: ENOENT/],
      [join(home, 'tree'), /cannot copy .*tree\/link with --file: it is a symbolic link/],
      [`${join(home, 'grade.sh')}:`, /invalid argument .* use src\[:dest\]/],
    ] as const) {
      const bad = await sbx(['run', '--file', arg, '-l', 'test=bad-file', image, 'true']);
      assert.equal(bad.code, 125, bad.stderr);
      assert.match(bad.stderr, message);
    }
    for await (const j of api.listAll()) assert.notEqual(j.labels.test, 'bad-file', 'no job was submitted');
  });

  test('--output-file collects files when the command ends; sbx cp copies one to a file, a directory or stdout', async () => {
    const home = newHome();
    const r = await sbx(['run', '-d', '--output-file', '/tmp/out/*.txt', image, 'sh', '-c', 'mkdir -p /tmp/out; echo result > /tmp/out/r.txt; printf "\\001\\002" > /tmp/out/bin.txt']);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    assert.equal((await sbx(['wait', id])).stdout, '0\n');
    assert.equal((await sbx(['cp', `${id}:/tmp/out/r.txt`, join(home, 'r.txt')])).code, 0);
    assert.equal(readFileSync(join(home, 'r.txt'), 'utf8'), 'result\n');
    assert.equal((await sbx(['cp', `${id}:/tmp/out/bin.txt`, home])).code, 0, 'into a directory, under the base name');
    assert.deepEqual([...readFileSync(join(home, 'bin.txt'))], [1, 2]);
    const out = await sbx(['cp', `${id}:/tmp/out/r.txt`, '-']);
    assert.equal(out.stdout, 'result\n');
    const missing = await sbx(['cp', `${id}:/etc/passwd`, '-']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no file "\/etc\/passwd" among what job .* left \(\/tmp\/out\/bin\.txt, \/tmp\/out\/r\.txt\)/);
    oneLine(missing.stderr);
    const usage = await sbx(['cp', id, '-']);
    assert.equal(usage.code, 125);
    assert.match(usage.stderr, /requires exactly 2 arguments/);
  });

  test('125 for an image that does not exist, 127 for a command that does not, 137 for a timeout; one-line errors', async () => {
    const missing = await sbx(['run', `${stack.registry.host}/nope/missing:1`, 'true']);
    assert.equal(missing.code, 125);
    assert.match(missing.stderr, /image_not_found/);
    oneLine(missing.stderr);
    const notFound = await sbx(['run', image, '/no/such/command']);
    assert.equal(notFound.code, 127, notFound.stderr);
    oneLine(notFound.stderr);
    const timeout = await sbx(['run', '--timeout', '500ms', image, 'sleep', '30']);
    assert.equal(timeout.code, 137, timeout.stderr);
    const badFlag = await sbx(['run', '--memory', 'lots', image, 'true']);
    assert.equal(badFlag.code, 125);
    assert.match(badFlag.stderr, /invalid argument "lots" for "--memory"/);
    const invalid = await sbx(['run', '-u', 'bad user!', image, 'true']);
    assert.equal(invalid.code, 125);
    assert.match(invalid.stderr, /Error response from the API: .*user.*\[invalid_request\]/);
    oneLine(invalid.stderr);
    const tooMuch = await sbx(['run', '--output-bytes', '1g', image, 'true']);
    assert.equal(tooMuch.code, 125);
    assert.match(tooMuch.stderr, /^sbx: Error response from the API: limits\.outputBytes must be <= \d+ \(this server's maximum\) \[invalid_request\]\n$/, 'the field\'s problem said once');
    const down = await sbx(['run', image, 'true'], { env: { SBX_HOST: 'http://127.0.0.1:1' } });
    assert.equal(down.code, 125);
    assert.match(down.stderr, /cannot reach the sbx API at http:\/\/127\.0\.0\.1:1/);
    oneLine(down.stderr);
  });

  test('streams live: the first line arrives while the job still runs; Ctrl-C cancels the job and exits 130', async () => {
    const p = start(['run', '-l', 'test=live', image, 'sh', '-c', 'echo first; echo first-err >&2; sleep 30; echo never']);
    await waitUntil(async () => p.stdout().includes('first\n') && p.stderr().includes('first-err\n'), 20_000, 'the first lines');
    const job = await jobWithLabel('live');
    assert.equal((await api.get(job.id)).status, 'running', 'the lines came while the job was running');
    assert.equal(p.child.exitCode, null);
    p.child.kill('SIGINT');
    const r = await p.done;
    assert.equal(r.code, 130, r.stderr);
    assert.equal(r.stdout, 'first\n');
    assert.equal((await api.wait(job.id, { timeoutMs: 10_000 })).status, 'cancelled');
  });

  test('SIGTERM cancels the job too, and exits 143 (128 + SIGTERM), not Ctrl-C\'s 130', async () => {
    const p = start(['run', '-l', 'test=sigterm', image, 'sh', '-c', 'echo up; sleep 30']);
    await waitUntil(async () => p.stdout().includes('up\n'), 20_000, 'the job running');
    const job = await jobWithLabel('sigterm');
    p.child.kill('SIGTERM');
    const r = await p.done;
    assert.equal(r.code, 143, r.stderr);
    assert.equal((await api.wait(job.id, { timeoutMs: 10_000 })).status, 'cancelled');
  });

  test('a reader that goes away (`sbx run … | head`): no stack trace, exit 141 as on SIGPIPE, and the job is cancelled; sbx logs the same', async () => {
    const p = start(['run', '-l', 'test=epipe', image, 'sh', '-c', 'while true; do echo line; sleep 0.01; done']);
    await waitUntil(async () => p.stdout().split('\n').length > 3, 20_000, 'three lines');
    const job = await jobWithLabel('epipe');
    p.child.stdout!.destroy(); // what head does after its lines: our end of the pipe closes
    const r = await p.done;
    assert.equal(r.stderr, '', 'nothing printed: there is no one to read it');
    assert.equal(r.code, 141);
    assert.equal((await api.wait(job.id, { timeoutMs: 10_000 })).status, 'cancelled', 'the job has nowhere to write');

    const long = await api.run({ image, command: ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done'] });
    assert.equal(long.status, 'succeeded');
    const logs = start(['logs', long.id]);
    // The reader gone before the output is written: after a first chunk it raced the CLI, whose
    // ~190 KB fit in the socket pair's buffers on a busy host (exit 0: everything written).
    logs.child.stdout!.destroy();
    const l = await logs.done;
    assert.equal(l.stderr, '');
    assert.equal(l.code, 141);
  });
});

describe('the job commands', () => {
  test('-d prints the id; wait, logs, inspect, ps, kill, stats, stop', async () => {
    const d = await sbx(['run', '-d', image, 'sh', '-c', 'echo out-1; echo err-1 >&2; sleep 0.2; echo out-2; exit 5']);
    assert.equal(d.code, 0, d.stderr);
    const id = d.stdout.trim();
    assert.match(id, /^j_[0-9A-Z]{26}$/);
    assert.deepEqual(await sbx(['wait', id]).then((r) => [r.code, r.stdout]), [0, '5\n']);

    const logs = await sbx(['logs', id]);
    assert.deepEqual([logs.code, logs.stdout, logs.stderr], [0, 'out-1\nout-2\n', 'err-1\n']);
    const since = await sbx(['logs', '--since', '0', id]);
    assert.equal(since.stdout, 'out-1\nout-2\n');
    const none = await sbx(['logs', '--since', new Date(Date.now() + 60_000).toISOString(), id]);
    assert.deepEqual([none.code, none.stdout], [0, '']);

    const inspected = JSON.parse((await sbx(['inspect', id])).stdout) as Job[];
    assert.equal(inspected[0]!.id, id);
    assert.equal(inspected[0]!.exitCode, 5);

    const running = await sbx(['run', '-d', image, 'sleep', '30']);
    const runningId = running.stdout.trim();
    await waitUntil(async () => (await api.get(runningId)).status === 'running', 20_000, 'the job to run');
    const ps = await sbx(['ps']);
    assert.match(ps.stdout, /^JOB ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+WORKER\n/);
    assert.ok(ps.stdout.includes(runningId) && !ps.stdout.includes(id), 'ps shows unfinished jobs only');
    assert.match(ps.stdout, /Up \d+ seconds?/);
    assert.ok((await sbx(['ps', '-a', '-q'])).stdout.split('\n').includes(id));
    const failed = (await sbx(['ps', '--filter', 'status=failed', '--format', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as Job);
    assert.ok(failed.some((j) => j.id === id) && failed.every((j) => j.status === 'failed'));

    const killed = await sbx(['kill', runningId]);
    // (Seen once in CI: exit 1, no output. Should it recur, the message says why and what the job was.)
    if (killed.code !== 0) assert.fail(`sbx kill exited ${killed.code}: ${killed.stderr.trim()}; the job: ${JSON.stringify(await api.get(runningId))}`);
    assert.equal(killed.stdout, `${runningId}\n`);
    assert.equal((await api.wait(runningId)).status, 'cancelled');
    assert.equal((await sbx(['wait', runningId])).stdout, '137\n');
    const again = await sbx(['kill', runningId]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /is not running/);
    oneLine(again.stderr);
    const unknown = await sbx(['inspect', 'j_00000000000000000000000000']);
    assert.equal(unknown.code, 1);

    // sbx stop (docker stop): the signal, time to exit, then the kill; the job's cleanup runs.
    const stoppable = (await sbx(['run', '-d', image, 'sh', '-c', 'trap "echo bye; exit 3" INT; echo up; while :; do sleep 0.05; done'])).stdout.trim();
    await waitUntil(async () => (await api.get(stoppable, { output: true })).output?.stdout === 'up\n', 20_000, 'the job to run');
    // sbx stats (docker stats --no-stream): the running job's usage as last read, every 2 s.
    await waitUntil(async () => Boolean((await api.get(stoppable)).liveUsage), 15_000, 'the job\'s live usage');
    const stats = await sbx(['stats', stoppable]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, /^JOB ID\s+STATUS\s+CPU TIME\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS\s+READ\n/);
    assert.match(stats.stdout, new RegExp(`${stoppable}\\s+running\\s+\\S+\\s+[\\d.]+[kMG]?B / 268MB\\s+[\\d.]+%\\s+[2-6]\\s+\\d+ seconds? ago`));
    assert.deepEqual(await sbx(['stop', '-s', 'INT', '-t', '10', stoppable]).then((r) => [r.code, r.stdout]), [0, `${stoppable}\n`]);
    const stopped = await api.wait(stoppable);
    assert.deepEqual([stopped.status, stopped.exitCode], ['cancelled', 3]);
    assert.equal((await sbx(['logs', stoppable])).stdout, 'up\nbye\n');
    const stopAgain = await sbx(['stop', stoppable]);
    assert.equal(stopAgain.code, 1);
    assert.match(stopAgain.stderr, /cannot stop job .*: it is not running/);
    const badSignal = await sbx(['stop', '-s', 'KILL', stoppable]);
    assert.equal(badSignal.code, 125);
    assert.match(badSignal.stderr, /invalid argument "KILL" for "--signal" flag: use one of SIGTERM/);
  });

  test('verify checks signed receipts: by id with the server\'s key or --key, from files; a changed document or another key is NOT verified (exit 1)', async () => {
    const d = await sbx(['run', '-d', image, 'sh', '-c', 'echo graded; exit 2']);
    const id = d.stdout.trim();
    await sbx(['wait', id]);
    const ok = await sbx(['verify', id]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^${id}\tverified \\(key [0-9a-f]{16}\\)\tfailed exit 2\t${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}@sha256:[0-9a-f]{64}\tstdout 7 B sha256:[0-9a-f]{64}\tnot signed: [^\n]*timings\.createdAt[^\n]*\n$`));
    assert.doesNotMatch(ok.stdout, /not signed: .*\b(labels|error)\b/, 'labels and error are signed');
    assert.equal((await sbx(['verify', '--key', receiptPublicKeyFile, id])).code, 0, 'with the public key held apart');

    // A document handed on (as inspect prints it): verified as it is, not once changed.
    const home = newHome();
    const file = join(home, 'job.json');
    writeFileSync(file, (await sbx(['inspect', id])).stdout);
    const fromFile = await sbx(['verify', '--file', '--key', receiptPublicKeyFile, '--format', 'json', file]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    const payload = JSON.parse(fromFile.stdout).payload;
    assert.deepEqual([payload.jobId, payload.exitCode, payload.stdout.bytes], [id, 2, 7]);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as Job[];
    doc[0]!.receipt!.payload = doc[0]!.receipt!.payload.replace('"exitCode":2', '"exitCode":0');
    const changed = join(home, 'changed.json');
    writeFileSync(changed, JSON.stringify(doc));
    const bad = await sbx(['verify', '--file', '--key', receiptPublicKeyFile, changed]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, new RegExp(`^${id}\tNOT verified\tthe signature does not match the payload`));
    const otherKey = join(home, 'other.pub');
    writeFileSync(otherKey, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    assert.equal((await sbx(['verify', '--file', '--key', otherKey, file])).code, 1, 'another key does not verify it');
    // --key with several public keys (a retired one first): the one the receipt names verifies it.
    const bundle = join(home, 'keys.pem');
    writeFileSync(bundle, readFileSync(otherKey, 'utf8') + readFileSync(receiptPublicKeyFile, 'utf8'));
    assert.equal((await sbx(['verify', '--file', '--key', bundle, file])).code, 0, 'the bundle holds the signing key');
    const withPrivate = join(home, 'with-private.pem');
    writeFileSync(withPrivate, readFileSync(bundle, 'utf8') + generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const refused = await sbx(['verify', '--key', withPrivate, id]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--key .*with-private.pem: holds a private key: give only public keys/);
    // One id or file that cannot be read is an error on its own line; the others are still checked.
    const unknownId = 'j_00000000000000000000000000';
    const mixed = await sbx(['verify', unknownId, id]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stdout, new RegExp(`^${id}\tverified `));
    // Without --key, stderr first says the server's own keys were trusted (cli/src/commands/verify.test.ts).
    assert.match(mixed.stderr, new RegExp(`^sbx: checking with the keys the server lists \\(.*\\), not a key held apart: .*\nsbx: ${unknownId}: no job ${unknownId}\n$`));
    const missing = join(home, 'missing.json');
    const mixedFiles = await sbx(['verify', '--file', '--key', receiptPublicKeyFile, missing, file]);
    assert.equal(mixedFiles.code, 1);
    assert.match(mixedFiles.stdout, new RegExp(`^${id}\tverified `));
    assert.match(mixedFiles.stderr, new RegExp(`^sbx: ${missing}: cannot read it as JSON`));
    const notAKey = await sbx(['verify', '--key', file, id]);
    assert.equal(notAKey.code, 1);
    assert.match(notAKey.stderr, /--key .*job.json: holds no public key in PEM/);
    oneLine(notAKey.stderr);
  });

  test('run --output-bytes/--output-tail keep the start and the end and say what was left out; --output-idle-timeout ends a silent job with its reason', async () => {
    const full = `${Array.from({ length: 1000 }, (_, i) => i + 1).join('\n')}\n`;
    const cut = await sbx(['run', '--output-bytes', '100', '--output-tail', '20', image, 'seq', '1', '1000']);
    assert.equal(cut.code, 0, cut.stderr);
    assert.equal(cut.stdout, full.slice(0, 80) + full.slice(-20));
    assert.match(cut.stderr, new RegExp(`^sbx: job j_[0-9A-Z]{26}'s output was cut at limits\\.outputBytes: ${full.length - 100} bytes of stdout and 0 of stderr left out, between its first 80 and last 20 bytes\\n$`));

    const silent = await sbx(['run', '--output-idle-timeout', '1.5s', image, 'sh', '-c', 'echo started; sleep 30']);
    assert.equal(silent.code, 137);
    assert.equal(silent.stdout, 'started\n');
    assert.match(silent.stderr, /^sbx: job j_[0-9A-Z]{26} was killed: the job wrote no output for limits\.outputIdleTimeoutMs \(1500 ms\)\n$/);

    const bad = await sbx(['run', '--output-tail', 'lots', image, 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /invalid argument "lots" for "--output-tail" flag/);
  });

  test('logs -f follows a running job to its end, and replays a finished one', async () => {
    const d = await sbx(['run', '-d', image, 'sh', '-c', 'echo a; echo a-err >&2; sleep 30; echo never']);
    const id = d.stdout.trim();
    await waitUntil(async () => (await api.get(id)).status === 'running', 20_000, 'the job to run');
    const follow = start(['logs', '-f', id]);
    await waitUntil(async () => follow.stdout() === 'a\n' && follow.stderr() === 'a-err\n', 20_000, 'logs -f to print the first lines');
    assert.equal(follow.child.exitCode, null, 'logs -f waits for more while the job runs');
    await api.cancel(id);
    const r = await follow.done;
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'a\n', 'a-err\n']);
    const replay = await sbx(['logs', '-f', id]);
    assert.deepEqual([replay.code, replay.stdout, replay.stderr], [0, 'a\n', 'a-err\n']);
  });

  test('logs -n keeps the last lines of both streams, -t puts each line\'s time before it; without -f a running job\'s output so far', async () => {
    const d = await sbx(['run', '-d', image, 'sh', '-c', 'for i in 1 2 3 4 5; do echo out$i; done; echo err1 >&2; printf partial; sleep 30']);
    const id = d.stdout.trim();
    await waitUntil(async () => (await sbx(['logs', id])).stdout.endsWith('partial'), 20_000, 'the job to write its output');
    const all = await sbx(['logs', id]);
    assert.deepEqual([all.code, all.stdout, all.stderr], [0, 'out1\nout2\nout3\nout4\nout5\npartial', 'err1\n']);
    const last2 = await sbx(['logs', '-n', '2', id]);
    assert.deepEqual([last2.code, last2.stdout, last2.stderr], [0, 'partial', 'err1\n'], 'the last two lines of the two streams together');
    const last4 = await sbx(['logs', '--tail', '4', id]);
    assert.deepEqual([last4.stdout, last4.stderr], ['out4\nout5\npartial', 'err1\n']);
    const stamped = await sbx(['logs', '-t', '-n', '3', id]);
    const ts = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
    assert.match(stamped.stdout, new RegExp(`^${ts} out5\n${ts} partial$`));
    assert.match(stamped.stderr, new RegExp(`^${ts} err1\n$`));
    const when = Date.parse(stamped.stdout.split(' ')[0]!);
    assert.ok(Math.abs(Date.now() - when) < 60_000, `the time of the line (${stamped.stdout.split(' ')[0]}) is when it was written`);
    // -f -n 1: the last complete line, then on to the end (the unfinished line once the job ends).
    const follow = start(['logs', '-f', '-n', '1', id]);
    await waitUntil(async () => follow.stderr() === 'err1\n', 20_000, 'logs -f -n 1 to print the last line');
    assert.equal(follow.stdout(), '');
    await api.cancel(id);
    const r = await follow.done;
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'partial', 'err1\n']);
    const bad = await sbx(['logs', '--tail', 'ten', id]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid --tail "ten": a number of lines, or "all"/);
  });

  test('logs --since/--until keep the output written in that window (by the times -t shows)', async () => {
    const d = await sbx(['run', '-d', image, 'sh', '-c', 'echo early; sleep 1; echo late']);
    const id = d.stdout.trim();
    await sbx(['wait', id]);
    const stamped = (await sbx(['logs', '-t', id])).stdout.trim().split('\n');
    assert.equal(stamped.length, 2, stamped.join('\n'));
    const late = stamped[1]!.split(' ')[0]!;
    assert.deepEqual([(await sbx(['logs', '--until', late, id])).stdout, (await sbx(['logs', '--since', late, id])).stdout], ['early\n', 'late\n']);
    const bad = await sbx(['logs', '--until', 'yesterday-ish', id]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid --until "yesterday-ish"/);
  });
});

describe('registry credentials from the Docker config', () => {
  test('without credentials the private image is refused (125); with auths, a credential helper, or after sbx login, it runs', async () => {
    const anonymous = await sbx(['run', privateImage, 'echo', 'private']);
    assert.equal(anonymous.code, 125);
    assert.match(anonymous.stderr, /registry_unauthorized/);

    const home = newHome();
    mkdirSync(join(home, '.docker'));
    const auth = Buffer.from(`${PRIVATE.username}:${PRIVATE.password}`).toString('base64');
    writeFileSync(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { [`http://${privateRegistry.host}`]: { auth } } }));
    const withAuths = await sbx(['run', privateImage, 'echo', 'private'], { home });
    assert.deepEqual([withAuths.code, withAuths.stdout], [0, 'private\n'], withAuths.stderr);

    // A credential helper on PATH, named in credHelpers for this registry (DOCKER_CONFIG points elsewhere).
    const helperHome = newHome();
    const bin = join(helperHome, 'bin');
    mkdirSync(bin);
    const log = join(helperHome, 'helper.log');
    writeFileSync(join(bin, 'docker-credential-sbxtest'), `#!/bin/sh\nread server\necho "$1 $server" >> ${log}\nprintf '{"ServerURL":"%s","Username":"${PRIVATE.username}","Secret":"${PRIVATE.password}"}' "$server"\n`);
    chmodSync(join(bin, 'docker-credential-sbxtest'), 0o755);
    const dockerConfig = join(helperHome, 'docker-conf');
    mkdirSync(dockerConfig);
    writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ credHelpers: { [privateRegistry.host]: 'sbxtest' } }));
    const withHelper = await sbx(['run', privateImage, 'echo', 'helped'], { home: helperHome, env: { DOCKER_CONFIG: dockerConfig, PATH: `${bin}:${process.env.PATH}` } });
    assert.deepEqual([withHelper.code, withHelper.stdout], [0, 'helped\n'], withHelper.stderr);
    assert.equal(readFileSync(log, 'utf8'), `get ${privateRegistry.host}\n`);

    const loginHome = newHome();
    const login = await sbx(['login', '-u', PRIVATE.username, '--password-stdin', privateRegistry.host], { home: loginHome, input: `${PRIVATE.password}\n` });
    assert.equal(login.code, 0, login.stderr);
    const file = join(loginHome, '.docker', 'config.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { auths: { [privateRegistry.host]: { auth } } });
    const afterLogin = await sbx(['run', privateImage, 'echo', 'logged-in'], { home: loginHome });
    assert.deepEqual([afterLogin.code, afterLogin.stdout], [0, 'logged-in\n'], afterLogin.stderr);
  });
});

describe('settings, images, workers, help, completion', () => {
  test('the API key from SBX_API_KEY or the config file; a wrong key is a one-line 401', async () => {
    const home = newHome();
    mkdirSync(join(home, '.config', 'sbx'), { recursive: true });
    writeFileSync(join(home, '.config', 'sbx', 'config.json'), JSON.stringify({ host: stack.apiUrl, apiKey: ADMIN_KEY }));
    const fromFile = await sbx(['workers', '--format', 'json'], { home, env: { SBX_HOST: '', SBX_API_KEY: '' } });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal((JSON.parse(fromFile.stdout) as { id: string }).id, stack.workers.length ? (await new SbxClient({ baseUrl: stack.apiUrl, apiKey: ADMIN_KEY }).workers())[0]!.id : '');
    const tenant = await sbx(['workers'], { home, env: { SBX_API_KEY: USER_KEY } });
    assert.equal(tenant.code, 1, 'the environment wins over the file: a tenant key may not list workers');
    assert.match(tenant.stderr, /\[forbidden\]/);
    const wrong = await sbx(['ps'], { env: { SBX_API_KEY: 'wrong-key-cccccccccccccccccc' } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /\[unauthorized\]/);
    oneLine(wrong.stderr);
  });

  test('images, pull, rmi, workers as tables', async () => {
    const admin = { SBX_API_KEY: ADMIN_KEY };
    await api.run({ image, command: ['true'] });
    const workers = await sbx(['workers'], { env: admin });
    assert.match(workers.stdout, /^WORKER ID\s+HOST\s+FREE SLOTS/);
    const images = await sbx(['images'], { env: admin });
    assert.match(images.stdout, /^REPOSITORY\s+TAG\s+DIGEST\s+SIZE/);
    assert.ok(images.stdout.includes(`${stack.registry.host}/test/busybox`));
    const pulled = await sbx(['pull', image], { env: admin });
    assert.match(pulled.stdout, /pulling on 1 worker/);
    const rmi = await sbx(['rmi', image], { env: admin });
    assert.equal(rmi.code, 0, rmi.stderr);
    assert.match(rmi.stdout, /^Deleted: sha256:[0-9a-f]{64}\n$/);
  });

  test('--help for every command; completion scripts parse', async () => {
    const help = await sbx(['--help']);
    const commands = [...help.stdout.matchAll(/^ {2}([a-z]+) {3,}/gm)].map((m) => m[1]!);
    assert.ok(commands.length >= 12, help.stdout);
    for (const c of commands) {
      const r = await sbx([c, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^Usage:  sbx ${c}`));
    }
    for (const shell of ['bash', 'zsh']) {
      const script = await sbx(['completion', shell]);
      assert.equal(script.code, 0);
      const file = join(newHome(), `sbx.${shell}`);
      writeFileSync(file, script.stdout);
      if (shell === 'bash') {
        const check = await new Promise<number | null>((r) => spawn('bash', ['-n', file]).on('close', r));
        assert.equal(check, 0);
      }
    }
  });
});
