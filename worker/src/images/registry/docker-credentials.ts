/**
 * Registry credentials from a Docker `config.json` (`auths` with base64 `auth` = "user:password", or
 * `username`/`password`; `identitytoken`, an OAuth2 refresh token `docker login` stores for registries
 * such as Azure ACR, with the username and password if any). Keys may be bare hosts or URLs; Docker
 * Hub's are normalised to docker.io.
 */
import { readFile } from 'node:fs/promises';
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
