/**
 * Worker "hosts" on one machine, honestly separate (issue 14): each worker process runs in its own
 * network namespace joined to a private bridge by a veth pair (netns.ts), with its own hostname,
 * SBX_STATE_DIR (image cache), SBX_CGROUP_PARENT and SBX_WORKER_ID, and reaches Redis and the
 * registry only over that link, at the bridge's address (startStack's `bindAddress`: Redis listens
 * there too, the registry only there; the fixture images are named after it). The API and the test
 * stay in this machine's own namespace (127.0.0.1). Only standalone Redis (Sentinel and Cluster
 * announce loopback addresses a host cannot reach).
 *
 *   const fleet = useHosts({ hosts: 3, env: { SBX_HEARTBEAT_MS: '200' } });  // before()/after()
 *   // or: const fleet = await startHosts({...}); … await fleet.stop();
 *   fleet.api.submit({ image: fleet.stack.images.busybox, command: [...] })
 *   const h = fleet.hostOf(doc.worker!)     // the Host that ran a job
 *   await h.cut(); await h.restore()        // its link down / up (root side of its veth)
 *   await h.stop('SIGKILL'); await h.start() // the worker again: same id, netns, state dir, cgroups
 *   h.jobCgroups(), h.mounts(), h.jobProcesses()   // leftovers: job cgroups, mounts under its
 *                                                  // state dir, processes in its cgroups
 *
 * stop() removes everything it created (workers and what runs in the namespaces, namespaces, veths,
 * bridge, cgroup subtrees, state dirs), also when the link is cut; if the test process exits without
 * calling it, an exit hook does the same synchronously. It never touches what it did not create:
 * the subnet is claimed by creating its bridge (netns.ts), every other name derives from it.
 */
import { readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { removeCgroupTree } from '../../worker/src/cgroup-parent.ts';
import { SbxClient } from './api-client.ts';
import { createBridgeNet, type BridgeNet, type HostLink } from './netns.ts';
import { waitUntil } from './redis.ts';
import { spawnSbx, startStack, type ManagedProcess, type Stack } from './stack.ts';

export interface HostsOptions {
  /** How many hosts (each one worker process). Default 3. */
  hosts?: number;
  /** Env for the API and every worker (e.g. SBX_HEARTBEAT_MS). */
  env?: Record<string, string>;
  /** Env for the workers only, per host index (0-based) or for all. */
  hostEnv?: (index: number) => Record<string, string>;
  /** An admin key of `env.SBX_API_KEYS`, for the harness's look at /v1/workers. */
  adminKey?: string;
}

export interface Host {
  index: number;
  /** Hostname of the host = its network namespace's name. */
  name: string;
  /** Its address on the bridge. */
  address: string;
  link: HostLink;
  workerId: string;
  stateDir: string;
  cgroupParent: string;
  /** The worker's whole env. */
  env: Record<string, string>;
  /** The current worker process (null before start / after stop). */
  worker: ManagedProcess | null;
  /** Starts the worker (in its namespace) and waits until the API lists it with this pid. */
  start(extraEnv?: Record<string, string>): Promise<ManagedProcess>;
  /** Stops the worker (SIGTERM waits for its graceful exit; SIGKILL does not let it clean up). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Link down: the host can reach nothing, nothing can reach it. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Pids in the host's network namespace (its worker and its helpers; jobs have namespaces of their own). */
  processes(): number[];
  /** Pids of this machine in a cgroup below the host's SBX_CGROUP_PARENT (its jobs' processes; not the launcher's idle zygotes). */
  jobProcesses(): number[];
  /**
   * Cgroups below the worker's own group, in every hierarchy, but those holding only the launcher's
   * idle pre-forked processes (argv[0] `sbx-zygote`, groups `pool-*`: the worker's, not a job's).
   * None once the host's jobs ended.
   */
  jobCgroups(): string[];
  /** Mount points under the host's state dir, as this machine's mount table shows them. */
  mounts(): string[];
}

export interface Hosts {
  stack: Stack;
  api: SbxClient;
  net: BridgeNet;
  hosts: Host[];
  /** The host whose worker has this id; throws if none. */
  hostOf(workerId: string): Host;
  stop(): Promise<void>;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

export async function startHosts(opts: HostsOptions = {}): Promise<Hosts> {
  const net = await createBridgeNet();
  const stateDirs: string[] = [];
  const cgroupParents: string[] = [];
  const hosts: Host[] = [];
  const lastResort = () => {
    for (const h of hosts) h.worker?.child.kill('SIGKILL');
    net.remove();
    for (const p of cgroupParents) removeCgroupTree(p);
    for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
  };
  process.on('exit', lastResort);
  let stack: Stack | null = null;
  const fleet: Hosts = {
    get stack() {
      return stack!;
    },
    api: null as unknown as SbxClient,
    net,
    hosts,
    hostOf(workerId) {
      const h = hosts.find((x) => x.workerId === workerId);
      if (!h) throw new Error(`no host runs worker ${workerId} (hosts: ${hosts.map((x) => x.workerId).join(', ')})`);
      return h;
    },
    async stop() {
      // Links up first so workers can say goodbye to Redis; then nothing of theirs is left running.
      await Promise.all(hosts.map((h) => net.setLink(h.link, true).catch(() => {})));
      await Promise.all(hosts.map((h) => h.stop('SIGTERM')));
      await stack?.stop();
      net.remove(); // kills anything still in the namespaces (nothing, normally)
      for (const p of cgroupParents) await removeCgroupParent(p);
      for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
      process.off('exit', lastResort);
    },
  };
  try {
    stack = await startStack({ workers: 0, bindAddress: net.gateway, ...(opts.env ? { env: opts.env } : {}), ...(opts.adminKey ? { adminKey: opts.adminKey } : {}) });
    fleet.api = new SbxClient(stack.apiUrl);
    const runId = net.bridge.slice('sbxh-'.length);
    for (let i = 0; i < (opts.hosts ?? 3); i++) {
      const link = await net.addHost(i + 1);
      const stateDir = await mkdtemp(join(tmpdir(), `sbx-${link.netns}-`));
      stateDirs.push(stateDir);
      const cgroupParent = `sbx-test-${link.netns}`;
      cgroupParents.push(cgroupParent);
      hosts.push(makeHost(i, link, stack, net, {
        ...stack.env,
        // Redis and the registry at the bridge's address: 127.0.0.1 is the host's own loopback.
        SBX_REDIS_URL: stack.env.SBX_REDIS_URL!.replace('127.0.0.1', net.gateway),
        SBX_STATE_DIR: stateDir,
        SBX_CGROUP_PARENT: cgroupParent,
        SBX_WORKER_ID: `${link.netns}/${runId}`,
        ...opts.hostEnv?.(i),
      }, opts.adminKey));
    }
    await Promise.all(hosts.map((h) => h.start()));
  } catch (e) {
    await fleet.stop();
    throw e;
  }
  return fleet;
}

/** startHosts in before(), stop in after(); the handle's fields are usable inside tests and hooks. */
export function useHosts(opts: HostsOptions = {}): Hosts {
  let fleet: Hosts | null = null;
  before(async () => {
    fleet = await startHosts(opts);
  });
  after(async () => {
    await fleet?.stop();
  });
  const get = (): Hosts => {
    if (!fleet) throw new Error('the hosts are not started yet: use them inside a test or a hook after useHosts()');
    return fleet;
  };
  return {
    get stack() { return get().stack; },
    get api() { return get().api; },
    get net() { return get().net; },
    get hosts() { return get().hosts; },
    hostOf: (id) => get().hostOf(id),
    stop: () => get().stop(),
  };
}

function makeHost(index: number, link: HostLink, stack: Stack, net: BridgeNet, env: Record<string, string>, adminKey?: string): Host {
  const workerId = env.SBX_WORKER_ID!;
  const workerGroup = `${env.SBX_CGROUP_PARENT}/${workerId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const host: Host = {
    index,
    name: link.netns,
    address: link.address,
    link,
    workerId,
    stateDir: env.SBX_STATE_DIR!,
    cgroupParent: env.SBX_CGROUP_PARENT!,
    env,
    worker: null,
    async start(extraEnv = {}) {
      if (host.worker && host.worker.child.exitCode === null && host.worker.child.signalCode === null) throw new Error(`${host.name}: its worker is running`);
      const w = spawnSbx(`worker-${link.netns}`, 'worker/src/main.ts', { ...env, ...extraEnv }, undefined, net.wrap(link));
      host.worker = w;
      await waitUntil(async () => {
        if (w.child.exitCode !== null) throw new Error(`worker of ${host.name} exited (${w.child.exitCode}):\n${w.log()}`);
        const res = await fetch(`${stack.apiUrl}/v1/workers`, { headers: adminKey ? { authorization: `Bearer ${adminKey}` } : {} }).catch(() => null);
        const body = res?.ok ? ((await res.json()) as { items: Array<{ id: string; pid: number }> }) : { items: [] };
        return body.items.some((x) => x.id === workerId && x.pid === w.child.pid);
      }, 90_000, `the worker of ${host.name} to register`).catch((e: Error) => {
        throw new Error(`${e.message}; its log:\n${w.log().slice(-3000)}`);
      });
      return w;
    },
    async stop(signal = 'SIGTERM') {
      await host.worker?.kill(signal);
    },
    cut: () => net.setLink(link, false),
    restore: () => net.setLink(link, true),
    processes: () => net.pidsIn(link),
    jobProcesses: () => pidsInCgroup(env.SBX_CGROUP_PARENT!),
    jobCgroups: () => cgroupsBelow(workerGroup),
    mounts: () => mountsUnder(env.SBX_STATE_DIR!),
  };
  return host;
}

/** Every directory below `relPath` in every mounted hierarchy (paths relative to the hierarchy). */
function cgroupsBelow(relPath: string): string[] {
  const found = new Set<string>();
  let roots: string[] = [];
  try {
    const entries = readdirSync(CGROUP_ROOT);
    roots = entries.includes('cgroup.controllers') ? [CGROUP_ROOT] : [...new Set(entries.map((e) => { try { return realpathSync(join(CGROUP_ROOT, e)); } catch { return ''; } }).filter(Boolean))];
  } catch {
    return [];
  }
  const walk = (root: string, rel: string): void => {
    let children;
    try {
      children = readdirSync(join(root, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const c of children) {
      if (!c.isDirectory()) continue;
      if (!holdsOnlyIdleZygotes(join(root, rel, c.name))) found.add(`${rel}/${c.name}`);
      walk(root, `${rel}/${c.name}`);
    }
  };
  for (const r of roots) walk(r, relPath);
  return [...found].sort();
}

/** The launcher keeps processes ready for the next job (native/src/zygote.cc); they are the worker's. */
function isIdleZygote(pid: number | string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === 'sbx-zygote';
  } catch {
    return false;
  }
}

function holdsOnlyIdleZygotes(dir: string): boolean {
  let pids: string[];
  try {
    pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return false;
  }
  return pids.length > 0 && pids.every(isIdleZygote);
}

function pidsInCgroup(relPath: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cgroup`, 'utf8').split('\n').some((l) => l.split(':')[2]?.startsWith(`/${relPath}/`)) && !isIdleZygote(e)) pids.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** A SIGKILLed worker's job groups may still be emptying: retry the removal for a few seconds. */
async function removeCgroupParent(relPath: string): Promise<void> {
  await waitUntil(async () => {
    removeCgroupTree(relPath);
    return cgroupsBelow(relPath).length === 0;
  }, 5000, `cgroup ${relPath} to be removable`).catch(() => {});
}
