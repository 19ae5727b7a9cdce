/**
 * Which destinations outbound connections (registries, their redirects and token servers, mirrors,
 * later webhooks) may reach: every public address, and a non-public one (loopback, private,
 * link-local, CGNAT, multicast, unspecified, other special-purpose ranges: address-class.ts) only
 * when an allow-list entry names it. It judges the address actually connected to, after DNS
 * (guarded-connector.ts), so a name that resolves, or re-resolves, to 127.0.0.1 gets no further
 * than the literal would.
 *
 * The host's own interface addresses (host-addresses.ts) are refused too unless an allow-list entry
 * names them: a public IP on one of the host's interfaces reaches the host's own services (whatever
 * listens on 0.0.0.0: the worker's metrics, a node exporter, the kubelet), not the internet.
 */
import { EgressRefusedError } from '../errors.ts';
import { isPublicAddress } from './address-class.ts';
import { normalizeHostName, type EgressAllowEntry } from './egress-allow.ts';
import { addressKey, thisHostsAddresses, type OwnAddresses } from './host-addresses.ts';
import { bareAddress, inPrefix, parseIp, unmapped } from './ip-address.ts';

export interface EgressDestination {
  /** The host as requested: a name, or an IP literal (brackets allowed). */
  host: string;
  port: number;
  /** The IP address the connection would go to. */
  address: string;
}

function matches(entry: EgressAllowEntry, d: EgressDestination, address: Uint8Array): boolean {
  if (entry.port !== null && entry.port !== d.port) return false;
  if (entry.kind === 'name') return normalizeHostName(bareAddress(d.host)) === entry.name;
  return inPrefix(address, entry.network, entry.prefix);
}

export class EgressPolicy {
  /**
   * `allow`: what may be reached although not public (none: public addresses only).
   * `opts.ownAddresses`: this host's own addresses, refused although public unless `allow` names
   * them (default: its interfaces' addresses, read at most every 5 s).
   */
  constructor(readonly allow: readonly EgressAllowEntry[] = [], private readonly opts: { ownAddresses?: OwnAddresses } = {}) {}

  allows(d: EgressDestination): boolean {
    const parsed = parseIp(d.address);
    if (!parsed) return false;
    const address = unmapped(parsed);
    const publicHere = isPublicAddress(address) && !this.isOwn(address);
    return publicHere || this.allow.some((entry) => matches(entry, d, address));
  }

  /** Whether `address` is one of this host's own (only asked of public addresses: the others are refused anyway). */
  private isOwn(address: Uint8Array): boolean {
    return (this.opts.ownAddresses ?? thisHostsAddresses)().has(addressKey(address)!);
  }

  /** Throws EgressRefusedError unless `d` is allowed. */
  check(d: EgressDestination): void {
    if (!this.allows(d)) throw new EgressRefusedError(d.host);
  }
}
