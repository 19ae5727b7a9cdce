/**
 * Unpack worker thread: runs extractLayer() for one layer at a time, fed with the (already
 * digest-checked-as-it-streams) compressed bytes by the main thread. Decompression, tar parsing and
 * the synchronous file writes all happen here, so several layers use several cores and the main
 * event loop stays free. Protocol in unpack-pool.ts.
 */
import { PassThrough } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { extractLayer } from './layer-extract.ts';
import type { WorkerReply, WorkerRequest } from './unpack-pool.ts';

/** Marks a rejection of the layer itself (its `message` is the detail), as opposed to an I/O failure. */
class LayerRejected extends Error {}

const port = parentPort;
if (!port) throw new Error('layer-unpack-worker.ts must run in a worker thread');

let source: PassThrough | null = null;
let currentJob = 0;

function reply(message: WorkerReply): void {
  port!.postMessage(message);
}

port.postMessage({ job: 0, type: 'ready' } satisfies WorkerReply);

port.on('message', (message: WorkerRequest) => {
  switch (message.type) {
    case 'start': {
      const job = message.job;
      currentJob = job;
      const current = new PassThrough({ highWaterMark: 1 << 20 });
      // The pipeline may already be torn down when an abort arrives: never let that error go uncaught.
      current.on('error', () => {});
      source = current;
      extractLayer(current, message.targetDir, {
        compression: message.compression,
        diffId: message.diffId,
        limits: message.limits,
        ...(message.chown !== undefined ? { chown: message.chown } : {}),
        fail: (detail) => new LayerRejected(detail),
      }).then(
        (result) => reply({ job, type: 'done', result }),
        (e: unknown) => {
          if (e instanceof LayerRejected) reply({ job, type: 'rejected', detail: e.message });
          else reply({ job, type: 'failed', message: (e as Error).message ?? String(e), code: (e as { code?: string }).code });
        },
      );
      return;
    }
    case 'chunk': {
      const job = currentJob;
      source?.write(message.data, () => reply({ job, type: 'ack' }));
      return;
    }
    case 'end':
      source?.end();
      return;
    case 'abort':
      source?.destroy(new Error('unpack aborted'));
      return;
  }
});
