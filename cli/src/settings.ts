/**
 * Where the API is and which key to use: flags (`-H/--host`, `--api-key`) over the environment
 * (`SBX_HOST`, `SBX_API_KEY`) over the config file (`$SBX_CONFIG`, else
 * `$XDG_CONFIG_HOME/sbx/config.json`, else `~/.config/sbx/config.json`: `{ "host": "...", "apiKey": "..." }`),
 * over the default `http://127.0.0.1:8080` (what `npm run up` starts).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './cli-error.ts';
import { readJsonObjectFile } from './json-file.ts';

export const DEFAULT_HOST = 'http://127.0.0.1:8080';

export interface Settings {
  host: string;
  apiKey?: string;
}

export function configFilePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SBX_CONFIG) return env.SBX_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'sbx', 'config.json');
}

function readConfigFile(path: string): { host?: string; apiKey?: string } {
  return readJsonObjectFile(
    path,
    ({ host, apiKey }) => {
      if (host !== undefined && typeof host !== 'string') throw new Error('"host" must be a string');
      if (apiKey !== undefined && typeof apiKey !== 'string') throw new Error('"apiKey" must be a string');
      return { ...(host !== undefined ? { host } : {}), ...(apiKey !== undefined ? { apiKey } : {}) };
    },
    '{"host": "http://…", "apiKey": "…"}',
  );
}

export function loadSettings(flags: { host?: string; apiKey?: string }, env: NodeJS.ProcessEnv = process.env): Settings {
  const file = readConfigFile(configFilePath(env));
  const host = normalizeHost(flags.host ?? (env.SBX_HOST || undefined) ?? file.host ?? DEFAULT_HOST);
  const apiKey = flags.apiKey ?? (env.SBX_API_KEY || undefined) ?? file.apiKey;
  return { host, ...(apiKey ? { apiKey } : {}) };
}

/** `host:port` and `tcp://host:port` (Docker's DOCKER_HOST habit) mean http. */
export function normalizeHost(host: string): string {
  let h = host.trim().replace(/^tcp:\/\//, 'http://');
  if (!/^https?:\/\//.test(h)) h = `http://${h}`;
  try {
    new URL(h);
  } catch {
    throw new CliError(`invalid host "${host}": use http://HOST:PORT`);
  }
  return h.replace(/\/+$/, '');
}
