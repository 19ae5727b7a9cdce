/**
 * Starts Debian's Distribution 2.8 (`/usr/bin/docker-registry`) on a free loopback port with a
 * throw-away filesystem store. Optional htpasswd (Basic) or token (Bearer JWT) auth, TLS (with
 * client certificates for mTLS), and another registry's storage (push over http, pull over https).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { listensOn, onFreePort, PortTakenError, saysPortTaken } from './ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { diesWithParent } from './dies-with-parent.ts';

const REGISTRY_BIN = process.env.SBX_REGISTRY_BIN ?? '/usr/bin/docker-registry';

export interface RegistryTokenAuth {
  realm: string;
  service: string;
  issuer: string;
  /** PEM file with the certificate(s) whose keys sign the tokens. */
  rootCertBundle: string;
}

/** PEM files for `http.tls` (see test-pki.ts to make them). */
export interface RegistryTlsFiles {
  certFile: string;
  keyFile: string;
  /** CA whose client certificates the registry requires (mTLS: `http.tls.clientcas`). */
  clientCaFile?: string;
}

export interface StartRegistryOptions {
  htpasswd?: { user: string; password: string };
  token?: RegistryTokenAuth;
  /** Serve https only, with this certificate. */
  tls?: RegistryTlsFiles;
  /** Serve this storage dir (another registry's `storageDir`) instead of a new one; left in place at stop. */
  storageDir?: string;
  /** Listen on this address instead of 127.0.0.1 (e.g. a test bridge's, for workers in other network namespaces: hosts.ts). */
  address?: string;
}

export interface RunningRegistry {
  /** '127.0.0.1:PORT' */
  host: string;
  /** 'http://127.0.0.1:PORT', or 'https://…' with `tls` */
  url: string;
  /** Where the registry keeps its blobs (to corrupt them in tests). */
  storageDir: string;
  /** The registry process's pid. */
  pid: number;
  stop(): Promise<void>;
}

export { freePort } from './ports.ts';

function authSection(dir: string, opts: StartRegistryOptions): string {
  if (opts.htpasswd) {
    return ['auth:', '  htpasswd:', '    realm: sbx-test', `    path: ${join(dir, 'htpasswd')}`].join('\n');
  }
  if (opts.token) {
    const t = opts.token;
    return [
      'auth:',
      '  token:',
      `    realm: ${t.realm}`,
      `    service: ${t.service}`,
      `    issuer: ${t.issuer}`,
      `    rootcertbundle: ${t.rootCertBundle}`,
    ].join('\n');
  }
  return '';
}

function tlsSection(tls: RegistryTlsFiles | undefined): string[] {
  if (!tls) return [];
  return [
    '  tls:',
    `    certificate: ${tls.certFile}`,
    `    key: ${tls.keyFile}`,
    ...(tls.clientCaFile ? ['    clientcas:', `      - ${tls.clientCaFile}`] : []),
  ];
}

function registryConfig(storageDir: string, port: number, opts: StartRegistryOptions, dir: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${opts.address ?? '127.0.0.1'}:${port}`,
    ...tlsSection(opts.tls),
    authSection(dir, opts),
    '',
  ].join('\n');
}

/** The registry process ended: its port was taken (start again elsewhere) or it failed. */
function exitedError(child: ChildProcess, port: number, output: () => string): Error {
  return saysPortTaken(output()) ? new PortTakenError('docker-registry', port, output().trim()) : new Error(`docker-registry exited with ${child.exitCode}: ${output()}`);
}

async function waitForRegistry(url: string, port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw exitedError(child, port, output);
    // Only our own process's answer counts (another test's registry may hold a port we were given).
    if (!listensOn(child.pid, port)) {
      await new Promise((r) => setTimeout(r, 25));
      continue;
    }
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`docker-registry did not answer on ${url} within 10 s: ${output()}`);
}

function tcpOpen(port: number, address = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Over TLS (perhaps requiring a client certificate we do not have here) the listening port is enough. */
async function waitForListening(port: number, child: ChildProcess, output: () => string, address?: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw exitedError(child, port, output);
    if (listensOn(child.pid, port) && (await tcpOpen(port, address))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`docker-registry did not listen on 127.0.0.1:${port} within 10 s: ${output()}`);
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  return onFreePort((port) => startRegistryOn(port, opts));
}

async function startRegistryOn(port: number, opts: StartRegistryOptions): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-registry-'));
  try {
    if (opts.htpasswd) {
      const { user, password } = opts.htpasswd;
      await promisify(execFile)('htpasswd', ['-Bbc', join(dir, 'htpasswd'), user, password]);
    }
    const configPath = join(dir, 'config.yml');
    const storageDir = opts.storageDir ?? join(dir, 'storage');
    await writeFile(configPath, registryConfig(storageDir, port, opts, dir));
    const child = spawn(...diesWithParent(REGISTRY_BIN, ['serve', configPath]), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const host = `${opts.address ?? '127.0.0.1'}:${port}`;
    const url = `${opts.tls ? 'https' : 'http'}://${host}`;
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    };
    try {
      if (opts.tls) await waitForListening(port, child, () => output, opts.address);
      else await waitForRegistry(url, port, child, () => output);
    } catch (e) {
      await stop();
      throw e;
    }
    return { host, url, storageDir, pid: child.pid!, stop };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
