/**
 * The egress allow-list (SBX_EGRESS_ALLOW): comma-separated entries naming destinations that may be
 * reached although they are not public addresses.
 *
 *   registry.internal         that host name (as requested, whatever it resolves to), any port
 *   registry.internal:5000    that host name, that port only
 *   10.0.0.5  10.0.0.5:5000   that address (whatever name led to it), any port / that port
 *   [fd00::5]:5000  fd00::5   the same for IPv6 (brackets needed with a port)
 *   10.0.0.0/8  fd00::/8      every address in that network, any port
 *
 * Names are compared case-insensitively without a trailing dot. IPv4-mapped IPv6 entries mean the
 * IPv4 address. '0.0.0.0/0,::/0' allows everything (no egress filtering).
 */
import { isIPv6 } from 'node:net';
import { parseIp, unmapped } from './ip-address.ts';

export type EgressAllowEntry =
  | { kind: 'name'; name: string; port: number | null }
  | { kind: 'network'; network: Uint8Array; prefix: number; port: number | null };

const NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
const PORT = /^[0-9]{1,5}$/;

export const EGRESS_ALLOW_SYNTAX = 'host, host:port, IP, IP:port, [IPv6]:port or CIDR (10.0.0.0/8, fd00::/8)';

/** A host name as compared: lowercase, no trailing dot. */
export function normalizeHostName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function networkEntry(address: string, prefix: number | null, port: number | null): EgressAllowEntry | null {
  const parsed = parseIp(address);
  if (!parsed) return null;
  const bits = prefix ?? parsed.length * 8;
  if (bits > parsed.length * 8) return null;
  const bytes = unmapped(parsed);
  // ::ffff:10.0.0.0/104 is 10.0.0.0/8
  const mappedPrefix = bytes.length === 4 && parsed.length === 16 ? bits - 96 : bits;
  if (mappedPrefix < 0) return null;
  return { kind: 'network', network: Uint8Array.from(bytes), prefix: mappedPrefix, port };
}

function parsePort(text: string): number | null | undefined {
  if (!PORT.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** One entry, or null when it is none of the accepted forms. */
export function parseEgressAllowEntry(raw: string): EgressAllowEntry | null {
  const text = raw.trim();
  const slash = text.indexOf('/');
  if (slash !== -1) {
    const prefix = text.slice(slash + 1);
    return /^[0-9]{1,3}$/.test(prefix) ? networkEntry(text.slice(0, slash), Number(prefix), null) : null;
  }
  if (isIPv6(text)) return networkEntry(text, null, null);
  const bracketed = /^(\[[^\]]+\])(?::(.*))?$/.exec(text);
  const colon = text.lastIndexOf(':');
  const [host, portText] = bracketed ? [bracketed[1]!, bracketed[2]] : colon === -1 ? [text, undefined] : [text.slice(0, colon), text.slice(colon + 1)];
  const port = portText === undefined ? null : parsePort(portText);
  if (port === undefined) return null;
  if (parseIp(host)) return bracketed || !host.startsWith('[') ? networkEntry(host, null, port) : null;
  if (bracketed || !NAME.test(host) || /^[0-9.]+$/.test(host)) return null;
  return { kind: 'name', name: normalizeHostName(host), port };
}

/** The entries of a comma-separated setting, or the first bad entry. */
export function parseEgressAllow(setting: string): { entries: EgressAllowEntry[] } | { bad: string } {
  const entries: EgressAllowEntry[] = [];
  for (const part of setting.split(',').map((p) => p.trim()).filter(Boolean)) {
    const entry = parseEgressAllowEntry(part);
    if (!entry) return { bad: part };
    entries.push(entry);
  }
  return { entries };
}

/** Entries from strings ('127.0.0.1:5000', '10.0.0.0/8', …); throws on a bad one (for code and tests). */
export function egressAllowList(...items: string[]): EgressAllowEntry[] {
  const parsed = parseEgressAllow(items.join(','));
  if ('bad' in parsed) throw new TypeError(`egress allow entry ${JSON.stringify(parsed.bad)} is not ${EGRESS_ALLOW_SYNTAX}`);
  return parsed.entries;
}
