/**
 * An undici connector that applies an EgressPolicy to the address it actually connects to:
 *
 * - an IP literal is checked before connecting (net.connect skips `lookup` for literals);
 * - a name is resolved once by our `lookup`, the addresses the policy refuses are dropped, and the
 *   socket connects to exactly the addresses that were checked (no second resolution that a DNS
 *   rebinding answer could change); none left = refused, before any connection;
 * - after connecting, the socket's remoteAddress is checked again (defence in depth).
 *
 * A refusal fails the request with EgressRefusedError, the same whatever the port and whatever
 * listens there. `lookup` does not see the port, so the connector keeps one underlying connector
 * per port (each with its own TLS session cache).
 */
import { processLookup, type LookupAll } from './bounded-lookup.ts';
import type { LookupFunction, Socket } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { EgressRefusedError } from '../errors.ts';
import { parseIp } from './ip-address.ts';
import type { EgressPolicy } from './egress-policy.ts';

type Build = (options: buildConnector.BuildOptions) => buildConnector.connector;


/**
 * A `lookup` for net/tls.connect that resolves once (`resolve`, default dns.lookup with a bound on
 * calls at once: bounded-lookup.ts) and keeps only the addresses `policy` allows for `port`.
 */
export function guardedLookup(policy: EgressPolicy, port: number, resolve: LookupAll = processLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const allowed = addresses.filter((a) => policy.allows({ host: hostname, port, address: a.address }));
      const first = allowed[0];
      if (!first) return callback(new EgressRefusedError(hostname) as NodeJS.ErrnoException, '');
      if (options.all) callback(null, allowed);
      else callback(null, first.address, first.family);
    });
  };
}

function portOf(opts: buildConnector.Options): number {
  return Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
}

/**
 * A connector like buildConnector(options) (or `build(options)`, for a connector that wraps it)
 * that reaches only what `policy` allows.
 */
export function guardedConnector(policy: EgressPolicy, options: buildConnector.BuildOptions = {}, build: Build = buildConnector): buildConnector.connector {
  const perPort = new Map<number, buildConnector.connector>();
  const connectorFor = (port: number) => {
    let connect = perPort.get(port);
    if (!connect) {
      connect = build({ ...options, lookup: guardedLookup(policy, port) } as buildConnector.BuildOptions);
      perPort.set(port, connect);
    }
    return connect;
  };
  return (opts, callback) => {
    const port = portOf(opts);
    const host = opts.hostname;
    if (parseIp(host) !== null && !policy.allows({ host, port, address: host })) {
      queueMicrotask(() => callback(new EgressRefusedError(host), null));
      return;
    }
    connectorFor(port)(opts, (...args: Parameters<buildConnector.Callback>) => {
      const socket: Socket | null = args[1];
      const remote = socket?.remoteAddress;
      if (socket && (remote === undefined || !policy.allows({ host, port, address: remote }))) {
        socket.destroy();
        return callback(new EgressRefusedError(host), null);
      }
      callback(...args);
    });
  };
}

/** A keep-alive Agent whose every connection goes through guardedConnector (for webhooks and the like). */
export function egressAgent(policy: EgressPolicy, options: { connect?: buildConnector.BuildOptions } & Omit<Agent.Options, 'connect'> = {}): Agent {
  const { connect, ...agentOptions } = options;
  return new Agent({ ...agentOptions, connect: guardedConnector(policy, connect) });
}
