/**
 * What to start: the job spec applied to the image config with Docker's semantics (command and
 * env rules in image-config.ts), `workdir` and `user` defaulting to the image's, the user
 * resolved inside the image. Nothing of the worker's own environment is ever added.
 */
import { inputFileData, type JobSpec } from '../../../core/src/job-spec.ts';
import type { LaunchSpec } from '../../../native/index.ts';
import type { AcquiredImage } from '../images/image-store.ts';
import { envKey, imageCommandParts, mergeEnv, resolveCommand } from './image-config.ts';
import { checkImageValues, checkProgram, imageUserError } from './image-values.ts';
import { resolveUser } from './image-user.ts';
import { EGRESS_PROXY_ENV, EGRESS_PROXY_PORT } from '../egress/egress-proxy.ts';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The job's environment: image Env with the request's over it, then PATH and HOME when missing,
 * TERM=xterm for a tty job without one (docker -t), and HOSTNAME: the job's own unless the request
 * sets it (an image's is replaced, as the job's hostname is not the image's).
 */
export function jobEnv(imageEnv: string[], requestEnv: Record<string, string>, defaults: { hostname: string; home: string; tty?: boolean }): string[] {
  const env = mergeEnv(imageEnv.filter((kv) => !kv.startsWith('HOSTNAME=')), requestEnv);
  if (!env.some((kv) => kv.startsWith('PATH='))) env.push(DEFAULT_PATH);
  if (!env.some((kv) => kv.startsWith('HOME='))) env.push(`HOME=${defaults.home}`);
  if (defaults.tty && !env.some((kv) => kv.startsWith('TERM='))) env.push('TERM=xterm');
  if (!env.some((kv) => kv.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${defaults.hostname}`);
  return env;
}

export function hostnameFor(jobId: string): string {
  return `sbx-${jobId.slice(-12).toLowerCase()}`;
}

export async function buildLaunchSpec(spec: JobSpec, image: AcquiredImage, slot: number): Promise<LaunchSpec> {
  const request = { command: spec.command, entrypoint: spec.entrypoint };
  const argv = resolveCommand(image.config, request);
  // A network "egress" job's way out is the proxy in its namespace: the request's env may still say otherwise.
  const egress = spec.network === 'egress';
  const requestEnv = egress ? { ...EGRESS_PROXY_ENV, ...spec.env } : spec.env;
  checkImageValues(image.reference, {
    ...imageCommandParts(image.config, request),
    env: image.config.env.filter((entry) => !Object.hasOwn(requestEnv, envKey(entry))),
    workingDir: spec.workdir ? null : image.config.workingDir,
  });
  checkProgram(argv, spec.entrypoint?.length ? 'entrypoint' : 'command');
  const user = await resolveUser(image.layerDirs, spec.user ?? image.config.user ?? '').catch((e: unknown) => {
    throw spec.user ? e : imageUserError(image.reference, e);
  });
  const hostname = hostnameFor(spec.id);
  // The user's home in the image's /etc/passwd, as Docker; without an entry, root's or /.
  const home = user.home || (user.uid === 0 ? '/root' : '/');
  return {
    id: spec.id,
    slot,
    lowerDirs: image.layerDirs,
    argv,
    env: jobEnv(image.config.env, requestEnv, { hostname, home, tty: spec.tty }),
    ...(egress ? { listenPort: EGRESS_PROXY_PORT } : {}),
    cwd: spec.workdir ?? (image.config.workingDir || '/'),
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    hostname,
    stdin: spec.stdin,
    ...(spec.files?.length ? { files: spec.files.map((f) => ({ path: f.path, mode: f.mode, data: inputFileData(f) })) } : {}),
    // Collected within the same budget as each output stream.
    ...(spec.outputFiles?.length ? { outputFiles: { patterns: spec.outputFiles, maxBytes: spec.limits.outputBytes } } : {}),
    limits: {
      memoryBytes: spec.limits.memoryBytes,
      pids: spec.limits.pids,
      cpus: spec.limits.cpus,
      timeoutMs: spec.limits.timeoutMs,
      diskBytes: spec.limits.diskBytes,
      openFiles: spec.limits.openFiles,
      ...(spec.limits.cpuTimeMs !== null ? { cpuTimeMs: spec.limits.cpuTimeMs } : {}),
      ...(spec.limits.stopGraceMs ? { stopGraceMs: spec.limits.stopGraceMs, ...(spec.stopSignal ? { stopSignal: spec.stopSignal } : {}) } : {}),
    },
  };
}
