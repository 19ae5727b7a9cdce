/**
 * TenantCpuShares: each tenant with jobs running on the host gets the same CPU weight in all, split
 * among its jobs, while more than one tenant has jobs here; with one tenant nothing is written. The
 * weight itself reaching the job's cgroup: native/test/launcher.test.ts (setCpuShares).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TenantCpuShares, type Weighted } from './tenant-cpu-shares.ts';

/** A job that records the weights written to it. */
function job(): Weighted & { writes: number[] } {
  const writes: number[] = [];
  return { writes, setCpuShares: (s) => (writes.push(s), true) };
}

test('one tenant alone: its jobs keep the default weight, nothing written', () => {
  const shares = new TenantCpuShares();
  const jobs = [job(), job(), job()];
  for (const j of jobs) shares.add('a', j);
  shares.remove('a', jobs[0]!);
  assert.deepEqual(jobs.map((j) => j.writes), [[], [], []]);
  assert.equal(shares.sharesOf(jobs[1]!), 1024);
});

test('a second tenant arrives: the first one\'s 3 jobs share its weight (341 each) and the newcomer\'s job has as much as they have together; back to the default when it leaves', () => {
  const shares = new TenantCpuShares();
  const a = [job(), job(), job()];
  for (const j of a) shares.add('a', j);
  const b = job();
  shares.add('b', b);
  assert.deepEqual(a.map((j) => shares.sharesOf(j)), [341, 341, 341]);
  assert.equal(shares.sharesOf(b), 1024);
  assert.deepEqual(b.writes, [], 'a lone job of its tenant keeps the default: no write');

  shares.remove('a', a[0]!);
  assert.deepEqual(a.slice(1).map((j) => j.writes), [[341, 512], [341, 512]]);

  shares.remove('b', b);
  assert.deepEqual(a.slice(1).map((j) => j.writes.at(-1)), [1024, 1024], 'one tenant again: the default');
  shares.remove('b', b); // twice: nothing
  assert.deepEqual(a.slice(1).map((j) => j.writes.length), [3, 3]);
});

test('many jobs of one tenant beside another\'s: never below the smallest weight the kernel takes', () => {
  const shares = new TenantCpuShares();
  for (let i = 0; i < 1000; i++) shares.add('a', job());
  const b = job();
  shares.add('b', b);
  const one = job();
  shares.add('a', one);
  assert.equal(shares.sharesOf(one), 2);
});
