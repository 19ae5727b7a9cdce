/**
 * The keep-alive undici Agent registries are reached with, optionally carrying one host's certs.d
 * material (extra CAs on top of the system roots, a client certificate). Every connection goes
 * through the egress policy (core/src/egress: non-public addresses only when allow-listed, checked
 * on the address actually connected to).
 *
 * Its connector keeps TLS failures visible: under TLS 1.3 a server refuses a client certificate
 * only after the handshake, with an alert that arrives as a socket error, and undici then reports
 * the connection's end as "other side closed" instead. Destroying the socket with the TLS error
 * right away makes that error the one the request fails with.
 */
import tls from 'node:tls';
import { Agent, buildConnector } from 'undici';
import { guardedConnector } from '../../../../core/src/egress/guarded-connector.ts';
import type { EgressPolicy } from '../../../../core/src/egress/egress-policy.ts';
import type { RegistryTls } from './registry-certs.ts';
import { isTlsFailure } from './tls-errors.ts';

const AGENT_OPTIONS = { connections: 16, keepAliveTimeout: 30_000 } as const;
const CONNECT_TIMEOUT_MS = 10_000;

/** The CAs Node's TLS clients trust by default (NODE_EXTRA_CA_CERTS included where Node can say). */
function defaultCaCertificates(): readonly string[] {
  const get = (tls as { getCACertificates?: (type: 'default') => string[] }).getCACertificates;
  return get ? get('default') : tls.rootCertificates;
}

function connectOptions(entry: RegistryTls | undefined): buildConnector.BuildOptions {
  const options: buildConnector.BuildOptions = { timeout: CONNECT_TIMEOUT_MS };
  if (!entry) return options;
  return {
    ...options,
    ...(entry.ca.length ? { ca: [...defaultCaCertificates(), ...entry.ca] } : {}),
    ...(entry.client ? { cert: entry.client.cert, key: entry.client.key } : {}),
  };
}

function tlsFailureKeepingConnector(options: buildConnector.BuildOptions): buildConnector.connector {
  const connect = buildConnector(options);
  return (opts, callback) =>
    connect(opts, (...args: Parameters<buildConnector.Callback>) => {
      const socket = args[1];
      socket?.on('error', (e: Error) => {
        if (isTlsFailure(e) && !socket.destroyed) socket.destroy(e);
      });
      callback(...args);
    });
}

/** A new Agent reaching what `egress` allows; `entry` = the certs.d material of the one host it will be used for. */
export function newRegistryAgent(egress: EgressPolicy, entry?: RegistryTls): Agent {
  return new Agent({ ...AGENT_OPTIONS, connect: guardedConnector(egress, connectOptions(entry), tlsFailureKeepingConnector) });
}
