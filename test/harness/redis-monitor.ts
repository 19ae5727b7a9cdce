/**
 * Redis MONITOR over a socket of its own, for tests and benches that count commands.
 *
 * Not ioredis's `monitor()`: it marks its connection as monitoring only in a promise callback after
 * MONITOR's `+OK`, so when Redis is busy and the first traced command arrives in the same read as
 * the `+OK`, ioredis takes that line for the reply to a command it never sent ("Command queue
 * state error") and the caller fails (hot-path.test.ts did so with a busy loop beside it).
 */
import { connect } from 'node:net';
import { Redis } from 'ioredis';

export interface MonitoredCommand {
  /** Redis's timestamp, seconds with microseconds, as printed. */
  time: string;
  db: number;
  /** The sender: `ip:port` as in CLIENT LIST's `addr`, `unix:<path>`, or `lua` (a script's call). */
  source: string;
  /** The command and its arguments, unescaped. */
  args: string[];
}

export interface RedisMonitor {
  /** Ends the connection; nothing is reported after it resolves. */
  stop(): Promise<void>;
}

/** Starts MONITOR on `url` (`redis://[user:password@]host:port`); resolves once Redis answered it. */
export async function monitorRedis(url: string, onCommand: (c: MonitoredCommand) => void): Promise<RedisMonitor> {
  const u = new URL(url);
  if (u.protocol !== 'redis:') throw new Error(`monitorRedis: only redis:// URLs (got ${u.protocol})`);
  const socket = connect(Number(u.port || 6379), u.hostname.replace(/^\[|\]$/g, ''));
  const auth = u.password ? [['AUTH', ...(u.username ? [decodeURIComponent(u.username)] : []), decodeURIComponent(u.password)]] : [];
  const commands = [...auth, ['MONITOR']];
  let okLeft = commands.length;
  let stopped = false;
  let pending = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('monitorRedis: the connection closed before MONITOR was answered')));
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1'); // one char per byte: \xHH escapes are rebuilt as bytes below
      let end: number;
      while ((end = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (line.startsWith('-')) return void (socket.destroy(), reject(new Error(`monitorRedis: ${line.slice(1)}`)));
        if (okLeft > 0) {
          if (line !== '+OK') return void (socket.destroy(), reject(new Error(`monitorRedis: unexpected answer ${JSON.stringify(line)}`)));
          if (--okLeft === 0) resolve();
          continue;
        }
        if (!stopped) onCommand(parseMonitorLine(line));
      }
    });
    socket.write(commands.map(encodeCommand).join(''));
  });
  socket.removeAllListeners('error').removeAllListeners('close').on('error', () => {});
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        stopped = true;
        if (socket.destroyed) return resolve();
        socket.once('close', () => resolve());
        socket.destroy();
      }),
  };
}

/** CLIENT LIST's connections: `addr` (a MONITOR line's source) → `name` ('' for an unnamed one). */
export async function connectionNames(url: string): Promise<Map<string, string>> {
  const admin = new Redis(url, { maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
  try {
    const names = new Map<string, string>();
    for (const line of ((await admin.client('LIST')) as string).split('\n')) {
      const addr = /\baddr=(\S+)/.exec(line)?.[1];
      if (addr) names.set(addr, /\bname=(\S*)/.exec(line)?.[1] ?? '');
    }
    return names;
  } finally {
    admin.disconnect();
  }
}

function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
}

const ESCAPES: Record<string, number> = { n: 10, r: 13, t: 9, a: 7, b: 8, '\\': 92, '"': 34 };

/** `+1700000000.123456 [0 127.0.0.1:40000] "set" "k" "v\x00"` (Redis's sdscatrepr quoting). */
export function parseMonitorLine(line: string): MonitoredCommand {
  const m = /^\+(\S+) \[(\d+) ([^\]]+)\] (.*)$/.exec(line);
  if (!m) throw new Error(`monitorRedis: not a MONITOR line: ${JSON.stringify(line)}`);
  const args: string[] = [];
  const rest = m[4]!;
  let i = 0;
  while (i < rest.length) {
    if (rest[i] === ' ') {
      i++;
      continue;
    }
    if (rest[i] !== '"') throw new Error(`monitorRedis: unquoted argument in ${JSON.stringify(line)}`);
    const bytes: number[] = [];
    for (i++; i < rest.length && rest[i] !== '"'; i++) {
      if (rest[i] !== '\\') {
        bytes.push(rest.charCodeAt(i));
        continue;
      }
      const e = rest[++i]!;
      if (e === 'x') {
        bytes.push(parseInt(rest.slice(i + 1, i + 3), 16));
        i += 2;
      } else bytes.push(ESCAPES[e] ?? e.charCodeAt(0));
    }
    i++; // the closing quote
    args.push(Buffer.from(bytes).toString('utf8'));
  }
  return { time: m[1]!, db: Number(m[2]), source: m[3]!, args };
}
