/**
 * What the end-to-end sweeps of hostile images share (test/e2e/hostile-image-configs.test.ts,
 * hostile-layers.test.ts): push each image, run its job, wait for its final document, and after the
 * sweep assert what a user must always get: every job ran (succeeded or failed by its own exit code)
 * or ended `error` with a code a user can act on and a message that names no internal; both sides
 * were reached; nothing of the jobs is mounted on the host; a plain job still runs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pushImage, type BuiltImage } from '../fixtures/oci-builder.ts';
import type { StackUnderTest } from './use-stack.ts';

const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];
/** Words of a message that says more about the worker than about the job's image or request. */
const INTERNAL_WORDS = /undefined|\[object|EINVAL \(Invalid argument\)/;

export interface SweepJob {
  /** How the failure names it: its number and what was made hostile. */
  what: string;
  image: BuiltImage;
  /** The job's request, without `image` (the pushed image's reference is added). */
  request: Record<string, unknown>;
}

export interface SweepOptions {
  seed: number;
  concurrency: number;
  /** The `error.code`s a job of this sweep may end with. */
  actionable: ReadonlySet<string>;
}

/** Runs `jobs` (each made when its turn comes) through the stack and asserts the above. */
export async function runHostileImageSweep(e2e: StackUnderTest, jobs: Array<() => Promise<SweepJob>>, opts: SweepOptions): Promise<void> {
  const { stack, api } = e2e;
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  let next = 0;
  const runOne = async (n: number): Promise<void> => {
    const j = await jobs[n]!();
    const repo = `hostile/sweep-${n}`;
    await pushImage(stack.registry.url, repo, 'latest', j.image);
    const res = await api.submit({ ...j.request, image: `${stack.registry.host}/${repo}:latest` }, { wait: true });
    if (res.status !== 200) return void problems.push(`${j.what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
    let job = res.body;
    for (const started = Date.now(); !FINAL.includes(job.status) && Date.now() - started < 30_000;) {
      await new Promise((r) => setTimeout(r, 100));
      job = (await api.request<typeof job>('GET', `/v1/jobs/${job.id}`)).body;
    }
    const outcome = job.status === 'error' ? `error/${job.error?.code}` : job.status;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const ran = job.status === 'succeeded' || job.status === 'failed';
    if (!ran && !(job.status === 'error' && opts.actionable.has(job.error?.code ?? ''))) problems.push(`${j.what}: ${outcome}: ${JSON.stringify(job.error).slice(0, 300)}`);
    if (job.error && INTERNAL_WORDS.test(job.error.message)) problems.push(`${j.what}: a message naming an internal: ${job.error.message.slice(0, 300)}`);
  };
  await Promise.all(Array.from({ length: opts.concurrency }, async () => {
    while (next < jobs.length) await runOne(next++);
  }));
  const tally = JSON.stringify(Object.fromEntries(outcomes));
  assert.deepEqual(problems, [], `${problems.length} of ${jobs.length} jobs broke the contract (seed ${opts.seed}); outcomes ${tally}`);
  assert.ok((outcomes.get('succeeded') ?? 0) > 0 && (outcomes.get('error/invalid_image') ?? 0) > 0, `the sweep reached both sides: ${tally}`);

  const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((m) => m.includes(stack.env.SBX_STATE_DIR!));
  assert.deepEqual(mounted, [], 'mounts of the jobs left on the host');
  const plain = await api.submit({ image: stack.images.busybox, command: ['echo', 'still here'] }, { wait: true });
  assert.equal(plain.body.output?.stdout, 'still here\n');
}
