/**
 * The whole path with real parts: HTTP → Redis/BullMQ → worker → registry pull → native launcher →
 * output over SSE. Each test asserts what a user of the API sees.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { hostname, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { useStack } from '../harness/use-stack.ts';
import { waitUntil } from '../harness/redis.ts';
import { parseServerSentEvents } from '../../client/src/sse.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import { receiptKeyId } from '../../core/src/receipts/public-keys.ts';
import { checkReceipt, type ReceiptKey } from '../../client/src/receipt.ts';
import { attachJob } from '../../client/src/attach.ts';

// This stack signs receipts: every job here that runs gets one. The worker holds the private key
// (SBX_RECEIPT_KEY_FILE); the API only public keys (SBX_RECEIPT_PUBLIC_KEYS_FILE): a retired one
// and the current one.
const keyDir = mkdtempSync(join(tmpdir(), 'sbx-receipt-key-'));
const receiptKeyFile = join(keyDir, 'receipt.pem');
const current = generateKeyPairSync('ed25519');
const retired = generateKeyPairSync('ed25519');
const pem = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) => k.export({ type: 'spki', format: 'pem' }).toString();
writeFileSync(receiptKeyFile, current.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
const publicKeysFile = join(keyDir, 'receipt-public.pem');
writeFileSync(publicKeysFile, `# retired\n${pem(retired.publicKey)}# current\n${pem(current.publicKey)}`);
after(() => rmSync(keyDir, { recursive: true, force: true }));

let image: string;
const e2e = useStack({ env: { SBX_RECEIPT_PUBLIC_KEYS_FILE: publicKeysFile }, workerEnv: { SBX_RECEIPT_KEY_FILE: receiptKeyFile } }, { then: ({ stack }) => void (image = stack.images.busybox) });

const run = (command: string[], extra: Record<string, unknown> = {}) => e2e.api.submit({ image, command, ...extra }, { wait: true });

describe('a job from submit to exit', () => {
  test('streams stdout, stderr and the exit document over SSE, resumable with Last-Event-ID', async () => {
    const sub = await e2e.api.submit({ image, command: ['sh', '-c', 'echo hello from sbx; sleep 0.2; echo oops >&2; sleep 0.2; echo bye'] });
    assert.equal(sub.status, 202);
    assert.equal(sub.headers.get('location'), `/v1/jobs/${sub.body.id}`);
    assert.equal(sub.body.status, 'queued');

    const events = await e2e.api.events(sub.body.id);
    const types = events.map((e) => e.event);
    assert.equal(types.at(-1), 'exit');
    assert.ok(types.includes('status'));
    const statuses = events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data).status);
    assert.deepEqual(statuses, ['queued', 'pulling', 'running']);
    const text = (t: string) => events.filter((e) => e.event === t).map((e) => JSON.parse(e.data).data).join('');
    assert.equal(text('stdout'), 'hello from sbx\nbye\n');
    assert.equal(text('stderr'), 'oops\n');
    const exit = JSON.parse(events.at(-1)!.data);
    assert.equal(exit.status, 'succeeded');
    assert.equal(exit.exitCode, 0);
    assert.match(exit.imageDigest, /^sha256:[0-9a-f]{64}$/);
    assert.ok(exit.usage.wallMs >= 400, `wallMs ${exit.usage.wallMs}`);
    assert.ok(events.every((e) => e.id && /^\d+-\d+$/.test(e.id)));

    // Reconnect after the first stdout event: everything later, nothing twice.
    const firstOut = events.findIndex((e) => e.event === 'stdout');
    const resumed = await e2e.api.events(sub.body.id, { lastEventId: events[firstOut]!.id! });
    assert.deepEqual(resumed.map((e) => e.id), events.slice(firstOut + 1).map((e) => e.id));
  });

  test('?stream=true submits and follows in one request: the events GET /events sends, Location names the job; not with wait', async () => {
    const post = (query: string, body: Record<string, unknown>) => fetch(`${e2e.api.baseUrl}/v1/jobs?${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const job = { image, command: ['sh', '-c', 'echo one; echo two >&2; exit 4'], idempotencyKey: `stream-${Date.now()}` };
    const res = await post('stream=true', job);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const id = /^\/v1\/jobs\/(j_\w+)$/.exec(res.headers.get('location') ?? '')?.[1];
    assert.ok(id, `Location: ${res.headers.get('location')}`);
    const streamed = [];
    for await (const e of parseServerSentEvents(res.body!)) streamed.push(e);
    const withIds = streamed.filter((e) => e.event !== 'queue');
    assert.deepEqual(withIds.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data).status), ['queued', 'pulling', 'running']);
    assert.equal(withIds.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join(''), 'one\n');
    assert.equal(withIds.filter((e) => e.event === 'stderr').map((e) => JSON.parse(e.data).data).join(''), 'two\n');
    const exit = JSON.parse(withIds.at(-1)!.data);
    assert.deepEqual([withIds.at(-1)!.event, exit.id, exit.status, exit.exitCode], ['exit', id, 'failed', 4]);
    // Exactly what GET /v1/jobs/{id}/events replays for it, event ids included.
    const replayed = await e2e.api.events(id);
    assert.deepEqual(withIds.map((e) => [e.event, e.id, e.data]), replayed.filter((e) => e.event !== 'queue').map((e) => [e.event, e.id, e.data]));
    // The same idempotency key streams the same job again (replayed, as it has ended), not a new one.
    const again = await post('stream=true', job);
    assert.equal(again.headers.get('location'), `/v1/jobs/${id}`);
    const second = [];
    for await (const e of parseServerSentEvents(again.body!)) if (e.event !== 'queue') second.push([e.event, e.id]);
    assert.deepEqual(second, withIds.map((e) => [e.event, e.id]));

    const both = await post('stream=true&wait=true', { image, command: ['true'] });
    assert.equal(both.status, 400);
    const body = (await both.json()) as { error: { code: string; details: Array<{ path: string }> } };
    assert.equal(body.error.code, 'invalid_request');
    assert.deepEqual(body.error.details.map((d) => d.path), ['stream']);
    const bad = await post('stream=true', { image, command: 'not a list' });
    assert.equal(bad.status, 400);
    assert.match(bad.headers.get('content-type') ?? '', /application\/json/);
  });

  test('?wait=true answers 200 with the output; a non-zero exit is failed with its code', async () => {
    const res = await run(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'failed');
    assert.equal(res.body.exitCode, 3);
    assert.deepEqual(res.body.output, { stdout: 'out\n', stderr: 'err\n' });
    assert.equal(res.body.outputTruncated, false);
    const again = await e2e.api.get(res.body.id, true);
    assert.deepEqual(again.body.output, res.body.output);
  });

  test('a process killed by a signal is failed with the signal named', async () => {
    const res = await run(['sh', '-c', 'kill -TERM $$']);
    assert.equal(res.body.status, 'failed');
    assert.equal(res.body.signal, 'SIGTERM');
  });

  test('a job over timeoutMs is killed with all its children and ends timeout', async () => {
    const res = await run(['sh', '-c', 'sleep 60 & sleep 60; echo never'], { limits: { timeoutMs: 500 } });
    assert.equal(res.body.status, 'timeout');
    assert.ok(res.body.usage!.wallMs < 5000, `wallMs ${res.body.usage!.wallMs}`);
    assert.equal(res.body.output!.stdout, '');
  });

  test('limits.timeoutMs of 1 (the least accepted) ends timeout, also when it passes before the command has started', async () => {
    // Before, a limit that passed during the job's setup made the launch fail: error / internal. A
    // job whose user differs from the previous one's on its slot starts without a setup made ahead
    // (a direct launch, over 1 ms here), so the users alternate.
    const statuses: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await run(['sh', '-c', 'echo started; sleep 5'], { user: i % 2 ? '1000:1000' : '2000:2000', limits: { timeoutMs: 1 } });
      statuses.push(`${r.body.status}${r.body.error ? `/${r.body.error.code}` : ''}`);
    }
    assert.deepEqual(statuses, Array(10).fill('timeout'));
  });

  test('limits.stopGraceMs: at the timeout the command gets stopSignal and that long to exit, its cleanup output kept (docker stop -t); bad values are 400s', async () => {
    const script = 'trap "echo report written; exit 5" INT; echo started; while :; do sleep 0.05; done';
    const res = await run(['sh', '-c', script], { stopSignal: 'SIGINT', limits: { timeoutMs: 1500, stopGraceMs: 10_000 } });
    assert.equal(res.body.status, 'timeout', JSON.stringify(res.body));
    assert.equal(res.body.exitCode, 5);
    assert.equal(res.body.output!.stdout, 'started\nreport written\n');
    assert.ok(res.body.usage!.wallMs < 8000, `ended when it exited: ${res.body.usage!.wallMs} ms`);
    assert.equal(res.body.limits.stopGraceMs, 10_000);
    for (const [body, field] of [
      [{ stopSignal: 'SIGKILL' }, /stopSignal must be one of SIGTERM, SIGINT/],
      [{ stopSignal: 'TERM' }, /stopSignal must be one of/],
      [{ limits: { stopGraceMs: 60_001 } }, /limits\.stopGraceMs must be <= 60000/],
      [{ limits: { stopGraceMs: -1 } }, /limits\.stopGraceMs must be >= 0/],
    ] as const) {
      const bad = await e2e.api.submit({ image, command: ['true'], ...body } as never);
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.match(JSON.stringify(bad.body), field);
    }
  });

  test('a memory hog ends oom', async () => {
    const res = await run(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=256M', 'count=1'], { limits: { memoryBytes: 32 * 1024 * 1024 } });
    assert.equal(res.body.status, 'oom', JSON.stringify(res.body));
    assert.equal(res.body.usage!.oomKilled, true);
    assert.ok(res.body.usage!.memoryPeakBytes <= 40 * 1024 * 1024, `peak ${res.body.usage!.memoryPeakBytes}`);
  });

  test('a fork bomb is held by the pids limit and the worker stays healthy', async () => {
    const bomb = await run(['sh', '-c', 'b() { b | b & }; b; sleep 2; echo survived'], { limits: { pids: 32, timeoutMs: 3000 } });
    assert.ok(['timeout', 'failed', 'succeeded'].includes(bomb.body.status), bomb.body.status);
    assert.equal(bomb.body.usage!.pidsLimitHit, true, JSON.stringify(bomb.body.usage));
    const after = await run(['echo', 'still here']);
    assert.equal(after.body.status, 'succeeded');
    assert.equal(after.body.output!.stdout, 'still here\n');
    assert.equal(e2e.stack.workers[0]!.child.exitCode, null);
  });

  test('hostname, ps and ip link show only the container', async () => {
    const res = await run(['sh', '-c', 'hostname; echo ---; ps -o pid,comm; echo ---; ip -o link']);
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body));
    const [host, ps, links] = res.body.output!.stdout.split('---\n');
    assert.notEqual(host!.trim(), hostname());
    assert.match(host!.trim(), /^sbx-/);
    const procs = ps!.trim().split('\n').slice(1);
    assert.ok(procs.length <= 4, `expected only the job's processes, got:\n${ps}`);
    assert.ok(!/node|redis|registry/.test(ps!), ps);
    const names = links!.trim().split('\n').map((l) => l.split(':')[1]!.trim());
    assert.deepEqual(names, ['lo']);
  });

  test('a file written in one job is absent in the next', async () => {
    const first = await run(['sh', '-c', 'echo secret > /tmp/marker && echo /bin/x > /bin/planted && cat /tmp/marker']);
    assert.equal(first.body.output!.stdout, 'secret\n');
    const second = await run(['sh', '-c', 'ls /tmp/marker /bin/planted 2>&1; echo done']);
    assert.match(second.body.output!.stdout, /No such file/);
    assert.doesNotMatch(second.body.output!.stdout, /^\/tmp\/marker$/m);
  });

  test('env, workdir and user are applied; the worker environment does not leak', async () => {
    const res = await run(['sh', '-c', 'echo "$GREETING"; pwd; id -u; env'], { env: { GREETING: 'hi there' }, workdir: '/tmp', user: '1000:1000' });
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body));
    const [greeting, cwd, uid, ...env] = res.body.output!.stdout.trim().split('\n');
    assert.equal(greeting, 'hi there');
    assert.equal(cwd, '/tmp');
    assert.equal(uid, '1000');
    assert.ok(!env.some((l) => l.startsWith('SBX_')), `worker env leaked: ${env.join(', ')}`);
    assert.ok(env.includes('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'));
  });

  test('limits.cpuTimeMs ends a spinning job on CPU time, long before its wall timeout', async () => {
    const res = await run(['sh', '-c', 'while :; do :; done'], { limits: { cpuTimeMs: 300, timeoutMs: 20_000 } });
    assert.equal(res.body.status, 'timeout');
    assert.ok(res.body.usage!.cpuMs >= 300, `cpuMs ${res.body.usage!.cpuMs}`);
    assert.ok(res.body.usage!.wallMs < 10_000, `wallMs ${res.body.usage!.wallMs}`);
    assert.equal(res.body.limits.cpuTimeMs, 300);
  });

  test('usage.cpuThrottledMs says how long limits.cpus held the job back, in the document and its receipt', async () => {
    const res = await run(['sh', '-c', 'timeout 1 sh -c "while :; do :; done"; true'], { limits: { cpus: 0.1 } });
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body.error));
    const usage = res.body.usage!;
    assert.ok(usage.cpuThrottledMs! >= 300, `cpuThrottledMs ${usage.cpuThrottledMs} (cpuMs ${usage.cpuMs})`);
    assert.equal(JSON.parse(res.body.receipt!.payload).usage.cpuThrottledMs, usage.cpuThrottledMs);
  });

  test('limits.openFiles is the RLIMIT_NOFILE of the job; the default is 1024', async () => {
    const set = await run(['sh', '-c', 'ulimit -n'], { limits: { openFiles: 64 } });
    assert.equal(set.body.output!.stdout, '64\n');
    const dflt = await run(['sh', '-c', 'ulimit -n']);
    assert.equal(dflt.body.output!.stdout, '1024\n');
    assert.equal(dflt.body.usage!.oomKilled, false);
    assert.equal(dflt.body.usage!.pidsLimitHit, false);
  });

  test('stdin is fed to the process', async () => {
    const res = await run(['sh', '-c', 'cat | tr a-z A-Z'], { stdin: 'shout\n' });
    assert.equal(res.body.output!.stdout, 'SHOUT\n');
  });

  test('output beyond limits.outputBytes is cut and flagged', async () => {
    const res = await run(['sh', '-c', 'yes | head -c 100000'], { limits: { outputBytes: 1000 } });
    assert.equal(res.body.status, 'succeeded');
    assert.equal(res.body.output!.stdout.length, 1000);
    assert.equal(res.body.outputTruncated, true);
    assert.deepEqual(res.body.outputDroppedBytes, { stdout: 99_000, stderr: 0 });
  });

  test('with limits.outputTailBytes a long output keeps its start and its end, here and over SSE', async () => {
    const full = `${Array.from({ length: 20_000 }, (_, i) => i + 1).join('\n')}\n`;
    const res = await run(['sh', '-c', 'seq 1 20000; echo "the error" >&2'], { limits: { outputBytes: 1000, outputTailBytes: 400 } });
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body.error));
    assert.equal(res.body.output!.stdout, full.slice(0, 600) + full.slice(-400), 'the first 600 bytes and the last 400');
    assert.equal(res.body.output!.stderr, 'the error\n');
    assert.equal(res.body.outputTruncated, true);
    assert.deepEqual(res.body.outputDroppedBytes, { stdout: full.length - 1000, stderr: 0 });
    assert.equal(res.body.limits.outputTailBytes, 400);
    const events = await e2e.api.events(res.body.id);
    assert.equal(events.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data).join(''), res.body.output!.stdout, 'the event stream holds the same');

    // Within outputBytes nothing is left out: the tail follows the start.
    const short = await run(['sh', '-c', 'seq 1 300'], { limits: { outputBytes: 2000, outputTailBytes: 1500 } });
    assert.equal(short.body.output!.stdout, `${Array.from({ length: 300 }, (_, i) => i + 1).join('\n')}\n`);
    assert.equal(short.body.outputTruncated, false);
    assert.equal(short.body.outputDroppedBytes, undefined);

    // A tail that starts inside a character starts at the next one (no U+FFFD).
    const wide = await run(['sh', '-c', 'i=0; while [ $i -lt 1000 ]; do printf "\\303\\251"; i=$((i+1)); done'], { limits: { outputBytes: 101, outputTailBytes: 51 } });
    assert.equal(wide.body.output!.stdout, 'é'.repeat(50), JSON.stringify(wide.body.output));
    assert.deepEqual(wide.body.outputDroppedBytes, { stdout: 1900, stderr: 0 });

    // A start that ends inside a character ends with U+FFFD, as without a tail (it vanished before,
    // its byte kept but shown nowhere).
    const cut = await run(['printf', 'abcde\\303\\251\\303\\251XYZ'], { limits: { outputBytes: 10, outputTailBytes: 4 } });
    assert.equal(cut.body.output!.stdout, 'abcde\ufffdXYZ', JSON.stringify(cut.body.output));
    assert.deepEqual(cut.body.outputDroppedBytes, { stdout: 3, stderr: 0 });
  });

  test('limits.outputTailBytes above limits.outputBytes or 1 MiB is a 400', async () => {
    const res = await e2e.api.submit({ image, command: ['true'], limits: { outputBytes: 100, outputTailBytes: 101 } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.match(JSON.stringify(res.body), /limits\.outputTailBytes must be <= limits\.outputBytes \(100\)/);
    // The worker holds a tail in memory until the job ends: at most 1 MiB, whatever outputBytes allows.
    const big = await e2e.api.submit({ image, command: ['true'], limits: { outputBytes: 4 * 1024 * 1024, outputTailBytes: 1024 * 1024 + 1 } });
    assert.equal(big.status, 400, JSON.stringify(big.body));
    assert.match(JSON.stringify(big.body), /limits\.outputTailBytes/);
  });

  test('limits.outputIdleTimeoutMs ends a job that goes silent (timeout, output_idle_timeout); a job that keeps writing runs on', async () => {
    const quiet = await run(['sh', '-c', 'echo started; sleep 30; echo never'], { limits: { outputIdleTimeoutMs: 1500 } });
    assert.equal(quiet.body.status, 'timeout', JSON.stringify(quiet.body));
    assert.deepEqual(quiet.body.error, { code: 'output_idle_timeout', message: 'the job wrote no output for limits.outputIdleTimeoutMs (1500 ms)' });
    assert.equal(quiet.body.output!.stdout, 'started\n');
    assert.ok(quiet.body.usage!.wallMs < 25_000, `killed after ${quiet.body.usage!.wallMs} ms of wall time, not at the end of its sleep`);
    assert.equal(quiet.body.limits.outputIdleTimeoutMs, 1500);

    // Output on either stream counts: 12 writes 150 ms apart (1.8 s in all) outlive a 1.5 s silence limit.
    const chatty = await run(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo $i >&2; sleep 0.15; done'], { limits: { outputIdleTimeoutMs: 1500 } });
    assert.equal(chatty.body.status, 'succeeded', JSON.stringify(chatty.body));
    assert.equal(chatty.body.output!.stderr, '1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n');

    // So does output past the cap (read and dropped here: this stack signs receipts, whose digests
    // need every byte; dropped in the kernel unread: output-drop.test.ts).
    const capped = await run(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo $i; sleep 0.15; done'], { limits: { outputIdleTimeoutMs: 1500, outputBytes: 1 } });
    assert.equal(capped.body.status, 'succeeded', JSON.stringify(capped.body));
    assert.equal(capped.body.output!.stdout, '1');
    assert.deepEqual(capped.body.outputDroppedBytes, { stdout: 26, stderr: 0 });
  });

  test('timings.firstOutputMs: from the start to the first byte of output; absent when there was none', async () => {
    const late = await run(['sh', '-c', 'sleep 0.3; echo x']);
    const first = late.body.timings.firstOutputMs;
    // Bounded by the worker's own stamps, on the clock firstOutputMs is read on (the time the worker
    // read the byte, in whole ms from startedAt): usage.wallMs is the launcher's monotonic clock from
    // a later start to the exit, which a busy worker reads the output after (firstOutputMs 347, wallMs 318).
    const { startedAt, finishedAt } = late.body.timings;
    const span = Date.parse(finishedAt!) - Date.parse(startedAt!);
    assert.ok(first !== undefined && first >= 250 && first <= span, `firstOutputMs ${first}, finishedAt − startedAt ${span} ms, wallMs ${late.body.usage!.wallMs}`);
    const quiet = await run(['true']);
    assert.equal(quiet.body.timings.firstOutputMs, undefined);
  });

  test('an unknown command ends error/command_not_found', async () => {
    const res = await run(['/no/such/binary']);
    assert.equal(res.body.status, 'error');
    assert.equal(res.body.error!.code, 'command_not_found');
    // A name no file can have (before: launch_failed from execve's ENAMETOOLONG, so `internal`, and retried).
    const long = await run(['x'.repeat(1000)]);
    assert.equal(long.body.error?.code, 'command_not_found', JSON.stringify(long.body.error));
    assert.match(long.body.error?.message ?? '', /^command "x{200,256}…?" could not be started: its name, or its path in a PATH directory, is too long \(ENAMETOOLONG\)$/);
    const pathEntry = await run(['echo', 'found'], { env: { PATH: `${'d'.repeat(300)}:/bin` } });
    assert.equal(pathEntry.body.status, 'succeeded', JSON.stringify(pathEntry.body.error));
  });

  test('an image that does not exist ends error/image_not_found', async () => {
    const res = await e2e.api.submit({ image: `${e2e.stack.registry.host}/nope/missing:1`, command: ['true'] }, { wait: true });
    assert.equal(res.body.status, 'error');
    assert.equal(res.body.error!.code, 'image_not_found');
  });
});

describe('cancel', () => {
  test('a running job is killed and ends cancelled; cancelling again is 409', async () => {
    const sub = await e2e.api.submit({ image, command: ['sh', '-c', 'echo started; sleep 60'] });
    await e2e.api.events(sub.body.id, { until: (e) => e.event === 'stdout' });
    const del = await e2e.api.request('DELETE', `/v1/jobs/${sub.body.id}`);
    assert.equal(del.status, 202);
    const done = await e2e.api.waitFinished(sub.body.id);
    assert.equal(done.status, 'cancelled');
    assert.ok(done.usage!.wallMs < 10_000);
    const again = await e2e.api.request<{ error: { code: string } }>('DELETE', `/v1/jobs/${sub.body.id}`);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'already_finished');
  });

  test('liveUsage: while a job runs its document shows its usage as its worker last read it (memory its files hold, processes); gone once it ends', async () => {
    const script = 'dd if=/dev/zero of=/tmp/f bs=1048576 count=24 2>/dev/null; sleep 60 & sleep 60 & echo ready; wait';
    const sub = await e2e.api.submit({ image, command: ['sh', '-c', script], limits: { memoryBytes: 256 * 1024 * 1024 } });
    await e2e.api.events(sub.body.id, { until: (e) => e.event === 'stdout' });
    let live: JobDocument['liveUsage'];
    await waitUntil(async () => Boolean((live = (await e2e.api.get(sub.body.id)).body.liveUsage)), 15_000, 'liveUsage in the document');
    assert.ok(live!.memoryBytes >= 24 * 1024 * 1024, `the 24 MiB file counts: ${live!.memoryBytes}`);
    assert.ok(live!.pids >= 3 && live!.pids <= 6, `sbx-init, sh and two sleeps: ${live!.pids}`);
    assert.ok(live!.cpuMs > 0 && Date.parse(live!.at) > Date.parse(sub.body.timings.createdAt));
    await e2e.api.request('DELETE', `/v1/jobs/${sub.body.id}`);
    const done = await e2e.api.waitFinished(sub.body.id);
    assert.equal(done.status, 'cancelled');
    assert.equal((await e2e.api.get(sub.body.id)).body.liveUsage, undefined, 'a finished job has its final usage only');
    assert.ok(done.usage!.memoryPeakBytes >= 24 * 1024 * 1024);
  });

  test('DELETE ?graceMs&signal stops a running job as docker stop does: its cleanup output and files kept, then cancelled; bad values are 400s', async () => {
    const script = 'trap "echo stopping; echo partial > /tmp/report; exit 2" USR1; echo started; while :; do sleep 0.05; done';
    const sub = await e2e.api.submit({ image, command: ['sh', '-c', script], outputFiles: ['/tmp/report'] });
    await e2e.api.events(sub.body.id, { until: (e) => e.event === 'stdout' });
    for (const [query, message] of [['graceMs=60001', /graceMs must be <= 60000/], ['graceMs=soon', /graceMs/], ['graceMs=1000&signal=SIGKILL', /signal must be one of SIGTERM/], ['signal=SIGINT', /signal applies only with graceMs/]] as const) {
      const bad = await e2e.api.request('DELETE', `/v1/jobs/${sub.body.id}?${query}`);
      assert.equal(bad.status, 400, query);
      assert.match(JSON.stringify(bad.body), message);
    }
    const del = await e2e.api.request('DELETE', `/v1/jobs/${sub.body.id}?graceMs=10000&signal=SIGUSR1`);
    assert.equal(del.status, 202);
    const done = await e2e.api.waitFinished(sub.body.id);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.exitCode, 2, 'its own exit, from the trap');
    assert.ok(done.usage!.wallMs < 10_000, `ended when it exited: ${done.usage!.wallMs} ms`);
    const output = await e2e.api.request<JobDocument>('GET', `/v1/jobs/${sub.body.id}?output=true`);
    assert.equal(output.body.output!.stdout, 'started\nstopping\n');
    assert.deepEqual(done.outputFiles?.map((f) => [f.path, f.bytes]), [['/tmp/report', 8]]);
  });
});

describe('invalid requests', () => {
  test('answer 400 with the error body naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ command: ['true'] }, 'image'],
      [{ image, limits: { memoryBytes: 1024 } }, 'limits.memoryBytes'],
      [{ image, limits: { timeoutMs: 10_000_000 } }, 'limits.timeoutMs'],
      [{ image, command: 'echo not-an-array' }, 'command'],
      [{ image, bogus: 1 }, 'bogus'],
      [{ image: 'UPPER/Case:tag' }, 'image'],
      [{ image, workdir: '/proc/self/fd/7' }, 'workdir'],
      [{ image, limits: { openFiles: 4 } }, 'limits.openFiles'],
      [{ image, limits: { cpuTimeMs: 999_999_999 } }, 'limits.cpuTimeMs'],
    ];
    for (const [body, path] of cases) {
      const res = await e2e.api.request<{ error: { code: string; message: string; details: Array<{ path: string }> } }>('POST', '/v1/jobs', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.ok(res.body.error.message.length > 0);
      assert.ok(res.body.error.details.some((d) => d.path === path), `${JSON.stringify(res.body)} should name ${path}`);
    }
    const bad = await e2e.api.request<{ error: { code: string } }>('POST', '/v1/jobs', '{"image": ');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_json');
    const text = await e2e.api.request<{ error: { code: string } }>('POST', '/v1/jobs', JSON.stringify({ image }), { 'content-type': 'text/plain' });
    assert.equal(text.status, 415);
  });

  test('an unknown job is 404 with the error body', async () => {
    const res = await e2e.api.request<{ error: { code: string } }>('GET', '/v1/jobs/j_00000000000000000000000000');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'not_found');
  });
});

describe('signed receipts (SBX_RECEIPT_KEY_FILE on the workers, SBX_RECEIPT_PUBLIC_KEYS_FILE on the API)', () => {
  const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
  async function publicKey() {
    const res = await e2e.api.request<{ items: Array<{ keyId: string; algorithm: string; publicKeyPem: string }> }>('GET', '/v1/receipt-keys');
    assert.equal(res.status, 200);
    // The API holds no private key: it lists the public keys it was given, the retired one too.
    assert.deepEqual(res.body.items.map((k) => [k.algorithm, createPublicKey(k.publicKeyPem).equals(retired.publicKey)]), [['ed25519', true], ['ed25519', false]]);
    const k = res.body.items[1]!;
    assert.ok(createPublicKey(k.publicKeyPem).equals(current.publicKey));
    return { keyId: k.keyId, key: createPublicKey(k.publicKeyPem) };
  }
  const verified = (doc: JobDocument, key: ReturnType<typeof createPublicKey>, payload = doc.receipt!.payload) =>
    verify(null, Buffer.from(payload), key, Buffer.from(doc.receipt!.signature, 'base64'));

  test('a job that ran carries a receipt the published key verifies: what ran, where, how it ended, digests of what it read and wrote', async () => {
    const { keyId, key } = await publicKey();
    const res = await run(['sh', '-c', 'cat; echo err >&2; exit 3'], { stdin: 'in\n', labels: { submission: 's-17' } });
    const doc = res.body;
    assert.equal(doc.status, 'failed');
    assert.ok(doc.receipt, 'a receipt');
    assert.equal(doc.receipt.keyId, keyId);
    assert.ok(verified(doc, key), 'the signature verifies with the published key');
    const p = JSON.parse(doc.receipt.payload);
    assert.deepEqual(
      { jobId: p.jobId, status: p.status, exitCode: p.exitCode, image: p.image, imageDigest: p.imageDigest, command: p.command, worker: p.worker, kernel: p.kernel, finishedAt: p.finishedAt, limits: p.limits },
      { jobId: doc.id, status: 'failed', exitCode: 3, image: doc.image, imageDigest: doc.imageDigest, command: doc.command, worker: doc.worker, kernel: release(), finishedAt: doc.timings.finishedAt, limits: doc.limits },
    );
    assert.match(p.imageDigest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(p.stdin, { bytes: 3, sha256: sha256('in\n') });
    assert.deepEqual(p.stdout, { bytes: 3, sha256: sha256('in\n') });
    assert.deepEqual(p.stderr, { bytes: 4, sha256: sha256('err\n') });
    // The stored document carries the same receipt.
    assert.deepEqual((await e2e.api.get(doc.id)).body.receipt, doc.receipt);

    // Changed after signing, it no longer verifies; nor does it with another key.
    assert.equal(verified(doc, key, doc.receipt.payload.replace('"exitCode":3', '"exitCode":0')), false, 'a changed exit code fails');
    assert.equal(verified(doc, createPublicKey(generateKeyPairSync('ed25519').privateKey)), false, 'another key fails');

    // A receipt signed before the key was rotated verifies with the listed keys (the retired one).
    const listed = (await e2e.api.request<{ items: ReceiptKey[] }>('GET', '/v1/receipt-keys')).body.items;
    const check = checkReceipt(doc, listed);
    assert.deepEqual(check.ok && [check.keyId, check.payload], [keyId, p], JSON.stringify(check));
    // The document as the API stores it, every signed field compared: what is left is named as unsigned.
    const unsigned = check.ok ? check.unsigned : [];
    assert.ok(unsigned.includes('timings.createdAt'), `timings.createdAt in ${unsigned.join(', ')}`);
    for (const field of ['status', 'limits', 'usage', 'timings.startedAt', 'timings.finishedAt', 'network', 'labels', 'error']) assert.ok(!unsigned.includes(field), `${field} is signed`);
    assert.deepEqual([p.labels, p.error], [{ submission: 's-17' }, null], 'the payload signs the labels and the error');
    const before = { ...doc, receipt: { ...doc.receipt, keyId: receiptKeyId(retired.publicKey), signature: sign(null, Buffer.from(doc.receipt.payload), retired.privateKey).toString('base64') } };
    assert.equal(checkReceipt(before, listed).ok, true, JSON.stringify(checkReceipt(before, listed)));
    const unknown = generateKeyPairSync('ed25519');
    const elsewhere = { ...doc, receipt: { ...doc.receipt, keyId: receiptKeyId(unknown.publicKey), signature: sign(null, Buffer.from(doc.receipt.payload), unknown.privateKey).toString('base64') } };
    assert.match(String((checkReceipt(elsewhere, listed) as { reason?: string }).reason), /not among the keys given/);
  });

  test('the digests cover everything the job wrote, also what limits.outputBytes left out', async () => {
    const { key } = await publicKey();
    const res = await run(['sh', '-c', 'yes | head -c 100000'], { limits: { outputBytes: 1000 } });
    assert.equal(res.body.outputTruncated, true);
    assert.ok(verified(res.body, key));
    const p = JSON.parse(res.body.receipt!.payload);
    assert.deepEqual(p.stdout, { bytes: 100_000, sha256: sha256('y\n'.repeat(50_000)) });
    assert.equal(p.outputTruncated, true);
    assert.equal(p.stdin, null);
    assert.equal(p.files, undefined, 'no files, no list');
  });

  test('the receipt names each input file with its mode, size and digest, in order, and each output file', async () => {
    const { key } = await publicKey();
    const bytes = Buffer.from([0, 1, 254, 255]);
    const res = await run(['sh', '-c', 'cat /tmp/a.txt; echo two > /tmp/c.txt'], { workdir: '/tmp', outputFiles: ['c.txt'], files: [{ path: 'a.txt', content: 'one\n' }, { path: '/srv/b.bin', content: bytes.toString('base64'), encoding: 'base64', mode: '0700' }] });
    assert.equal(res.body.output!.stdout, 'one\n');
    assert.ok(verified(res.body, key));
    assert.deepEqual(JSON.parse(res.body.receipt!.payload).outputFiles, [{ path: 'c.txt', bytes: 4, keptBytes: 4, truncated: false, sha256: sha256('two\n') }]);
    // The document's outputFiles (compared with the payload's) are what was signed, as run and as stored.
    const listed = (await e2e.api.request<{ items: ReceiptKey[] }>('GET', '/v1/receipt-keys')).body.items;
    for (const doc of [res.body, (await e2e.api.get(res.body.id)).body]) assert.equal(checkReceipt(doc, listed).ok, true, JSON.stringify(checkReceipt(doc, listed)));
    assert.equal(checkReceipt({ ...res.body, outputFiles: [{ ...res.body.outputFiles![0]!, sha256: sha256('forged\n') }] }, listed).ok, false, 'a forged output file');
    assert.deepEqual(JSON.parse(res.body.receipt!.payload).files, [
      { path: 'a.txt', mode: 0o644, bytes: 4, sha256: sha256('one\n') },
      { path: '/srv/b.bin', mode: 0o700, bytes: 4, sha256: sha256(bytes) },
    ]);
  });

  test('an interactive job\'s receipt covers the input attach gave it: stdin is the request\'s then every attached byte, and it says the job was interactive', async () => {
    const { key } = await publicKey();
    const submitted = await e2e.api.request<JobDocument>('POST', '/v1/jobs', { image, command: ['sh'], openStdin: true, stdin: 'echo first\n' });
    assert.equal(submitted.status, 202);
    const attached = await attachJob(submitted.body.id, { baseUrl: e2e.stack.apiUrl, onOutput: () => {} });
    await attached.write('echo PASS 100/100\n');
    attached.signal('SIGWINCH'); // sh ignores it
    await attached.write('exit 0\n');
    attached.eof();
    const ended = await attached.ended;
    assert.equal(ended?.status, 'succeeded');
    const doc = (await e2e.api.get(submitted.body.id)).body;
    assert.ok(verified(doc, key));
    const p = JSON.parse(doc.receipt!.payload);
    assert.deepEqual(p.stdin, { bytes: 36, sha256: sha256('echo first\necho PASS 100/100\nexit 0\n') }, 'before: only the request\'s stdin, as if the job had read nothing else');
    assert.deepEqual(p.interactive, { openStdin: true, tty: false, signals: 1 });
    const listed = (await e2e.api.request<{ items: ReceiptKey[] }>('GET', '/v1/receipt-keys')).body.items;
    assert.equal(checkReceipt(doc, listed).ok, true, JSON.stringify(checkReceipt(doc, listed)));
    const plain = await run(['true']);
    assert.equal(JSON.parse(plain.body.receipt!.payload).interactive, undefined, 'absent for a job that is not interactive');
  });

  // The worker holds SBX_RECEIPT_KEY_FILE's path in its environment and the key in its memory; a job
  // gets only its own env (native/src/job.cc: spec.env, never the worker's), its own pid namespace
  // (its /proc shows its own processes) and the image's root (no host path): none of it reaches the key.
  test('the receipt key is out of a job\'s reach: not in its environment, nor in any environ its /proc shows, nor at its path; nor in the logs or the document', async () => {
    const keyBody = current.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString().split('\n')[1]!;
    const script = 'env; echo ---; for f in /proc/[0-9]*/environ; do tr "\\0" "\\n" < "$f"; done; echo ---; cat "$1" 2>&1; ls "$2" 2>&1; true';
    const res = await e2e.api.request<JobDocument>('POST', '/v1/jobs?wait=true&output=true', { image, command: ['sh', '-c', script, 'sh', receiptKeyFile, keyDir], env: { MINE: 'mine' } });
    assert.equal(res.body.status, 'succeeded', JSON.stringify(res.body));
    const [env, environs, reads] = res.body.output!.stdout.split('---\n') as [string, string, string];
    // The dumps ran (the job's own variable is there), and hold nothing of the worker's.
    assert.match(env, /^MINE=mine$/m);
    assert.match(environs, /^MINE=mine$/m);
    for (const [name, text] of [['env', env], ['/proc/*/environ', environs]] as const) {
      assert.doesNotMatch(text, /SBX_|receipt/i, name);
      assert.ok(!text.includes(keyDir), `${name} names the key's directory`);
    }
    assert.match(reads, new RegExp(`can't open '${receiptKeyFile}': No such file or directory`));
    assert.match(reads, /No such file or directory\n$/, 'nor its directory');
    // Nowhere: not in what the job wrote, its stored document, nor what the worker and the API logged.
    const stored = JSON.stringify((await e2e.api.request('GET', `/v1/jobs/${res.body.id}?output=true`)).body);
    for (const [where, text] of [['the job\'s output', JSON.stringify(res.body.output)], ['its document', stored], ...e2e.stack.workers.map((w) => [`${w.name}'s log`, w.log()] as const), ['the API\'s log', e2e.stack.api.log()]] as const) {
      assert.ok(!text.includes(keyBody), `the private key in ${where}`);
    }
  });

  test('a job that never ran has no receipt', async () => {
    const res = await run(['/no/such/binary']);
    assert.equal(res.body.error!.code, 'command_not_found');
    assert.equal(res.body.receipt, undefined);
  });
});
