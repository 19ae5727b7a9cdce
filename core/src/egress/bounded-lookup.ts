/**
 * dns.lookup (getaddrinfo) with at most MAX_LOOKUPS_AT_ONCE calls in flight in this process. Node runs
 * getaddrinfo on libuv's thread pool (4 threads by default), which every asynchronous file system call
 * shares. The names looked up for registries, their redirects and webhooks are a tenant's choice, and
 * a name whose DNS servers answer slowly holds a thread for seconds: without the bound, a tenant's
 * image references could hold the whole pool and stall every other job's pulls and starts on the
 * worker. Lookups past the bound wait their turn instead. (Jobs' egress does not use getaddrinfo at
 * all: worker/src/egress/job-dns.ts.)
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';

export const MAX_LOOKUPS_AT_ONCE = 2;

type Callback = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;
/** What guardedLookup resolves names with: dns.lookup's `all: true` form (also job-dns.ts's). */
export type LookupAll = (hostname: string, options: LookupAllOptions, callback: Callback) => void;

/** `lookup` (default dns.lookup), at most `max` calls in flight through the returned function. */
export function boundedLookup(lookup: LookupAll = dnsLookup, max = MAX_LOOKUPS_AT_ONCE): LookupAll {
  let running = 0;
  const waiting: Array<() => void> = [];
  const next = () => {
    running--;
    waiting.shift()?.();
  };
  return (hostname, options, callback) => {
    const start = () => {
      running++;
      lookup(hostname, options, (err, addresses) => {
        next();
        callback(err, addresses);
      });
    };
    if (running < max) start();
    else waiting.push(start);
  };
}

/** The process's one bounded dns.lookup (guarded-connector.ts's default). */
export const processLookup: LookupAll = boundedLookup();
