/**
 * The output sink (redis-sink.ts) against a real redis-server: however fast a job writes, one append
 * carries a bounded batch and the job's pipes stop being read while too much waits for Redis, so
 * the worker's memory stays bounded; the output arrives whole and in order.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { newJobId } from '../../../core/src/job-id.ts';
import { newJobDocument, type JobSpec } from '../../../core/src/job-spec.ts';
import { JobStore, type EncodedOutputEvent, type OutputChunk } from '../../../core/src/job-store.ts';
import { RedisKeys } from '../../../core/src/redis-keys.ts';
import { useRedis } from '../../../test/harness/use-redis.ts';
import { TenantStorageBudget } from '../../../core/src/tenant-storage-budget.ts';
import { RedisOutputSink } from './redis-sink.ts';

const redis = useRedis();
const MiB = 1 << 20;

test('a job writing 8 MiB of NUL bytes at once: appends of at most 256 KiB, its pipe paused meanwhile, every byte in order', async () => {
  const keys = new RedisKeys('sink1');
  const store = new JobStore(redis.client, keys, 3600);
  const id = newJobId();
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 16 * MiB, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
  assert.ok(await store.create(spec, newJobDocument(spec)));
  await redis.client.hset(keys.jobState(id), 'status', 'running');
  // What each append carried, in characters.
  const batches: number[] = [];
  const append = store.appendOutput.bind(store);
  store.appendOutput = (jobId: string, attempt: number, chunks: Array<OutputChunk | EncodedOutputEvent>, number?: number) => {
    const chars = (c: OutputChunk | EncodedOutputEvent) => ('json' in c ? (JSON.parse(c.json.toString()) as { data: string }).data : c.data).length;
    batches.push(chunks.reduce((n, c) => n + chars(c), 0));
    return append(jobId, attempt, chunks, number);
  };
  const sink = new RedisOutputSink(store, id, 1, 16 * MiB);
  const pipe = new PassThrough({ highWaterMark: 64 * 1024 });
  const drained = sink.attach('stdout', pipe);
  sink.open();
  let refusedWrites = 0;
  for (let i = 0; i < 128; i++) if (!pipe.write(Buffer.alloc(64 * 1024))) refusedWrites++; // as fast as the job can
  pipe.end();
  await drained;
  await sink.flush();
  assert.ok(Math.max(...batches) <= 256 * 1024, `the largest append carried ${Math.max(...batches)} characters (before: everything written while one was in flight)`);
  assert.ok(refusedWrites > 0, 'the pipe was paused: the job is held back, not buffered in the worker');
  const events = await store.readEvents(id, '0', 100_000);
  const text = events.filter((e) => e.type === 'stdout').map((e) => (JSON.parse(e.data) as { data: string }).data).join('');
  assert.equal(text.length, 8 * MiB);
  assert.ok(/^\0*$/.test(text), 'every byte, in order');
});

/** A sink on a fresh running job of a real store: what `write` gives it, stored and read back as text per stream. */
async function storedText(capBytes: number, tailBytes: number, writes: Array<['stdout' | 'stderr', Buffer]>): Promise<Record<'stdout' | 'stderr', string>> {
  const keys = new RedisKeys(`sink-${newJobId()}`);
  const store = new JobStore(redis.client, keys, 3600);
  const id = newJobId();
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: capBytes, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
  assert.ok(await store.create(spec, newJobDocument(spec)));
  await redis.client.hset(keys.jobState(id), 'status', 'running');
  const sink = new RedisOutputSink(store, id, 1, capBytes, { tailBytes });
  sink.open();
  for (const [name, bytes] of writes) sink.write(name, bytes);
  await sink.flush();
  const events = await store.readEvents(id, '0', 100_000);
  const text = (type: string) => events.filter((e) => e.type === type).map((e) => (JSON.parse(e.data) as { data: string }).data).join('');
  return { stdout: text('stdout'), stderr: text('stderr') };
}

test('a character cut where the kept start ends, and a tail of stray continuation bytes: each reads as U+FFFD, never joined into a character the job did not write', async () => {
  // Kept start: "abcd" and the first 2 bytes of "€" (e2 82 ac); then 4 bytes dropped; the tail: 4 continuation bytes.
  const out = await storedText(10, 4, [['stdout', Buffer.from('abcd\xe2\x82', 'latin1')], ['stdout', Buffer.from('xxxx')], ['stdout', Buffer.from('80808080', 'hex')]]);
  assert.equal(out.stdout, 'abcd\ufffd\ufffd', 'before: e2 82 and the tail\'s 80 stored side by side read as "₀"');
});

test('stdout and stderr interleaved in reads cut anywhere, under the cap: each stream stored as its bytes decoded whole', async () => {
  let x = 0x2545f491;
  const rand = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  const alphabet = [Buffer.from('a"\\\n'), Buffer.from('é€😀'), Buffer.from('e282f09f98c3ed9fbf80ff', 'hex')];
  for (let round = 0; round < 100; round++) {
    const whole = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const writes: Array<['stdout' | 'stderr', Buffer]> = [];
    for (let i = 0; i < 20; i++) {
      const source = alphabet[Math.floor(rand() * alphabet.length)]!;
      const start = Math.floor(rand() * source.length);
      const bytes = source.subarray(start, start + 1 + Math.floor(rand() * (source.length - start)));
      const name = rand() < 0.5 ? 'stdout' : 'stderr';
      whole[name].push(bytes);
      writes.push([name, bytes]);
    }
    const out = await storedText(1 << 20, 0, writes);
    for (const name of ['stdout', 'stderr'] as const) assert.equal(out[name], Buffer.concat(whole[name]).toString(), `round ${round} ${name}: ${writes.map(([n, b]) => `${n[3]}:${b.toString('hex')}`).join(' ')}`);
  }
});

test('past the tenant\'s storage budget: keptBytes is what Redis stores, droppedBytes the rest of what was written (the dropped-bytes metric)', async () => {
  const keys = new RedisKeys(`sink-${newJobId()}`);
  const store = new JobStore(redis.client, keys, 3600);
  const id = newJobId();
  const spec = { id, tenant: 't', image: 'x/y:1', command: ['true'], entrypoint: null, env: {}, workdir: null, user: null, stdin: null, limits: { memoryBytes: 1, cpus: 1, pids: 1, timeoutMs: 1000, outputBytes: 16 * MiB, diskBytes: 1, cpuTimeMs: null, openFiles: 1 }, network: 'none', labels: {}, registryAuth: null, createdAt: new Date().toISOString() } as JobSpec;
  assert.ok(await store.create(spec, newJobDocument(spec)));
  await redis.client.hset(keys.jobState(id), 'status', 'running');
  const sink = new RedisOutputSink(store, id, 1, 16 * MiB, { budget: new TenantStorageBudget(redis.client, keys, 't', 100_000) });
  const pipe = new PassThrough();
  const drained = sink.attach('stdout', pipe);
  sink.open();
  for (let i = 0; i < 50; i++) pipe.write(Buffer.alloc(64 * 1024, 'a'));
  pipe.end();
  await drained;
  await sink.flush();
  assert.ok(sink.budgetUsedUp);
  const events = await store.readEvents(id, '0', 100_000);
  const stored = events.filter((e) => e.type === 'stdout').map((e) => (JSON.parse(e.data) as { data: string }).data).join('').length;
  assert.ok(stored > 0 && stored < 100_000, `stored ${stored}`);
  assert.deepEqual(sink.keptBytes, { stdout: stored, stderr: 0 }, 'kept: what Redis holds');
  assert.deepEqual(sink.droppedBytes, { stdout: 50 * 64 * 1024 - stored, stderr: 0 }, 'dropped: everything else written');
});
