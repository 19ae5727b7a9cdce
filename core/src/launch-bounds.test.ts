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
import { launch, LaunchError, type LaunchSpec } from '../../native/index.ts';
import { baseSpec, buildBusyboxRootfs, makeTempDir, removeParent, uniqueParent } from '../../native/test/helpers.ts';
import type { AcquiredImage } from '../../worker/src/images/image-store.ts';
import { buildLaunchSpec } from '../../worker/src/launch/launch-plan.ts';
import { ensureOpenFilesLimit } from '../../worker/src/open-files-limit.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { JobRequest } from './job-spec.ts';
import { LAUNCH_BOUNDS, type LaunchLimitName } from './launch-bounds.ts';

const parent = uniqueParent('bounds');
let tmp = '';
let image: AcquiredImage;

before(() => {
  tmp = makeTempDir('bounds');
  const rootfs = buildBusyboxRootfs(path.join(tmp, 'rootfs'));
  image = { reference: 'test/busybox', digest: 'sha256:0', layerDirs: [rootfs], config: { env: [], entrypoint: null, cmd: ['true'], workingDir: '/', user: '' }, sizeBytes: 0, pulled: false, release() {} };
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
    const j = await launch({ ...spec, argv: ['true'] }, { cgroupParent: parent });
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
