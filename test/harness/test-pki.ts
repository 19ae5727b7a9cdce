/**
 * Throw-away X.509 material for TLS tests, made with `openssl`: a private CA, server certificates
 * (by default for 127.0.0.1 and localhost) and client certificates it signs, and self-signed
 * certificates. EC P-256 keys, valid for two days. Everything lives in one temp dir; remove() it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** subjectAltName entries in openssl syntax: 'IP:127.0.0.1', 'DNS:localhost'. */
export const LOOPBACK_NAMES = ['IP:127.0.0.1', 'DNS:localhost'];

export interface CertPair {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  commonName: string;
  usage: 'server' | 'client';
  /** subjectAltName entries; servers default to LOOPBACK_NAMES, clients have none. */
  altNames?: string[];
}

export interface TestCa {
  dir: string;
  caFile: string;
  caPem: string;
  /** A certificate signed by this CA. */
  issue(opts: IssueOptions): Promise<CertPair>;
  remove(): Promise<void>;
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function extensions(usage: 'server' | 'client', altNames: readonly string[]): string {
  return [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
    ...(altNames.length ? [`subjectAltName=${altNames.join(',')}`] : []),
  ].join('\n');
}

async function readPair(certFile: string, keyFile: string): Promise<CertPair> {
  return { certFile, keyFile, certPem: await readFile(certFile, 'utf8'), keyPem: await readFile(keyFile, 'utf8') };
}

/** A new private CA in its own temp dir. */
export async function createTestCa(name = 'sbx-test-ca'): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-pki-'));
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await run('openssl', [
    'req', '-x509', ...KEY_ARGS, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 0;
  const issue = async (opts: IssueOptions): Promise<CertPair> => {
    const base = join(dir, `${opts.usage}-${++serial}`);
    const altNames = opts.altNames ?? (opts.usage === 'server' ? LOOPBACK_NAMES : []);
    await run('openssl', ['req', ...KEY_ARGS, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${opts.commonName}`]);
    await writeFile(`${base}.ext`, extensions(opts.usage, altNames));
    await run('openssl', [
      'x509', '-req', '-in', `${base}.csr`, '-CA', caFile, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-days', '2', '-extfile', `${base}.ext`, '-out', `${base}.crt`,
    ]);
    return readPair(`${base}.crt`, `${base}.key`);
  };
  return { dir, caFile, caPem: await readFile(caFile, 'utf8'), issue, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A self-signed server certificate (no CA) in `dir`. */
export async function selfSignedServerCert(dir: string, altNames: readonly string[] = LOOPBACK_NAMES): Promise<CertPair> {
  const base = join(dir, `self-signed-${randomBytes(4).toString('hex')}`);
  await run('openssl', [
    'req', '-x509', ...KEY_ARGS, '-keyout', `${base}.key`, '-out', `${base}.crt`, '-days', '2', '-subj', '/CN=sbx-self-signed',
    '-addext', `subjectAltName=${altNames.join(',')}`,
  ]);
  return readPair(`${base}.crt`, `${base}.key`);
}
