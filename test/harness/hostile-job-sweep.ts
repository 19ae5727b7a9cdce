/**
 * What the end-to-end sweeps of hostile jobs share (test/e2e/hostile-image-configs.test.ts,
 * hostile-layers.test.ts, hostile-job-requests.test.ts): push each job's image if it has one, run
 * the job, wait for its final document, and after the sweep assert what a user must always get:
 * every job ran (succeeded or failed by its own exit code, or ended by a limit the sweep set) or
 * ended `error` with a code a user can act on and a message that names no internal (nor the
 * launcher's own syntax, such as "cwd: chdir `/x`"); a request refused at submission (where the
 * sweep allows it) is a 400 invalid_request; each outcome the sweep must reach was reached; nothing
 * of the jobs is mounted on the host; a plain job still runs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pushImage, type BuiltImage } from '../fixtures/oci-builder.ts';
import type { StackUnderTest } from './use-stack.ts';

const FINAL = ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];
/** Words of a message that says more about the worker than about the job's image or request. */
const INTERNAL_WORDS = /undefined|\[object|EINVAL \(Invalid argument\)|Unknown system error|`/;

export interface SweepJob {
  /** How the failure names it: its number and what was made hostile. */
  what: string;
  /** Pushed before the job runs; its reference is the request's `image`. Absent: the request names its image. */
  image?: BuiltImage;
  request: Record<string, unknown>;
}

export interface SweepOptions {
  seed: number;
  concurrency: number;
  /** The `error.code`s a job of this sweep may end with. */
  actionable: ReadonlySet<string>;
  /** Outcomes (`succeeded`, `error/invalid_image`, `400`, …) the sweep must each reach at least once. */
  mustReach: readonly string[];
  /** A 400 invalid_request at submission is an outcome (`400`), not a broken contract. */
  mayRefuse?: boolean;
  /** Statuses a job may end with besides succeeded and failed: `timeout` and `oom` where the sweep sets limits. */
  limitStatuses?: readonly string[];
  /** How long a job may take to reach its final status. */
  settleWithinMs?: number;
}

/** Runs `jobs` (each made when its turn comes) through the stack and asserts the above. */
export async function runHostileJobSweep(e2e: StackUnderTest, jobs: Array<() => Promise<SweepJob>>, opts: SweepOptions): Promise<void> {
  const { stack, api } = e2e;
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  let next = 0;
  const runOne = async (n: number): Promise<void> => {
    const j = await jobs[n]!();
    let request = j.request;
    if (j.image) {
      const repo = `hostile/sweep-${n}`;
      await pushImage(stack.registry.url, repo, 'latest', j.image);
      request = { ...request, image: `${stack.registry.host}/${repo}:latest` };
    }
    const res = await api.submit(request, { wait: true });
    const refused = res.body as unknown as { error?: { code?: string; message?: string } };
    if (res.status === 400 && opts.mayRefuse && refused.error?.code === 'invalid_request') return void outcomes.set('400', (outcomes.get('400') ?? 0) + 1);
    if (res.status !== 200) return void problems.push(`${j.what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
    let job = res.body;
    for (const started = Date.now(); !FINAL.includes(job.status) && Date.now() - started < (opts.settleWithinMs ?? 30_000);) {
      await new Promise((r) => setTimeout(r, 100));
      job = (await api.request<typeof job>('GET', `/v1/jobs/${job.id}`)).body;
    }
    const outcome = job.status === 'error' ? `error/${job.error?.code}` : job.status;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const ran = job.status === 'succeeded' || job.status === 'failed' || (opts.limitStatuses ?? []).includes(job.status);
    if (!ran && !(job.status === 'error' && opts.actionable.has(job.error?.code ?? ''))) problems.push(`${j.what}: ${outcome}: ${JSON.stringify(job.error).slice(0, 300)}`);
    if (job.error && INTERNAL_WORDS.test(job.error.message)) problems.push(`${j.what}: a message naming an internal: ${job.error.message.slice(0, 300)}`);
  };
  await Promise.all(Array.from({ length: opts.concurrency }, async () => {
    while (next < jobs.length) await runOne(next++);
  }));
  const tally = JSON.stringify(Object.fromEntries(outcomes));
  assert.deepEqual(problems, [], `${problems.length} of ${jobs.length} jobs broke the contract (seed ${opts.seed}); outcomes ${tally}`);
  assert.deepEqual(opts.mustReach.filter((o) => !outcomes.has(o)), [], `the sweep reached every outcome it must: ${tally}`);

  const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((m) => m.includes(stack.env.SBX_STATE_DIR!));
  assert.deepEqual(mounted, [], 'mounts of the jobs left on the host');
  const plain = await api.submit({ image: stack.images.busybox, command: ['echo', 'still here'] }, { wait: true });
  assert.equal(plain.body.output?.stdout, 'still here\n');
}
