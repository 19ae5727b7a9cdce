/**
 * Names only this machine answers to, for the listeners that must not answer a web page reached by
 * DNS rebinding (SECURITY.md P64): a keyless API (api/src/middleware/loopback-host.ts) and the
 * worker's metrics listener (worker/src/main.ts). A page that rebinds its own domain to 127.0.0.1
 * sends that domain as `Host`; a local client sends 127.0.0.1, localhost or [::1].
 */
import net from 'node:net';

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** 127.0.0.0/8, ::1, ::ffff:127.x.y.z and the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = net.isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** The name of a `Host` header, lowercase, without its port or a trailing dot (`[::1]:8080` → `[::1]`). */
export function hostHeaderName(header: string): string {
  const h = header.trim();
  const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.replace(/:[0-9]*$/, '');
  return name.toLowerCase().replace(/\.$/, '');
}

/** Whether a `Host` header names this machine: a loopback address, localhost or a name under it (RFC 6761). */
export function namesLoopback(header: string): boolean {
  const name = hostHeaderName(header);
  return isLoopbackHost(name) || name.endsWith('.localhost');
}
