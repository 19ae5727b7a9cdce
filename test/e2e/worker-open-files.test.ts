/**
 * A worker that runs out of file descriptors (its RLIMIT_NOFILE), on the real stack: the soft limit
 * of the running worker is lowered with prlimit(1) below the descriptors it has open, so every new
 * one fails with EMFILE (as at a host's low `ulimit -n` with every slot busy), then put back.
 *
 * Jobs started meanwhile end `error` / `host_exhausted` saying what ran out, one warning each (not
 * `internal`, "the worker hit an internal error": the launcher's pipe2, socketpair, clone3, the image
 * cache's marker file); the job already running is untouched, and once descriptors are back the
 * worker runs jobs again by itself.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { waitUntil } from '../harness/redis.ts';
import { useStack } from '../harness/use-stack.ts';

const e2e = useStack({ workerEnv: { SBX_WORKER_SLOTS: '4' } });

const setOpenFiles = (pid: number, soft: number, hard: number) => execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${soft}:${hard}`]);

test('jobs started while the worker has no file descriptor left end host_exhausted; the running one is untouched; once they are back, jobs run again', { timeout: 60_000 }, async () => {
  const { api, stack } = e2e;
  const worker = stack.workers[0]!;
  const pid = worker.child.pid!;
  assert.equal(readdirSync(`/proc/${pid}/fd`).length > 10, true);
  assert.equal((await api.submit({ image: stack.images.probe, command: ['true'] }, { wait: true })).body.status, 'succeeded', 'probe cached');
  // Runs throughout: it holds busybox, so the next busybox job writes no marker file and fails at its launch.
  const running = await api.submit({ image: stack.images.busybox, command: ['sh', '-c', 'sleep 3; echo still here'] });
  await waitUntil(async () => (await api.get(running.body.id)).body.status === 'running', 10_000, 'the long job to run');

  const hard = Number(execFileSync('prlimit', [`--pid=${pid}`, '--nofile', '--raw', '--noheadings', '--output=HARD']).toString().trim());
  const soft = Number(execFileSync('prlimit', [`--pid=${pid}`, '--nofile', '--raw', '--noheadings', '--output=SOFT']).toString().trim());
  setOpenFiles(pid, 10, hard); // descriptors 0-9 are all taken: every new one fails with EMFILE
  let starved: Array<{ status: string; error?: { code: string; message: string } | null }>;
  try {
    starved = await Promise.all([stack.images.busybox, stack.images.probe].map((image) => api.submit({ image, command: ['true'] }, { wait: true }).then((r) => r.body)));
  } finally {
    setOpenFiles(pid, soft, hard);
  }
  for (const job of starved) {
    assert.equal(job.status, 'error');
    assert.equal(job.error?.code, 'host_exhausted', JSON.stringify(job.error));
    assert.match(job.error!.message, /^the worker ran out of open files \(EMFILE: the worker process's RLIMIT_NOFILE\) starting this job; its command did not run/);
  }
  const done = await api.waitFinished(running.body.id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.output?.stdout, 'still here\n');

  const after = await api.submit({ image: stack.images.busybox, command: ['echo', 'ok'] }, { wait: true });
  assert.equal(after.body.status, 'succeeded', `once descriptors are back, without a restart: ${JSON.stringify(after.body.error)}`);
  const warnings = worker.log().split('\n').filter((l) => l.includes('"code":"host_exhausted"'));
  assert.equal(warnings.length, 2, `one warning per job:\n${warnings.join('\n')}`);
  assert.ok(warnings.every((l) => l.includes('"level":40')), warnings.join('\n'));
});
