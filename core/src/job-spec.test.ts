/**
 * The stored spec is the contract between the API that writes it and the worker that runs it, which
 * may be of another version during a rolling deploy: the worker refuses a spec with fields or values
 * it does not know (storedSpecProblems) rather than running the job without them. So every field a
 * request may carry must reach a spec that check accepts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildJobSpec } from '../../api/src/job-submission.ts';
import { loadConfig } from './config.ts';
import { JobRequest, LimitsRequest, storedSpecProblems, type JobSpec } from './job-spec.ts';

/** A request with every field JobRequest and its limits have set (checked below, so a new field must be added here). */
const EVERY_FIELD = {
  image: 'registry.example/team/app:1',
  pull: 'always',
  command: ['python3', '-c', 'print(1)'],
  entrypoint: ['/bin/sh', '-c'],
  env: { A: '1' },
  workdir: '/work',
  user: '1000:1000',
  stdin: 'input',
  openStdin: true,
  tty: true,
  ttySize: { rows: 24, cols: 80 },
  outputFiles: ['out/*.txt'],
  files: [{ path: 'in.txt', content: 'aGk=', encoding: 'base64', mode: '0755' }],
  limits: { memoryBytes: 64 << 20, cpus: 1, pids: 64, timeoutMs: 10_000, outputBytes: 1 << 20, outputTailBytes: 1024, diskBytes: 16 << 20, cpuTimeMs: 5000, openFiles: 256, outputIdleTimeoutMs: 5000, idleTimeoutMs: 5000, stopGraceMs: 1000 },
  stopSignal: 'SIGINT',
  network: 'egress',
  egressHosts: ['pypi.org'],
  labels: { team: 'a' },
  idempotencyKey: 'key-1',
  registryAuth: { username: 'u', password: 'p' },
  callbackUrl: 'https://hooks.example/done',
};

function specOf(request: unknown): JobSpec {
  const req = JobRequest.parse(request);
  return JSON.parse(JSON.stringify(buildJobSpec(req, 'j_specfields', 'default', loadConfig({}).limits, new Date()))) as JobSpec;
}

test('every field a request may carry reaches a stored spec the worker accepts', () => {
  assert.deepEqual(Object.keys(JobRequest.shape).filter((k) => !(k in EVERY_FIELD)), [], 'the request above sets every field');
  assert.deepEqual(Object.keys(LimitsRequest.shape).filter((k) => !(k in EVERY_FIELD.limits)), [], 'and every limit');
  assert.deepEqual(storedSpecProblems(specOf(EVERY_FIELD)), { unknown: [], invalid: [] });
  assert.deepEqual(storedSpecProblems(specOf({ image: 'busybox', command: ['true'] })), { unknown: [], invalid: [] });
});

test('fields and values a newer API wrote are named, at any depth; anything else damaged is told apart', () => {
  const spec = specOf({ image: 'busybox', command: ['true'], files: [{ path: 'a', content: 'x' }] });
  const newer = {
    ...spec,
    sidecars: [{ image: 'redis' }],
    pull: 'never',
    network: 'bridge',
    limits: { ...spec.limits, gpus: 1 },
    files: [{ ...spec.files![0]!, owner: 'root' }],
  };
  const problems = storedSpecProblems(newer);
  assert.deepEqual(new Set(problems.unknown), new Set(['sidecars', 'pull "never"', 'limits.gpus', 'network "bridge"', 'files.0.owner']));
  assert.deepEqual(problems.invalid, []);

  const { limits: _, ...damaged } = { ...spec, env: 'A=1' };
  assert.deepEqual(storedSpecProblems(damaged), { unknown: [], invalid: ['env: Invalid input: expected record, received string', 'limits: Invalid input: expected object, received undefined'] });
});
