/**
 * Every limit value the API accepts, the launcher accepts; every value the API refuses, the launcher
 * refuses too (invalid_spec). For each limit, the values around the API's minimum and maximum and a
 * few between go through the API's own checks (LimitsRequest, config SBX_DEFAULT_* and SBX_MAX_*, the
 * defaults and maxima of api/src/job-submission.ts), then worker/src/launch/launch-plan.ts, then a real
 * launch of `true` in a busybox rootfs (run as root, like the launcher's own tests).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildJobSpec } from '../../api/src/job-submission.ts';
import { launch, LaunchError, type LaunchOptions, type LaunchSpec } from '../../native/index.ts';
import { baseSpec, buildBusyboxRootfs, makeTempDir, removeParent, testUidBase, uniqueParent } from '../../native/test/helpers.ts';
import type { AcquiredImage } from '../../worker/src/images/image-store.ts';
import { buildLaunchSpec } from '../../worker/src/launch/launch-plan.ts';
import { ensureOpenFilesLimit } from '../../worker/src/open-files-limit.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { JobRequest } from './job-spec.ts';
import { LAUNCH_BOUNDS, type LaunchLimitName } from './launch-bounds.ts';

const parent = uniqueParent('bounds');
const opts: LaunchOptions = { cgroupParent: parent };
let tmp = '';
let image: AcquiredImage;

before(async () => {
  tmp = makeTempDir('bounds');
  const rootfs = buildBusyboxRootfs(path.join(tmp, 'rootfs'));
  image = { reference: 'test/busybox', digest: 'sha256:0', layerDirs: [rootfs], config: { env: [], entrypoint: null, cmd: ['true'], workingDir: '/', user: '' }, sizeBytes: 0, pulled: false, release() {} };
  opts.stateDir = path.join(tmp, 'state');
  opts.uidBase = await testUidBase();
});
after(() => {
  removeParent(parent);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const MAX_VAR: Record<LaunchLimitName, string> = {
  memoryBytes: 'MEMORY_BYTES', pids: 'PIDS', cpus: 'CPUS', timeoutMs: 'TIMEOUT_MS', diskBytes: 'DISK_BYTES', cpuTimeMs: 'CPU_TIME_MS', openFiles: 'OPEN_FILES',
};

/** A server that allows `value` for `name` (the default config, its maximum raised when needed), or why none can be. */
function serverAllowing(name: LaunchLimitName, value: number): Config | string {
  try {
    const config = loadConfig({});
    if (value <= config.limits.maxima[name]) return config;
    return loadConfig({ [`SBX_MAX_${MAX_VAR[name]}`]: String(value) });
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
}

/** The launch spec the API + worker would make for a job asking `name: value`, or why the API refuses it. */
function apiLaunchSpec(name: LaunchLimitName, value: number): Promise<LaunchSpec> | string {
  const req = JobRequest.safeParse({ image: 'registry.test/busybox', limits: { [name]: value } });
  if (!req.success) return `request: ${req.error.issues[0]!.message}`;
  const config = serverAllowing(name, value);
  if (typeof config === 'string') return `config: ${config}`;
  // The worker raises its hard RLIMIT_NOFILE to SBX_MAX_OPEN_FILES at start or refuses to start.
  if (name === 'openFiles') {
    try {
      ensureOpenFilesLimit(config.env.SBX_MAX_OPEN_FILES);
    } catch (e) {
      return `worker start: ${(e as Error).message}`;
    }
  }
  let spec;
  try {
    spec = buildJobSpec(req.data, `j_bounds${Math.random().toString(36).slice(2, 10)}`, 'default', config.limits, new Date());
  } catch (e) {
    return `submission: ${(e as Error).message}`;
  }
  return buildLaunchSpec(spec, image, 0);
}

/** What the launcher says about `spec`: 'invalid_spec' or 'accepted' (it ran, whatever the outcome). */
async function launcherVerdict(spec: LaunchSpec): Promise<string> {
  try {
    const j = await launch({ ...spec, argv: ['true'] }, opts);
    j.stdout.resume();
    j.stderr.resume();
    await j.exited;
    return 'accepted';
  } catch (e) {
    if (!(e instanceof LaunchError)) throw e; // not the launcher's verdict (e.g. the addon is missing)
    if (e.code === 'invalid_spec') return `invalid_spec: ${e.message}`;
    return `accepted (then failed: ${e.code}: ${e.message})`;
  }
}

/** Values to try: around each bound, a few between, and values that once slipped through. */
function candidates(name: LaunchLimitName): number[] {
  const { min, max, integer } = LAUNCH_BOUNDS[name];
  const step = integer ? 1 : 0.001;
  const between = integer ? [min + 1, Math.floor(Math.sqrt(min * max)), Math.floor(max / 2), max - 1] : [min + step, 0.5, 1, 3, max / 2, max - step];
  const legacy: Partial<Record<LaunchLimitName, number[]>> = { pids: [0, 1], cpus: [0, 0.001, 0.009], openFiles: [16, 1024, 20_000, 65_536], timeoutMs: [2 ** 31], memoryBytes: [1024] };
  return [...new Set([min - step, min, ...between, max, max + step, ...(legacy[name] ?? [])])].filter((v) => v >= 0).sort((a, b) => a - b);
}

describe('the API and the launcher agree on every limit', () => {
  for (const name of Object.keys(LAUNCH_BOUNDS) as LaunchLimitName[]) {
    test(name, async () => {
      const disagreements: string[] = [];
      const seen: string[] = [];
      for (const value of candidates(name)) {
        const viaApi = apiLaunchSpec(name, value);
        seen.push(typeof viaApi === "string" ? `${value}: api refuses` : `${value}: api accepts`);
        if (typeof viaApi !== 'string') {
          // Accepted by the API: the launcher must take the spec the worker builds from it.
          const verdict = await launcherVerdict(await viaApi);
          seen.push(`  launcher ${verdict}`);
          if (verdict.startsWith('invalid_spec')) disagreements.push(`${name}=${value}: the API accepts it, the launcher says ${verdict}`);
        } else {
          // Refused by the API: forced past it, the launcher refuses it too.
          const forced = baseSpec(image.layerDirs, { id: `bounds-${Math.random().toString(36).slice(2, 10)}` });
          const verdict = await launcherVerdict({ ...forced, limits: { ...forced.limits, [name]: value } });
          seen.push(`  launcher ${verdict}`);
          if (!verdict.startsWith('invalid_spec')) disagreements.push(`${name}=${value}: the API refuses it (${viaApi.split('\n')[0]}), the launcher ${verdict}`);
        }
      }
      if (process.env.SBX_TEST_VERBOSE) console.log(name, seen);
      assert.deepEqual(disagreements, []);
    });
  }
});

describe('the API and the kernel agree on what a command may carry (EXEC_BOUNDS, JOB_ID_RANGE)', () => {
  const big = (n: number, ch = 'a') => ch.repeat(n);
  /** What the API says about a request with these fields, and when it accepts, what launching its spec does. */
  async function verdict(fields: Record<string, unknown>): Promise<string> {
    const req = JobRequest.safeParse({ image: 'registry.test/busybox', ...fields });
    if (!req.success) return `api refuses: ${req.error.issues[0]!.message}`;
    let spec;
    try {
      spec = buildJobSpec(req.data, `j_bounds${Math.random().toString(36).slice(2, 10)}`, 'default', loadConfig({}).limits, new Date());
    } catch (e) {
      return `api refuses: ${(e as Error).message}`;
    }
    try {
      const j = await launch(await buildLaunchSpec(spec, image, 0), opts);
      j.stdout.resume();
      j.stderr.resume();
      return `ran: exit ${(await j.exited).exitCode}`;
    } catch (e) {
      if (!(e instanceof LaunchError)) throw e;
      return `launcher refuses: ${e.code}: ${e.message}`;
    }
  }
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an argument of 131,071 bytes', { command: ['true', big(131_071)] }, /^ran: exit 0$/],
    ['an argument of 131,072 bytes', { command: ['true', big(131_072)] }, /^api refuses: each item must be at most 131071 bytes/],
    ['an argument of 65,535 two-byte characters', { command: ['true', big(65_535, 'é')] }, /^ran: exit 0$/],
    ['an argument of 65,536 two-byte characters (131,072 bytes)', { command: ['true', big(65_536, 'é')] }, /^api refuses: each item must be at most 131071 bytes/],
    ['an entrypoint item of 131,072 bytes', { entrypoint: ['true', big(131_072)] }, /^api refuses: each item must be at most 131071 bytes/],
    ['X=value of 131,071 bytes', { command: ['true'], env: { X: big(131_069) } }, /^ran: exit 0$/],
    ['X=value of 131,072 bytes', { command: ['true'], env: { X: big(131_070) } }, /^api refuses: each NAME=value must be at most 131071 bytes/],
    ['seven arguments and a variable of ~128 KiB each: just under 1 MiB together', { command: ['true', ...Array(7).fill(big(131_071))], env: { X: big(130_000) } }, /^ran: exit 0$/],
    ['eight arguments of 131,071 bytes: over 1 MiB together', { command: ['true', ...Array(8).fill(big(131_071))] }, /^api refuses: command, entrypoint and env together must be at most 1048576 bytes/],
    ['a workdir of 4,095 bytes (made, as the image lacks it)', { command: ['true'], workdir: `/${`${big(254)}/`.repeat(16)}`.slice(0, 4095) }, /^ran: exit 0$/],
    ['user 65535:65535', { command: ['true'], user: '65535:65535' }, /^ran: exit 0$/],
    ['user 65536', { command: ['true'], user: '65536' }, /^api refuses: a numeric uid or gid must be at most 65535/],
    ['user 0:65536', { command: ['true'], user: '0:65536' }, /^api refuses: a numeric uid or gid must be at most 65535/],
    ['a workdir of 4,096 bytes', { command: ['true'], workdir: `/${big(4095)}` }, /^api refuses: must be at most 4095 bytes/],
  ];
  for (const [name, fields, expected] of cases) {
    test(name, async () => {
      const got = await verdict(fields);
      assert.match(got, expected, got.slice(0, 300));
    });
  }
});
