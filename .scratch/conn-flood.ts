import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { JobStore } from '../core/src/job-store.ts';
import type { JobDocument } from '../core/src/job-spec.ts';
import { RedisKeys } from '../core/src/redis-keys.ts';
import { WorkerDirectory } from '../core/src/worker-directory.ts';
import { startApiProcess } from '../test/harness/api-process.ts';
import { startRedis } from '../test/harness/redis.ts';
const MiB = 2 ** 20;
const keys = new RedisKeys();
const redis = await startRedis();
const api = await startApiProcess({ SBX_REDIS_URL: redis.url, ...(process.env.EXTRA ? JSON.parse(process.env.EXTRA) : {}) });
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${api.pid}/status`, 'utf8'))![1]) / 1024;
const hdr = process.env.KEY ? { authorization: `Bearer ${process.env.KEY}` } : {};
async function finishedJob(chunks: Array<{ type: 'stdout' | 'stderr'; data: string }>): Promise<JobDocument> {
  const res = await fetch(`${api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...hdr }, body: JSON.stringify({ image: '127.0.0.1:5000/test/busybox:latest', command: ['cat'], limits: { outputBytes: 16 * MiB } }) });
  const doc = (await res.json()) as JobDocument;
  const r = redis.client();
  const store = new JobStore(r, keys, 3600);
  const now = new Date().toISOString();
  await new WorkerDirectory(r, keys).heartbeat({ id: 'w-test', host: 'test', pid: process.pid, slotsTotal: 1, slotsFree: 0, runningJobs: [doc.id], cachedBytes: 0, images: [], cgroup: '', startedAt: now, lastHeartbeat: now }, 600_000);
  const pulling = { ...doc, status: 'pulling' as const, worker: 'w-test' };
  await store.claim(pulling, false);
  await store.transition({ ...pulling, status: 'running' }, ['pulling'], 'status');
  for (let i = 0; i < chunks.length; i += 16) await store.appendOutput(doc.id, 1, chunks.slice(i, i + 16));
  await store.transition({ ...pulling, status: 'succeeded', exitCode: 0 }, ['running'], 'exit');
  return doc;
}
async function flood(n: number, path: string) {
  const before = rssMiB();
  const { port } = new URL(api.url);
  const sockets: Socket[] = [];
  let peak = before; let statuses = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = connect(Number(port), '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${process.env.KEY ? `Authorization: Bearer ${process.env.KEY}\r\n` : ''}\r\n`));
    s.on('error', () => {});
    s.once('data', (d) => { const st = d.toString('latin1', 9, 12); statuses.set(st, (statuses.get(st) ?? 0) + 1); s.pause(); });
    sockets.push(s);
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 20));
  }
  for (let i = 0; i < 16; i++) { await new Promise((r) => setTimeout(r, 500)); peak = Math.max(peak, rssMiB()); }
  const t0 = performance.now(); const ok = await fetch(`${api.url}/healthz`).then((r) => r.status).catch((e) => String(e));
  console.log(`${n} x GET ${path.replace(/j_\w+/, '{id}')}: RSS ${before.toFixed(0)} -> peak ${peak.toFixed(0)} MiB (+${(peak - before).toFixed(0)}), statuses ${JSON.stringify([...statuses])}, health ${ok} in ${(performance.now() - t0).toFixed(0)} ms`);
  for (const s of sockets) s.destroy();
  await new Promise((r) => setTimeout(r, 2000));
}
const N = Number(process.env.N ?? 1000);
const chunk = 'x'.repeat(32 * 1024) + '\n';
const big = await finishedJob(Array.from({ length: Math.floor(16 * MiB / chunk.length) }, () => ({ type: 'stdout' as const, data: chunk })));
const short = await finishedJob(Array.from({ length: 30 }, () => ({ type: 'stdout' as const, data: chunk })));
await flood(N, `/v1/jobs/${big.id}?output=true`);
await flood(N, `/v1/jobs/${short.id}?output=true`);
await flood(N, `/v1/jobs/${big.id}/events`);
await api.kill(); await redis.stop();
