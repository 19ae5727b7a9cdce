/**
 * Requests the API accepts, made to go wrong in the job: a seeded sweep of submissions whose every
 * field takes odd but well-formed values (programs that are paths, directories, devices, 1,000-byte
 * names; workdirs that are files, devices or unmakeable; users the image lacks; input files over
 * directories and devices; output patterns on FIFOs, symbolic links and /proc; limits at their
 * minima; tty, open stdin, egress, stop signals), each through a whole stack. Every request must be
 * refused at submission (400 invalid_request), or run (succeeded or failed by its own exit code), or
 * end `timeout` / `oom` by its limits, or end `error` with invalid_request or command_not_found and
 * a message in the request's terms; never internal, launch_failed or worker_lost, never the
 * launcher's own words ("cwd: chdir `/etc/passwd`: ENOTDIR"). Before the fixes: "6 of 120 jobs broke
 * the contract" (a program name past 255 bytes ended `internal`, after a retry; a workdir that is a
 * file said "cwd: chdir `…`: ENOTDIR"). SBX_HOSTILE_SEED=N runs another sweep.
 */
import { test } from 'node:test';
import { runHostileJobSweep, type SweepJob } from '../harness/hostile-job-sweep.ts';
import { hostileSeed, seededRandom } from '../harness/seeded-random.ts';
import { useStack } from '../harness/use-stack.ts';

const SEED = hostileSeed();
const JOBS = 120;
const CONCURRENCY = 4;
const ACTIONABLE = new Set(['invalid_request', 'command_not_found']);

const e2e = useStack();
const rnd = seededRandom(SEED);
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
const some = <T>(make: () => T, most = 3): T[] => Array.from({ length: 1 + Math.floor(rnd() * most) }, make);

const WORDS = ['', ' ', 'é', '💥', '-', '--', '-rf', '$HOME', '*', '\t', '\n', '\u001b[31m', 'a'.repeat(1000), '/', '.', '..', '\\', '%s%n', '\u202e'];
const PATHS = ['/', '/tmp', '/tmp/x', '/..', '/./x', '/dev', '/dev/null', '/dev/shm', '/sys', '/etc/passwd', '/etc', '/tmp/../..', '/a'.repeat(50), `/${'b'.repeat(255)}`, '/bin/sh', '/root', '/nonexistent', '/tmp/ ', '/tmp/é', '//', '/run', '/dev/pts', '/proc2', '/x/proc3'];
const RELATIVE = ['x', './x', '../x', '../../etc/x', 'a/b/c', ' ', '.', '..', 'dev/null', '-', 'é/💥'];
const USERS = ['0', '0:0', 'root', 'nobody', '65534', '65535', '65535:65535', '1000:1000', 'daemon', 'nobody:nogroup', 'missing', '0:missing', 'a.b-c'];
const SCRIPTS = [
  'exit 3', 'cat', 'ls /', 'id', 'pwd', 'sleep 0.05', 'yes | head -c 100000', 'kill -9 $$', 'kill -TERM $$', 'exec 1>&-; echo x', 'head -c 1000000 /dev/zero',
  'mkfifo /tmp/p; echo made', 'ln -s /etc/shadow /tmp/s; ln -s / /tmp/root', 'dd if=/dev/zero of=/tmp/big bs=1M count=40 2>&1', 'for i in $(seq 200); do echo $i > /tmp/f$i; done',
  'cat /dev/urandom | head -c 300000', 'trap "" TERM; sleep 0.5', 'exec </dev/null >/dev/null 2>&1; sleep 0.2', 'mount -t tmpfs x /mnt', 'kill -SEGV $$', 'mkdir -p /tmp/d/e; touch /tmp/d/e/f; chmod 000 /tmp/d',
];
const PATTERNS = ['*', '/*', '/tmp/*', '[', '/proc/self/*', '/dev/zero', '/dev/*', '**', '/etc/*', '?', '/tmp/p', '/tmp/s', '/tmp/root', '/tmp/root/etc/*', '/tmp/big', '/tmp/f*', '/tmp/d/e/f', '/tmp/d/*'];

function command(): string[] {
  return pick([
    () => ['true'],
    () => ['echo', ...some(() => pick(WORDS), 4)],
    () => ['sh', '-c', pick(SCRIPTS)],
    () => [pick(PATHS)],
    () => [pick(RELATIVE)],
    () => [pick(WORDS)],
    () => [],
  ])();
}

function limits(): Record<string, number> {
  const choices: Array<[string, readonly number[]]> = [
    ['memoryBytes', [4 << 20, 8 << 20, 16 << 20, 1 << 30]], ['pids', [2, 3, 64]], ['timeoutMs', [1, 10, 100, 1000]], ['outputBytes', [0, 1, 100]],
    ['diskBytes', [1 << 20, 4 << 20]], ['cpuTimeMs', [1, 10, 100]], ['openFiles', [8, 16, 1024]], ['outputIdleTimeoutMs', [1000]], ['stopGraceMs', [0, 1, 100]], ['cpus', [0.01, 0.1, 1]],
  ];
  return Object.fromEntries(some(() => {
    const [name, values] = pick(choices);
    return [name, pick(values)];
  }));
}

/** One request: the stack's busybox image, and each other field with odd values one time in three. */
function request(): Record<string, unknown> {
  const r: Record<string, unknown> = { image: e2e.stack.images.busybox };
  const maybe = (set: () => void) => rnd() < 0.33 && set();
  maybe(() => (r.command = command()));
  maybe(() => (r.entrypoint = pick([[], ['sh', '-c'], [pick(PATHS)]])));
  maybe(() => (r.env = Object.fromEntries(some(() => [pick(['A', 'PATH', 'HOME', 'LD_PRELOAD', 'a.b-c', '_', 'TERM', 'X'.repeat(200)]), pick([...WORDS, '/nonexistent', `${'d'.repeat(300)}:/bin`])]))));
  maybe(() => (r.workdir = pick(PATHS)));
  maybe(() => (r.user = pick(USERS)));
  maybe(() => (r.stdin = pick(['', 'x', 'é💥\n', 'a'.repeat(200_000)])));
  maybe(() => (r.files = some(() => ({ path: rnd() < 0.5 ? pick(PATHS) : pick(RELATIVE), content: pick(['', 'eA==']), ...(rnd() < 0.3 ? { encoding: 'base64' } : {}), ...(rnd() < 0.3 ? { mode: pick([0, 0o777, '0', '755']) } : {}) }))));
  maybe(() => (r.outputFiles = some(() => pick([...PATHS, ...RELATIVE, ...PATTERNS]))));
  maybe(() => (r.limits = limits()));
  maybe(() => {
    r.tty = true;
    if (rnd() < 0.5) r.ttySize = { rows: pick([1, 65535]), cols: pick([1, 65535]) };
  });
  maybe(() => (r.stopSignal = pick(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1'])));
  maybe(() => {
    r.network = 'egress';
    if (rnd() < 0.5) r.egressHosts = [pick(['example.com', '*.example.com', 'localhost'])];
  });
  maybe(() => {
    r.openStdin = true;
    r.limits = { ...(r.limits as object | undefined), idleTimeoutMs: 1000 };
  });
  maybe(() => (r.pull = pick(['missing', 'always'])));
  return r;
}

test('odd but well-formed requests are refused at submission, or run, or end with an error in the request\'s terms', { timeout: 600_000 }, async () => {
  const jobs = Array.from({ length: JOBS }, (_, n) => async (): Promise<SweepJob> => {
    const r = request();
    return { what: `request ${n} ${JSON.stringify(r).slice(0, 240)}`, request: r };
  });
  await runHostileJobSweep(e2e, jobs, {
    seed: SEED, concurrency: CONCURRENCY, actionable: ACTIONABLE, mayRefuse: true, limitStatuses: ['timeout', 'oom'], mustReach: ['400', 'succeeded', 'failed', 'timeout', 'error/invalid_request', 'error/command_not_found'],
  });
});
