/**
 * The V8 flags the worker process runs with. Every way of starting it passes them on node's command
 * line (package.json's `worker`, infra/docker/worker.Dockerfile, infra/k8s/worker.yaml,
 * infra/systemd/sbx-worker.service, infra/scripts/up.sh, the test harness); V8 reads them when the
 * isolate is made, so they cannot be set from inside (node refuses them in NODE_OPTIONS).
 * test/deploy/deploy-files.test.ts checks that each of those places has them.
 *
 * --initial-old-space-size=128: an image pull streams its layers through the main isolate as
 * socket buffers. With V8's default first old-generation limit, a pull of the 250 MB bench image
 * set off about 10 mark-compacts, whose marking runs on the main thread and V8's helper threads;
 * with 128 MiB, 1–2, and about 15–20 % less CPU per pull (worker/bench/BENCHMARKS.md, nineteenth
 * session). It is where the first limit starts, not a cap: V8 still collects, and shrinks the heap
 * when idle (the worker's RSS after three such pulls was the same with and without).
 */
export const WORKER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/** The flags of WORKER_NODE_FLAGS that this process was started without. */
export function missingWorkerNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return WORKER_NODE_FLAGS.filter((f) => !execArgv.includes(f));
}
