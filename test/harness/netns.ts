/**
 * A private network on this machine for test "hosts": a Linux bridge in the root network namespace
 * holding the gateway address of a private 10.X.Y.0/24, and per host a network namespace joined to
 * the bridge by a veth pair (root side `<bridge>-<n>` on the bridge, `eth0` inside).
 *
 * Names carry the subnet (bridge `sbxh-XXYY`, X and Y in hex), so creating the bridge is the atomic
 * claim of the subnet: two harnesses (two test files at once) never share one, and a leftover of a
 * crashed run only makes that subnet unavailable. Subnets overlapping any address or route of the
 * machine are never picked. Every `ip` command that creates something fails if the name exists, so
 * nothing is ever adopted, and remove() deletes only what this instance created.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface HostLink {
  /** Network namespace name (`ip netns`), also used as the host's hostname. */
  netns: string;
  /** `/run/netns/<netns>`, for nsenter. */
  netnsPath: string;
  /** The root-namespace end of the veth pair, on the bridge: set it down to cut the host off. */
  veth: string;
  /** The host's address on the bridge (its `eth0`). */
  address: string;
}

export interface BridgeNet {
  bridge: string;
  /** The bridge's own address: where servers in the root namespace are reached from the hosts. */
  gateway: string;
  /** e.g. `10.200.5.0/24` */
  subnet: string;
  /** A new network namespace with `lo` and `eth0` (address `.10+n`) up, joined to the bridge. */
  addHost(n: number): Promise<HostLink>;
  /** The host's link up or down (root side of its veth: the host sees NO-CARRIER). */
  setLink(host: HostLink, up: boolean): Promise<void>;
  /** Pids of the processes in the host's network namespace. */
  pidsIn(host: HostLink): number[];
  /** The command prefix that runs a program in the host's network namespace with its own hostname. */
  wrap(host: HostLink): string[];
  /** Kills what still runs in the namespaces, deletes namespaces, veths and the bridge. Idempotent. */
  remove(): void;
}

async function ip(...args: string[]): Promise<void> {
  try {
    await execFileP('ip', args);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

function ipSync(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    // already gone
  }
}

function toInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
}

/** Every IPv4 prefix the machine has as an address or a route (the default route excepted). */
function usedPrefixes(): Array<{ net: number; len: number }> {
  const text = [execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }), execFileSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' })].join('\n');
  const out: Array<{ net: number; len: number }> = [];
  for (const m of text.matchAll(/(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?/g)) {
    const len = m[2] === undefined ? 32 : Number(m[2]);
    if (len > 0) out.push({ net: toInt(m[1]!), len });
  }
  return out;
}

function overlaps(a: { net: number; len: number }, b: { net: number; len: number }): boolean {
  const len = Math.min(a.len, b.len);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((a.net & mask) >>> 0) === ((b.net & mask) >>> 0);
}

export async function createBridgeNet(attempts = 20): Promise<BridgeNet> {
  for (let i = 0; i < attempts; i++) {
    const x = randomInt(160, 255);
    const y = randomInt(0, 256);
    const subnet = { net: toInt(`10.${x}.${y}.0`), len: 24 };
    if (usedPrefixes().some((p) => overlaps(p, subnet))) continue;
    const bridge = `sbxh-${x.toString(16).padStart(2, '0')}${y.toString(16).padStart(2, '0')}`;
    try {
      await ip('link', 'add', bridge, 'type', 'bridge');
    } catch (e) {
      if (/File exists/.test((e as Error).message)) continue; // another harness holds this subnet
      throw e;
    }
    const net = makeNet(bridge, `10.${x}.${y}`);
    try {
      await ip('addr', 'add', `${net.gateway}/24`, 'dev', bridge);
      await ip('link', 'set', bridge, 'up');
    } catch (e) {
      net.remove();
      throw e;
    }
    return net;
  }
  throw new Error(`no free 10.x.y.0/24 for a test bridge after ${attempts} tries`);
}

function makeNet(bridge: string, prefix: string): BridgeNet {
  const hosts: HostLink[] = [];
  const createdVeths: string[] = [];
  let bridgeGone = false;
  const pidsIn = (host: HostLink): number[] => {
    try {
      return execFileSync('ip', ['netns', 'pids', host.netns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  return {
    bridge,
    gateway: `${prefix}.1`,
    subnet: `${prefix}.0/24`,
    async addHost(n) {
      const name = `${bridge}-${n}`;
      await ip('netns', 'add', name); // fails if it exists: never someone else's
      const host: HostLink = { netns: name, netnsPath: `/run/netns/${name}`, veth: name, address: `${prefix}.${10 + n}` };
      hosts.push(host);
      await ip('link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
      createdVeths.push(host.veth);
      await ip('link', 'set', host.veth, 'master', bridge, 'up');
      await ip('-n', name, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      await ip('-n', name, 'link', 'set', 'eth0', 'up');
      await ip('-n', name, 'link', 'set', 'lo', 'up');
      return host;
    },
    async setLink(host, up) {
      await ip('link', 'set', host.veth, up ? 'up' : 'down');
    },
    pidsIn,
    wrap(host) {
      // nsenter joins only the network namespace (the mounts, cgroups and /sys stay the machine's,
      // unlike `ip netns exec`); unshare --uts gives the host its own hostname. Each execs the next:
      // the spawned pid is the program's own.
      return ['nsenter', `--net=${host.netnsPath}`, '--', 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', host.netns];
    },
    remove() {
      for (const host of hosts.splice(0)) {
        for (const pid of pidsIn(host)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // exited meanwhile
          }
        }
        if (createdVeths.includes(host.veth)) ipSync('link', 'del', host.veth);
        ipSync('netns', 'del', host.netns);
      }
      if (!bridgeGone) ipSync('link', 'del', bridge);
      bridgeGone = true;
    },
  };
}
