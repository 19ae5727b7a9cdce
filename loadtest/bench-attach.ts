/**
 * `npm run bench:attach`: keystroke-to-echo round trip of an interactive job through the whole
 * path — WebSocket to the API, the job's stdin stream in Redis, the worker, the job's own pty (its
 * line discipline echoes), the output stream in Redis, back over the WebSocket. Against a running
 * stack (`npm run up`) by default, or `--own-stack` to start one (test harness: API and worker as
 * separate processes, private Redis). Prints medians; never asserts.
 * Flags: --api URL  --api-key KEY  --image REF  --keys N  --own-stack  --json
 */
import { parseArgs } from 'node:util';
import { attachJob, SbxClient } from '../client/src/index.ts';
import { percentile } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    api: { type: 'string', default: process.env.BASE_URL ?? 'http://127.0.0.1:8080' },
    'api-key': { type: 'string', default: process.env.SBX_API_KEY },
    image: { type: 'string', default: '127.0.0.1:5000/demo/busybox:latest' },
    keys: { type: 'string', default: '300' },
    'own-stack': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

async function main(): Promise<void> {
  let api = values.api!;
  let image = values.image!;
  let stop = async () => {};
  if (values['own-stack']) {
    const { startStack } = await import('../test/harness/stack.ts');
    const stack = await startStack();
    api = stack.apiUrl;
    image = stack.images.busybox;
    stop = () => stack.stop();
  }
  try {
    const apiKey = values['api-key'];
    const client = new SbxClient({ baseUrl: api, ...(apiKey ? { apiKey } : {}) });
    const job = await client.submit({ image, tty: true, openStdin: true, command: ['cat'], limits: { timeoutMs: 300_000 } });
    let seen = '';
    let wake: (() => void) | null = null;
    const att = await attachJob(job.id, { baseUrl: api, ...(apiKey ? { apiKey } : {}), logs: true, onOutput: (_s, d) => { seen += d.toString(); wake?.(); } });
    const until = async (needle: string) => {
      while (!seen.includes(needle)) await new Promise<void>((r) => { wake = r; setTimeout(r, 1000); });
    };
    const n = Number(values.keys);
    const rtts: number[] = [];
    for (let i = 0; i < n + 20; i++) {
      const ch = String.fromCharCode(97 + (i % 26));
      seen = '';
      const t0 = performance.now();
      await att.write(ch);
      await until(ch);
      if (i >= 20) rtts.push(performance.now() - t0); // the first 20 warm up
    }
    att.signal('SIGTERM');
    await att.ended;
    await client.close();
    const r = { keys: rtts.length, p50Ms: +percentile(rtts, 50).toFixed(2), p90Ms: +percentile(rtts, 90).toFixed(2), p99Ms: +percentile(rtts, 99).toFixed(2) };
    if (values.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else process.stdout.write(`keystroke → echo over attach (${r.keys} keys): p50 ${r.p50Ms} ms, p90 ${r.p90Ms} ms, p99 ${r.p99Ms} ms\n`);
  } finally {
    await stop();
  }
}

await main();
