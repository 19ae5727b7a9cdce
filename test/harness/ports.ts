/**
 * Loopback ports for the servers tests start, without trusting a free port to stay free: another
 * test file (or anything else on the machine) may bind the port between freePort() and the server's
 * own bind. A server counts as started only when the socket listening on its port belongs to its own
 * process (listensOn); otherwise it is started again on another port (onFreePort).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port the kernel just handed out on 127.0.0.1 (free now; maybe not by the time it is used). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const LISTEN = '0A';

/** Inodes of the sockets listening on `port` (any address, IPv4 and IPv6). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== LISTEN) continue;
      const hexPort = f[1]!.split(':').pop()!;
      if (parseInt(hexPort, 16) === port) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** Whether the process `pid` itself holds a socket listening on `port`. */
export function listensOn(pid: number | undefined, port: number): boolean {
  if (pid === undefined) return false;
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodes.has(m[1]!)) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

/** Thrown by a start function when its server could not have the port (taken by someone else). */
export class PortTakenError extends Error {
  constructor(what: string, port: number, detail = '') {
    super(`${what} could not listen on 127.0.0.1:${port}${detail ? `: ${detail}` : ''}`);
    this.name = 'PortTakenError';
  }
}

/** Whether a server's own output says its port was taken. */
export function saysPortTaken(output: string): boolean {
  return /address already in use|EADDRINUSE/i.test(output);
}

/** Calls `start` with a fresh port until it does not throw PortTakenError (at most `attempts` times). */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 5): Promise<T> {
  return onFreePorts(1, (ports) => start(ports[0]!), attempts);
}

/** onFreePort for a server group needing `count` ports at once (e.g. a Redis Cluster's nodes). */
export async function onFreePorts<T>(count: number, start: (ports: number[]) => Promise<T>, attempts = 5): Promise<T> {
  for (let n = 1; ; n++) {
    const ports = new Set<number>();
    while (ports.size < count) ports.add(await freePort());
    try {
      return await start([...ports]);
    } catch (e) {
      if (!(e instanceof PortTakenError) || n >= attempts) throw e;
    }
  }
}

/**
 * A loopback address where nothing answers, held so that nothing else can take it: a server that
 * resets each connection as it arrives. A port from freePort() left unbound may be taken meanwhile
 * by another test file's server (a registry serving the very image a test expects not to get).
 */
export async function deadAddress(): Promise<{ host: string; close: () => Promise<void> }> {
  const server = createServer((socket) => socket.resetAndDestroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return { host: `127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
