/**
 * Registry credentials the way the Docker CLI keeps them: `$DOCKER_CONFIG/config.json` (default
 * `~/.docker/config.json`) with `auths.<registry>.auth` = base64(user:password), or a credential
 * helper (`credHelpers.<registry>`, else `credsStore`) run as `docker-credential-<name> get` with the
 * registry on stdin, answering `{"Username","Secret"}` (Docker's credential-helper protocol).
 * `sbx login` writes `auths` in the same file, mode 0600, or stores through the helper.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './cli-error.ts';
import { readJsonObjectFile } from './json-file.ts';

export interface RegistryCredentials {
  username: string;
  password: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

const DOCKER_HUB = 'docker.io';
const HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json');
}

/** The registry host of an image reference, as Docker decides it (`busybox` → docker.io). */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = image.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return first === 'index.docker.io' || first === 'registry-1.docker.io' ? DOCKER_HUB : first;
  return DOCKER_HUB;
}

/** `https://host:port/v2/` → `host:port`: how config keys are compared. */
function keyHost(key: string): string {
  return key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
}

function keysFor(registry: string): string[] {
  return registry === DOCKER_HUB ? HUB_KEYS : [registry];
}

function readConfig(path: string): DockerConfig {
  return readJsonObjectFile(path, (v) => v as DockerConfig);
}

function findEntry<T>(map: Record<string, T> | undefined, registry: string): T | undefined {
  if (!map) return undefined;
  for (const want of keysFor(registry)) {
    for (const [k, v] of Object.entries(map)) if (k === want || keyHost(k) === keyHost(want)) return v;
  }
  return undefined;
}

/** Credentials for the registry of `image`, or null (anonymous). */
export function credentialsFor(image: string, env: NodeJS.ProcessEnv = process.env): RegistryCredentials | null {
  const registry = registryOf(image);
  const config = readConfig(dockerConfigPath(env));
  const helper = findEntry(config.credHelpers, registry) ?? config.credsStore;
  if (helper) {
    const fromHelper = helperGet(helper, registry, env);
    if (fromHelper) return fromHelper;
  }
  const entry = findEntry(config.auths, registry);
  if (!entry) return null;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new CliError(`${dockerConfigPath(env)}: auths["${registry}"].auth is not base64 of user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  return null;
}

function runHelper(helper: string, verb: 'get' | 'store', input: string, env: NodeJS.ProcessEnv) {
  const bin = `docker-credential-${helper}`;
  const r = spawnSync(bin, [verb], { input, encoding: 'utf8', env, timeout: 30_000 });
  if (r.error) throw new CliError(`credential helper ${bin} could not run: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`);
  return r;
}

function helperGet(helper: string, registry: string, env: NodeJS.ProcessEnv): RegistryCredentials | null {
  const serverUrl = registry === DOCKER_HUB ? HUB_KEYS[0]! : registry;
  const r = runHelper(helper, 'get', serverUrl, env);
  const out = `${r.stdout}`.trim();
  if (r.status !== 0) {
    if (/credentials not found/i.test(out + r.stderr)) return null; // the protocol's "none stored"
    throw new CliError(`credential helper docker-credential-${helper} failed for ${registry}: ${(out || `${r.stderr}`).trim().split('\n')[0]}`);
  }
  try {
    const v = JSON.parse(out) as { Username?: string; Secret?: string };
    if (!v.Secret) return null;
    return { username: v.Username ?? '', password: v.Secret };
  } catch {
    throw new CliError(`credential helper docker-credential-${helper} answered something other than JSON for ${registry}`);
  }
}

/** `sbx login`: store in the helper the config names for this registry, else in `auths` (file mode 0600). Returns where. */
export function storeCredentials(registry: string, creds: RegistryCredentials, env: NodeJS.ProcessEnv = process.env): string {
  const path = dockerConfigPath(env);
  const config = readConfig(path);
  const helper = findEntry(config.credHelpers, registry) ?? config.credsStore;
  const key = registry === DOCKER_HUB ? HUB_KEYS[0]! : registry;
  if (helper) {
    const r = runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: creds.username, Secret: creds.password }), env);
    if (r.status !== 0) throw new CliError(`credential helper docker-credential-${helper} could not store: ${`${r.stdout}${r.stderr}`.trim().split('\n')[0]}`);
    config.auths = { ...config.auths, [key]: {} };
  } else {
    config.auths = { ...config.auths, [key]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, '\t')}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return helper ? `docker-credential-${helper}` : path;
}
