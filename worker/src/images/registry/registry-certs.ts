/**
 * Docker's `certs.d` layout (`/etc/docker/certs.d/<host[:port]>/`), read once at start:
 *
 * - `*.crt`: CA certificates (PEM, bundles allowed) trusted for that host in addition to the
 *   system roots;
 * - `<name>.cert` + `<name>.key`: the client certificate (PEM chain) and its unencrypted key,
 *   presented when the registry asks for one (mTLS). One pair per host.
 *
 * Anything else is ignored, as Docker does; files may be symlinks (Kubernetes secret volumes are).
 * A host with an entry is reached over https, even a loopback one. Every problem found is reported
 * at once, each naming its file.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ConfigError } from '../../../../core/src/config.ts';

export interface RegistryTls {
  /** Extra CA certificates (PEM) trusted for this host, in addition to the system roots. */
  ca: string[];
  /** Client certificate chain and private key (PEM). */
  client?: { cert: string; key: string };
}

/** certs.d content that cannot be used; `problems` name the files. */
export class RegistryCertsError extends ConfigError {
  readonly code = 'registry_certs_invalid';
  constructor(problems: string[]) {
    super(problems);
    this.name = 'RegistryCertsError';
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function errorCode(e: unknown): string {
  return (e as { code?: string }).code ?? (e as Error).message;
}

async function isKind(path: string, kind: 'file' | 'dir'): Promise<boolean> {
  try {
    const s = await stat(path); // follows symlinks
    return kind === 'file' ? s.isFile() : s.isDirectory();
  } catch {
    return false; // a dangling symlink: ignored like any other stray entry
  }
}

/** Every certificate of a PEM file must parse; a file without one is refused. */
function checkCertificates(path: string, pem: string, problems: string[]): boolean {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    problems.push(`${path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
    return false;
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (e) {
      problems.push(`${path}: certificate ${i + 1} cannot be parsed (${(e as Error).message})`);
      return false;
    }
  }
  return true;
}

function parseKey(path: string, pem: string, problems: string[]): KeyObject | null {
  try {
    return createPrivateKey(pem);
  } catch (e) {
    const encrypted = /ENCRYPTED/.test(pem) || errorCode(e) === 'ERR_MISSING_PASSPHRASE';
    problems.push(`${path}: ${encrypted ? 'the key is passphrase-protected; use an unencrypted key' : `not a PEM private key (${(e as Error).message})`}`);
    return null;
  }
}

async function readText(path: string, problems: string[]): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    problems.push(`${path}: cannot be read (${errorCode(e)})`);
    return null;
  }
}

async function readClientPair(dir: string, name: string, problems: string[]): Promise<{ cert: string; key: string } | null> {
  const certPath = join(dir, `${name}.cert`);
  const keyPath = join(dir, `${name}.key`);
  const [cert, key] = [await readText(certPath, problems), await readText(keyPath, problems)];
  if (cert === null || key === null || !checkCertificates(certPath, cert, problems)) return null;
  const keyObject = parseKey(keyPath, key, problems);
  if (!keyObject) return null;
  if (!new X509Certificate(cert).checkPrivateKey(keyObject)) {
    problems.push(`${certPath}: its key ${basename(keyPath)} does not belong to it`);
    return null;
  }
  return { cert, key };
}

/** One host's directory. */
async function readHostDir(dir: string, problems: string[]): Promise<RegistryTls> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    problems.push(`${dir}: cannot be read (${errorCode(e)})`);
    return { ca: [] };
  }
  const files = new Set<string>();
  for (const name of names) if (await isKind(join(dir, name), 'file')) files.add(name);
  const ca: string[] = [];
  const pairs: string[] = [];
  for (const name of files) {
    const path = join(dir, name);
    if (name.endsWith('.crt')) {
      const pem = await readText(path, problems);
      if (pem !== null && checkCertificates(path, pem, problems)) ca.push(pem);
    } else if (name.endsWith('.cert')) {
      const base = name.slice(0, -'.cert'.length);
      if (files.has(`${base}.key`)) pairs.push(base);
      else problems.push(`${path}: client certificate without its key ${base}.key (CA certificates must end in .crt)`);
    } else if (name.endsWith('.key')) {
      const base = name.slice(0, -'.key'.length);
      if (!files.has(`${base}.cert`)) problems.push(`${path}: key without its client certificate ${base}.cert`);
    }
  }
  if (pairs.length > 1) {
    problems.push(`${dir}: ${pairs.map((p) => `${p}.cert`).join(', ')}: one client certificate pair per registry is supported`);
    return { ca };
  }
  const client = pairs[0] === undefined ? null : await readClientPair(dir, pairs[0], problems);
  return client ? { ca, client } : { ca };
}

/**
 * Reads a certs.d directory: host[:port] → its TLS material. A missing directory has no entries
 * (config validation already refused a missing directory that was set explicitly).
 * Throws RegistryCertsError listing every unusable file.
 */
export async function loadRegistryCerts(dir: string): Promise<Record<string, RegistryTls>> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return {};
    throw new RegistryCertsError([`${dir}: cannot be read (${errorCode(e)})`]);
  }
  const problems: string[] = [];
  const out: Record<string, RegistryTls> = {};
  for (const host of names) {
    const path = join(dir, host);
    if (host.startsWith('.') || !(await isKind(path, 'dir'))) continue;
    out[host] = await readHostDir(path, problems);
  }
  if (problems.length) throw new RegistryCertsError(problems);
  return out;
}
