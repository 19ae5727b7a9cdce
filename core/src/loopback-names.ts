/**
 * Names only this machine answers to, for the listeners that must not answer a web page reached by
 * DNS rebinding (SECURITY.md P64): a keyless API (api/src/middleware/loopback-host.ts) and the
 * worker's metrics listener (worker/src/main.ts). A page that rebinds its own domain to 127.0.0.1
 * sends that domain as `Host`; a local client sends 127.0.0.1, localhost or [::1].
 */
import { classifyAddress } from './egress/address-class.ts';
import { normalizeHostName } from './egress/egress-allow.ts';
import { parseIp } from './egress/ip-address.ts';

/** 127.0.0.0/8, ::1, ::ffff:127.x.y.z (brackets allowed) and the name localhost. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const ip = parseIp(host);
  return ip !== null && classifyAddress(ip) === 'loopback';
}

/** The name of a `Host` header, lowercase, without its port or a trailing dot (`[::1]:8080` → `[::1]`). */
export function hostHeaderName(header: string): string {
  const h = header.trim();
  const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.replace(/:[0-9]*$/, '');
  return normalizeHostName(name);
}

/** Whether a host name (as hostHeaderName gives it) is this machine's: a loopback address, localhost or a name under it (RFC 6761). */
export function isLoopbackName(name: string): boolean {
  return isLoopbackHost(name) || name.endsWith('.localhost');
}

/** Whether a `Host` header names this machine. */
export function namesLoopback(header: string): boolean {
  return isLoopbackName(hostHeaderName(header));
}

/**
 * Whether a `Host` header is an IP address (with or without a port): what a scraper reaching a
 * listener by its address sends. Never a page's by DNS rebinding, which sends its own domain name.
 */
export function namesAnAddress(header: string): boolean {
  return parseIp(hostHeaderName(header)) !== null;
}
