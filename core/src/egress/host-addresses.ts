/**
 * The addresses of this host's own network interfaces (os.networkInterfaces()), for policies that
 * must not let a caller reach services on the host itself through an address that is otherwise
 * public (a public IP on eth0 reaches whatever listens on 0.0.0.0 here). Read again at most every
 * `ttlMs`, so checking an address costs a Set lookup, not a getifaddrs(3) per dial.
 */
import os from 'node:os';
import { formatIp, parseIp, unmapped } from './ip-address.ts';

/** What os.networkInterfaces() returns (injectable for tests). */
export type InterfaceSource = () => NodeJS.Dict<Array<{ address: string }>>;

/** An address as compared: its bytes (IPv4-mapped IPv6 as IPv4), formatted one way. */
export function addressKey(address: string | Uint8Array): string | null {
  const parsed = typeof address === 'string' ? parseIp(address) : address;
  return parsed ? formatIp(unmapped(parsed)) : null;
}

/** Whether an address is one of this host's own (keyed by addressKey). */
export type OwnAddresses = () => ReadonlySet<string>;

const DEFAULT_TTL_MS = 5_000;

/** This host's interface addresses, read from `source` at most every `ttlMs` (a failing read keeps the last set). */
export function hostAddresses(source: InterfaceSource = () => os.networkInterfaces(), ttlMs = DEFAULT_TTL_MS, now: () => number = Date.now): OwnAddresses {
  let set: ReadonlySet<string> = new Set();
  let readAt = -Infinity;
  return () => {
    const t = now();
    if (t - readAt < ttlMs) return set;
    readAt = t;
    try {
      const next = new Set<string>();
      for (const list of Object.values(source())) for (const i of list ?? []) {
        const key = addressKey(i.address);
        if (key) next.add(key);
      }
      set = next;
    } catch { /* keep the last set */ }
    return set;
  };
}

/** One reader of this host's interfaces for every policy of the process (EgressPolicy's default). */
export const thisHostsAddresses: OwnAddresses = hostAddresses();
