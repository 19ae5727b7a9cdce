/**
 * What kind of address an IP is, after IANA's special-purpose registries (RFC 6890 and later): only
 * `public` addresses are reachable by default; every other class is refused unless an allow-list
 * entry names it (egress-policy.ts).
 *
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as the IPv4 address it is; NAT64 (64:ff9b::/96) and
 * 6to4 (2002::/16) addresses by the IPv4 address they embed (a NAT64 gateway or 6to4 relay would
 * forward to it). IPv6 outside 2000::/3 (global unicast) is never public.
 */
import { inPrefix, parseIp, unmapped } from './ip-address.ts';

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'benchmarking'
  | 'reserved';

interface Range {
  network: Uint8Array;
  prefix: number;
  kind: AddressClass;
}

function range(cidr: string, kind: AddressClass): Range {
  const [address = '', prefix = ''] = cidr.split('/');
  return { network: parseIp(address)!, prefix: Number(prefix), kind };
}

/** The most specific ranges first. */
const IPV4: readonly Range[] = [
  range('0.0.0.0/8', 'unspecified'), // "this network"; 0.0.0.0 reaches the local host on Linux
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'shared'), // carrier-grade NAT (RFC 6598)
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'), // 169.254.169.254: cloud metadata services
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'reserved'), // IETF protocol assignments
  range('192.0.2.0/24', 'documentation'),
  range('192.88.99.0/24', 'reserved'), // 6to4 relay anycast (deprecated)
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('255.255.255.255/32', 'broadcast'),
  range('240.0.0.0/4', 'reserved'),
];

const IPV6: readonly Range[] = [
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('64:ff9b:1::/48', 'private'), // local-use NAT64 (RFC 8215)
  range('fc00::/7', 'private'), // unique local
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'private'), // site-local (deprecated)
  range('ff00::/8', 'multicast'),
  range('2001::/32', 'reserved'), // Teredo
  range('2001:2::/48', 'benchmarking'),
  range('2001:10::/28', 'reserved'), // ORCHID
  range('2001:20::/28', 'reserved'), // ORCHIDv2
  range('2001:db8::/32', 'documentation'),
  range('3fff::/20', 'documentation'),
];
const NAT64 = range('64:ff9b::/96', 'public');
const SIX_TO_FOUR = range('2002::/16', 'public');
const GLOBAL_UNICAST = range('2000::/3', 'public');

function classifyIPv4(bytes: Uint8Array): AddressClass {
  return IPV4.find((r) => inPrefix(bytes, r.network, r.prefix))?.kind ?? 'public';
}

function classifyIPv6(bytes: Uint8Array): AddressClass {
  const special = IPV6.find((r) => inPrefix(bytes, r.network, r.prefix));
  if (special) return special.kind;
  if (inPrefix(bytes, NAT64.network, NAT64.prefix)) return classifyIPv4(bytes.subarray(12));
  if (inPrefix(bytes, SIX_TO_FOUR.network, SIX_TO_FOUR.prefix)) return classifyIPv4(bytes.subarray(2, 6));
  return inPrefix(bytes, GLOBAL_UNICAST.network, GLOBAL_UNICAST.prefix) ? 'public' : 'reserved';
}

/** The class of an IP literal ('10.0.0.1', '::ffff:127.0.0.1', '[fe80::1%eth0]'); throws on a non-IP. */
export function classifyAddress(address: string | Uint8Array): AddressClass {
  const parsed = typeof address === 'string' ? parseIp(address) : address;
  if (!parsed) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  const bytes = unmapped(parsed);
  return bytes.length === 4 ? classifyIPv4(bytes) : classifyIPv6(bytes);
}

export function isPublicAddress(address: string | Uint8Array): boolean {
  return classifyAddress(address) === 'public';
}
