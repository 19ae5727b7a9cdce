/**
 * Output past a job's cap dropped in the kernel (native/src/pipe_drop.h, RedisOutputSink.dropRest),
 * against hostile writers, on a stack that signs no receipts (a receipt's digests need every byte
 * read, so jobs.test.ts and storage-budget.test.ts never drop in the kernel).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStack } from '../harness/use-stack.ts';

let image: string;
const e2e = useStack({}, { then: ({ stack }) => void (image = stack.images.busybox) });
const run = (command: string[], extra: Record<string, unknown> = {}) => e2e.api.submit({ image, command, ...extra }, { wait: true });

test('outputIdleTimeoutMs counts output dropped in the kernel from when it was written, not from when the worker looked', async () => {
  // Past the cap at once, more 0.2 s later (dropped in the kernel), then silence. Before, the silence
  // watch saw the drop's progress only at its first check, 3 s in, and gave the job 3 s more.
  const idle = 3000;
  const job = await run(['sh', '-c', 'head -c 5000 /dev/zero; sleep 0.2; head -c 5000 /dev/zero; sleep 60'], { limits: { outputBytes: 1000, outputIdleTimeoutMs: idle } });
  assert.equal(job.body.status, 'timeout', JSON.stringify(job.body));
  assert.equal(job.body.error?.code, 'output_idle_timeout');
  assert.deepEqual(job.body.outputDroppedBytes, { stdout: 9000, stderr: 0 });
  assert.ok(job.body.usage!.wallMs < 2 * idle, `killed after ${job.body.usage!.wallMs} ms: its last output was 0.2 s in, the limit ${idle} ms`);
});

test('a job that keeps writing past its cap is not silent: its dropped output counts for outputIdleTimeoutMs', async () => {
  // 12 writes 150 ms apart (1.8 s in all) outlive a 1.5 s silence limit; all but the first byte is dropped in the kernel.
  const job = await run(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo $i; sleep 0.15; done'], { limits: { outputIdleTimeoutMs: 1500, outputBytes: 1 } });
  assert.equal(job.body.status, 'succeeded', JSON.stringify(job.body));
  assert.equal(job.body.output!.stdout, '1');
  assert.deepEqual(job.body.outputDroppedBytes, { stdout: 26, stderr: 0 });
});
