/**
 * `run-job.ts --api URL --image REF [--timeout-ms N] -- CMD...`: submit a job, stream its output
 * from the SSE endpoint to this terminal, exit with the job's exit code.
 */
import { parseArgs } from 'node:util';
import { parseServerSentEvents } from '../../client/src/sse.ts';

const { values, positionals } = parseArgs({
  options: { api: { type: 'string', default: 'http://127.0.0.1:8080' }, image: { type: 'string' }, 'timeout-ms': { type: 'string' }, key: { type: 'string' } },
  allowPositionals: true,
});
if (!values.image) {
  process.stderr.write('usage: run-job.ts --api URL --image REF -- CMD [ARGS...]\n');
  process.exit(2);
}
const headers: Record<string, string> = { 'content-type': 'application/json', ...(values.key ? { authorization: `Bearer ${values.key}` } : {}) };
const body = { image: values.image, command: positionals.length ? positionals : undefined, limits: values['timeout-ms'] ? { timeoutMs: Number(values['timeout-ms']) } : undefined };
const res = await fetch(`${values.api}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify(body) });
const job = (await res.json()) as { id?: string; error?: { message: string } };
if (res.status !== 202 || !job.id) {
  process.stderr.write(`sbx: submit failed (${res.status}): ${job.error?.message ?? JSON.stringify(job)}\n`);
  process.exit(1);
}
process.stderr.write(`sbx: job ${job.id} — streaming ${values.api}/v1/jobs/${job.id}/events\n`);
const events = await fetch(`${values.api}/v1/jobs/${job.id}/events`, { headers });
if (!events.body) throw new Error(`events answered ${events.status}`);
for await (const e of parseServerSentEvents(events.body)) {
  const data = JSON.parse(e.data);
  if (e.event === 'stdout') process.stdout.write(data.data);
  else if (e.event === 'stderr') process.stderr.write(data.data);
  else if (e.event === 'status') process.stderr.write(`sbx: ${data.status}\n`);
  else if (e.event === 'exit') {
    const detail = data.error ? ` (${data.error.code}: ${data.error.message})` : data.exitCode !== null ? ` (exit code ${data.exitCode})` : '';
    process.stderr.write(`sbx: ${data.status}${detail} in ${data.usage ? Math.round(data.usage.wallMs * 10) / 10 : "?"} ms wall, ${data.timings.queueMs} ms queued, ${data.timings.pullMs} ms pulling\n`);
    process.exit(data.status === 'succeeded' ? 0 : (data.exitCode ?? 1));
  }
}
