/**
 * IP addresses as bytes (4 for IPv4, 16 for IPv6), so that ranges are compared on what an address
 * is, not on how it is spelt ('::ffff:127.0.0.1', '::ffff:7f00:1' and '[::ffff:7f00:1]' are one
 * address). Pure; no DNS.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Brackets and an IPv6 zone ('%eth0') removed: '[fe80::1%eth0]' → 'fe80::1'. */
export function bareAddress(text: string): string {
  const unbracketed = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zone = unbracketed.indexOf('%');
  return zone === -1 ? unbracketed : unbracketed.slice(0, zone);
}

function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function ipv6Bytes(text: string): Uint8Array {
  // An embedded IPv4 tail ('::ffff:1.2.3.4') is the last two groups.
  const lastColon = text.lastIndexOf(':');
  const v4 = text.includes('.', lastColon) ? ipv4Bytes(text.slice(lastColon + 1)) : null;
  const hex = v4 ? `${text.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}` : text;
  const [head = '', rest] = hex.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = parse(rest ?? '');
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

/** The bytes of an IPv4 or IPv6 literal (brackets and zone allowed), or null when it is none. */
export function parseIp(text: string): Uint8Array | null {
  const bare = bareAddress(text);
  if (isIPv4(bare)) return ipv4Bytes(bare);
  if (isIPv6(bare)) return ipv6Bytes(bare);
  return null;
}

export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return words.join(':');
}

/** Whether `bytes` lies in `network`/`prefix` (both of one family). */
export function inPrefix(bytes: Uint8Array, network: Uint8Array, prefix: number): boolean {
  if (bytes.length !== network.length) return false;
  let bits = prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (network[i]! & mask)) return false;
  }
  return true;
}

const MAPPED = { network: ipv6Bytes('::ffff:0:0'), prefix: 96 };

/**
 * An IPv4-mapped IPv6 address ('::ffff:127.0.0.1') as the IPv4 address it is; every other address
 * unchanged. Sockets report IPv4 peers of dual-stack sockets this way.
 */
export function unmapped(bytes: Uint8Array): Uint8Array {
  return bytes.length === 16 && inPrefix(bytes, MAPPED.network, MAPPED.prefix) ? bytes.subarray(12) : bytes;
}
