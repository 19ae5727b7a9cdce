import assert from 'node:assert/strict';
import { test } from 'node:test';
import { missingWorkerNodeFlags, WORKER_NODE_FLAGS } from './node-flags.ts';

test('a worker started without its V8 flags is told which ones are missing', () => {
  assert.deepEqual(missingWorkerNodeFlags(['--import', 'tsx']), [...WORKER_NODE_FLAGS]);
  assert.deepEqual(missingWorkerNodeFlags(['--initial-old-space-size=64']), [...WORKER_NODE_FLAGS], 'another value is not the flag');
  assert.deepEqual(missingWorkerNodeFlags([...WORKER_NODE_FLAGS, '--import', 'tsx']), []);
});
