/**
 * Registry credentials from a Docker `config.json` (`auths` with base64 `auth` = "user:password", or
 * `username`/`password`; `identitytoken`, an OAuth2 refresh token `docker login` stores for registries
 * such as Azure ACR, with the username and password if any). Keys may be bare hosts or URLs; Docker
 * Hub's are normalised to docker.io.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, jsonErrorAt } from '../../../../core/src/config.ts';
import type { RegistryCredentials } from './registry-auth.ts';

const HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com', 'docker.io']);

/** 'https://index.docker.io/v1/' → 'docker.io'; 'http://127.0.0.1:5000/' → '127.0.0.1:5000'. */
export function normaliseRegistryKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return HUB_ALIASES.has(host) ? 'docker.io' : host;
}

type Entry = { auth?: unknown; username?: unknown; password?: unknown; identitytoken?: unknown };

function userPassword(entry: Entry): { username: string; password: string } | null {
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  if (typeof entry.auth !== 'string' || entry.auth === '') return null;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function decodeEntry(entry: Entry): RegistryCredentials | null {
  const userPass = userPassword(entry);
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    const username = userPass?.username ?? (typeof entry.username === 'string' && entry.username !== '' ? entry.username : undefined);
    return {
      identityToken: entry.identitytoken,
      ...(username !== undefined ? { username } : {}),
      ...(userPass && userPass.password !== '' ? { password: userPass.password } : {}),
    };
  }
  return userPass;
}

export function parseDockerConfig(text: string): Map<string, RegistryCredentials> {
  const json = JSON.parse(text) as { auths?: Record<string, Entry> };
  const out = new Map<string, RegistryCredentials>();
  for (const [key, entry] of Object.entries(json.auths ?? {})) {
    const creds = typeof entry === 'object' && entry !== null ? decodeEntry(entry) : null;
    if (creds) out.set(normaliseRegistryKey(key), creds);
  }
  return out;
}

/** Credentials from a config.json; a missing file means none. */
export async function loadDockerCredentials(path: string): Promise<Map<string, RegistryCredentials>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw e;
  }
  return parseDockerConfig(text);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What makes a parsed config.json unusable as the worker's own credentials ([] = nothing): not an
 * object, `auths` not an object of objects, a field of the wrong type, an `auth` that is not base64
 * "user:password", an entry with no credentials at all. Names registries and fields, never values.
 */
export function dockerConfigProblems(json: unknown): string[] {
  if (!isObject(json)) return [`must be a JSON object ({"auths": {"registry": {...}}}), not ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`];
  if (json.auths === undefined) return [];
  if (!isObject(json.auths)) return ['"auths" must be an object of registries'];
  const problems: string[] = [];
  const helpers = ['credsStore', 'credHelpers'].filter((k) => k in json);
  for (const [key, entry] of Object.entries(json.auths)) {
    const where = `auths[${JSON.stringify(key)}]`;
    if (!isObject(entry)) {
      problems.push(`${where} must be an object`);
      continue;
    }
    const wrongType = ['auth', 'username', 'password', 'identitytoken'].filter((f) => entry[f] !== undefined && typeof entry[f] !== 'string');
    if (wrongType.length) {
      problems.push(`${where}: ${wrongType.join(', ')} must be ${wrongType.length > 1 ? 'strings' : 'a string'}`);
      continue;
    }
    if (typeof entry.auth === 'string' && entry.auth !== '' && userPassword({ auth: entry.auth }) === null) {
      problems.push(`${where}.auth is not base64 of "user:password"`);
      continue;
    }
    if (decodeEntry(entry as Entry) === null) {
      problems.push(`${where} holds no credentials (auth, username + password, or identitytoken)${helpers.length ? `; the worker runs no credential helpers (${helpers.join(', ')})` : ''}`);
    }
  }
  return problems;
}

/**
 * The worker's own credentials (SBX_DOCKER_CONFIG), read once at start: a file that is missing,
 * unreadable, not JSON or not a config.json is a ConfigError (one problem naming `variable`, the
 * path and what is wrong), not a failure of every job that pulls later.
 */
export async function loadWorkerDockerConfig(path: string, variable = 'SBX_DOCKER_CONFIG'): Promise<Map<string, RegistryCredentials>> {
  const fail = (what: string): never => {
    throw new ConfigError([`${variable}=${JSON.stringify(path)}: ${what}`]);
  };
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail('no such file (ENOENT); unset it for no registry credentials');
    fail(`cannot be read (${code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`is not valid JSON${text.trim() === '' ? ' (empty)' : jsonErrorAt(e)}; a Docker config.json is expected`);
  }
  const problems = dockerConfigProblems(json);
  if (problems.length) fail(`not a Docker config.json: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}`);
  return parseDockerConfig(text);
}
