/**
 * How a job's proxy resolves the names jobs ask for: DNS queries through c-ares (dns.Resolver), never
 * getaddrinfo. Node runs getaddrinfo (dns.lookup) on libuv's small thread pool, which the worker's
 * file system calls share: a job asking for names whose servers answer slowly would otherwise hold
 * those threads, and stall other tenants' pulls and starts. Names under `localhost` (RFC 6761) are
 * loopback without asking anyone, and judged (refused) as such by the policy.
 */
import { Resolver } from 'node:dns';
import type { LookupAll } from '../../../core/src/egress/bounded-lookup.ts';

/** Per query: a DNS server that does not answer costs at most this long, twice. */
const QUERY_TIMEOUT_MS = 2500;

const isLocalhost = (name: string) => /^(?:.+\.)?localhost\.?$/i.test(name);

/** A `resolve` for guardedLookup: A and AAAA records together, IPv4 first. */
export function dnsOnlyResolve(resolver: Resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: 2 })): LookupAll {
  return (hostname, _options, callback) => {
    if (isLocalhost(hostname)) return void queueMicrotask(() => callback(null, [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]));
    const found: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
    let failure: NodeJS.ErrnoException | null = null;
    let pending = 2;
    const settle = (family: 4 | 6) => (err: NodeJS.ErrnoException | null, addresses: string[]) => {
      if (err) failure ??= err;
      else found[family] = addresses;
      if (--pending > 0) return;
      const all = [...found[4].map((address) => ({ address, family: 4 })), ...found[6].map((address) => ({ address, family: 6 }))];
      if (all.length) return callback(null, all);
      // Whatever the DNS said (no such name, no records, a server refusing or silent): not resolved.
      callback(Object.assign(new Error(`could not resolve ${hostname} (${failure?.code ?? 'no records'})`), { code: 'ENOTFOUND', cause: failure }), []);
    };
    resolver.resolve4(hostname, settle(4));
    resolver.resolve6(hostname, settle(6));
  };
}
