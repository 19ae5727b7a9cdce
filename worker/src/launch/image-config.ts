/**
 * The parts of an image config a job runs with, and Docker's rules for combining them with a request:
 * entrypoint/cmd replacement (`docker run --entrypoint`) and environment merging.
 */
import { SbxError } from '../../../core/src/errors.ts';
import type { ImageConfigDocument } from '../images/registry/manifest.ts';

export interface ImageRuntimeConfig {
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  /** Absolute; '/' when the image sets none. */
  workingDir: string;
  /** As written in the image ('' = root): resolve with resolveUser(). */
  user: string;
}

export function toRuntimeConfig(doc: ImageConfigDocument): ImageRuntimeConfig {
  const c = doc.config ?? {};
  const workingDir = c.WorkingDir ?? '';
  return {
    env: c.Env ?? [],
    entrypoint: c.Entrypoint ?? null,
    cmd: c.Cmd ?? null,
    workingDir: workingDir === '' ? '/' : workingDir.startsWith('/') ? workingDir : `/${workingDir}`,
    user: c.User ?? '',
  };
}

export interface CommandRequest {
  /** Replaces the image's Cmd; null, undefined or [] keep it (as Docker). */
  command?: string[] | null;
  /** Replaces the image's Entrypoint ([] clears it) and, as in Docker, drops the image's Cmd. */
  entrypoint?: string[] | null;
}

/** What of the image's Entrypoint and Cmd a job with `request` runs (Docker semantics); [] where replaced. */
export function imageCommandParts(config: Pick<ImageRuntimeConfig, 'entrypoint' | 'cmd'>, request: CommandRequest = {}): { entrypoint: string[]; cmd: string[] } {
  const entrypointOverridden = request.entrypoint !== undefined && request.entrypoint !== null;
  const commandGiven = request.command !== undefined && request.command !== null && request.command.length > 0;
  return {
    entrypoint: entrypointOverridden ? [] : (config.entrypoint ?? []),
    cmd: entrypointOverridden || commandGiven ? [] : (config.cmd ?? []),
  };
}

/** The argv a job runs: Docker semantics. Throws invalid_request when nothing is left to run. */
export function resolveCommand(config: Pick<ImageRuntimeConfig, 'entrypoint' | 'cmd'>, request: CommandRequest = {}): string[] {
  const image = imageCommandParts(config, request);
  const entrypoint = request.entrypoint ?? image.entrypoint;
  const cmd = request.command?.length ? request.command : image.cmd;
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) {
    const message = 'the image has no Entrypoint or Cmd: give a command';
    throw new SbxError('invalid_request', message, { details: [{ path: 'command', message }] });
  }
  return argv;
}

/** The name of a NAME=value environment entry (all of it when it has no =). */
export function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq === -1 ? entry : entry.slice(0, eq);
}

/**
 * The image's Env with the request's variables applied: a request variable replaces the image's
 * of the same name in place; new ones are appended in the request's order.
 */
export function mergeEnv(imageEnv: readonly string[], requestEnv: Readonly<Record<string, string>> | readonly string[] = {}): string[] {
  const overrides = Array.isArray(requestEnv)
    ? (requestEnv as readonly string[]).map((e) => [envKey(e), e] as const)
    : Object.entries(requestEnv).map(([k, v]) => [k, `${k}=${v}`] as const);
  const byKey = new Map(overrides);
  const merged: string[] = [];
  const seen = new Set<string>();
  for (const entry of imageEnv) {
    const key = envKey(entry);
    if (seen.has(key)) continue;
    seen.add(key);
    merged.push(byKey.get(key) ?? entry);
  }
  for (const [key, entry] of byKey) if (!seen.has(key)) merged.push(entry);
  return merged;
}
