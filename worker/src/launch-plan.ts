/**
 * What to start, with Docker's semantics: the request's `entrypoint` replaces the image's
 * Entrypoint (and then drops the image's Cmd), `command` replaces Cmd; `env` is merged over the
 * image's Env; `workdir` and `user` default to the image config. Nothing of the worker's own
 * environment is ever added.
 */
import { InvalidRequestError } from '../../core/src/errors.ts';
import type { JobSpec } from '../../core/src/job-spec.ts';
import type { LaunchSpec } from '../../native/index.ts';
import type { AcquiredImage } from './images/image-store.ts';
import { resolveUser } from './images/image-user.ts';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function resolveArgv(spec: Pick<JobSpec, 'entrypoint' | 'command'>, image: { entrypoint: string[] | null; cmd: string[] | null }): string[] {
  const argv = spec.entrypoint != null ? [...spec.entrypoint, ...(spec.command ?? [])] : [...(image.entrypoint ?? []), ...(spec.command ?? image.cmd ?? [])];
  if (argv.length === 0) {
    throw new InvalidRequestError('no command to run: the image has no Entrypoint or Cmd; send "command"', [{ path: 'command', message: 'is required for this image' }]);
  }
  return argv;
}

/** Image Env, then request env over it (by name), then PATH/HOSTNAME/HOME when still missing. */
export function mergeEnv(imageEnv: string[], requestEnv: Record<string, string>, defaults: { hostname: string; home: string }): string[] {
  const merged = new Map<string, string>();
  for (const kv of imageEnv) {
    const eq = kv.indexOf('=');
    if (eq > 0) merged.set(kv.slice(0, eq), kv);
  }
  for (const [k, v] of Object.entries(requestEnv)) merged.set(k, `${k}=${v}`);
  if (!merged.has('PATH')) merged.set('PATH', DEFAULT_PATH);
  merged.set('HOSTNAME', `HOSTNAME=${defaults.hostname}`);
  if (!merged.has('HOME')) merged.set('HOME', `HOME=${defaults.home}`);
  return [...merged.values()];
}

export function hostnameFor(jobId: string): string {
  return `sbx-${jobId.slice(-12).toLowerCase()}`;
}

export async function buildLaunchSpec(spec: JobSpec, image: AcquiredImage, slot: number): Promise<LaunchSpec> {
  const argv = resolveArgv(spec, image.config);
  const user = await resolveUser(image.layerDirs, spec.user ?? image.config.user ?? '');
  const hostname = hostnameFor(spec.id);
  const home = user.uid === 0 ? '/root' : '/';
  return {
    id: spec.id,
    slot,
    lowerDirs: image.layerDirs,
    argv,
    env: mergeEnv(image.config.env, spec.env, { hostname, home }),
    cwd: spec.workdir ?? (image.config.workingDir || '/'),
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    hostname,
    stdin: spec.stdin,
    limits: {
      memoryBytes: spec.limits.memoryBytes,
      pids: spec.limits.pids,
      cpus: spec.limits.cpus,
      timeoutMs: spec.limits.timeoutMs,
      diskBytes: spec.limits.diskBytes,
    },
  };
}
