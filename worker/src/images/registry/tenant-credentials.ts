/**
 * Registry credentials per tenant: `<dir>/<tenant>.json` in Docker's config.json format (`auths`),
 * looked up when a job of that tenant pulls and re-read when the file changes, so an operator adds
 * or rotates a tenant's credentials without restarting workers. A job's own `registryAuth` wins;
 * without either, the worker's own credentials (SBX_DOCKER_CONFIG) apply, or none.
 */
import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImagePullFailedError } from '../../../../core/src/errors.ts';
import { parseDockerConfig } from './docker-credentials.ts';
import type { RegistryCredentials } from './registry-auth.ts';

/** Tenant names as the API accepts them (core/src/config.ts SBX_API_KEYS): safe as file names. */
const TENANT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export class TenantCredentials {
  /** Per tenant: the file as last read (its version: fileVersion()) and what it held. */
  private readonly cache = new Map<string, { version: string; auths: Map<string, RegistryCredentials> }>();

  constructor(private readonly dir: string | undefined) {}

  /** The tenant's credentials for `registry` (e.g. 'docker.io', '127.0.0.1:5000'), if it has any. */
  async lookup(tenant: string, registry: string, image: string): Promise<RegistryCredentials | undefined> {
    if (!this.dir || !TENANT.test(tenant)) return undefined;
    const file = join(this.dir, `${tenant}.json`);
    const st = await stat(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw new ImagePullFailedError(image, `the registry credentials of tenant ${tenant} (${file}) cannot be read: ${e.code ?? e.message}`, { retryable: false });
    });
    if (!st) {
      this.cache.delete(tenant);
      return undefined;
    }
    let entry = this.cache.get(tenant);
    const version = fileVersion(st);
    if (entry?.version !== version) {
      entry = { version, auths: await this.read(file, tenant, image) };
      this.cache.set(tenant, entry);
    }
    return entry.auths.get(registry);
  }

  private async read(file: string, tenant: string, image: string): Promise<Map<string, RegistryCredentials>> {
    try {
      return parseDockerConfig(await readFile(file, 'utf8'));
    } catch (e) {
      const why = e instanceof SyntaxError ? 'is not valid JSON' : `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      throw new ImagePullFailedError(image, `the registry credentials of tenant ${tenant} (${file}) ${why}; fix the file (Docker config.json format)`, { cause: e, retryable: false });
    }
  }
}

/**
 * What tells a rewrite of the file: its inode (a file renamed over it, as editors and `mv` of a new
 * file do, is another inode even with the same size and a kept mtime: `cp -p`, `rsync -t`, `touch
 * -r`), its size, and its mtime and ctime (a time set back by hand does not set back the ctime).
 */
function fileVersion(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}
