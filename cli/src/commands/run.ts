/**
 * `sbx run`: submit a job built from Docker's flags, stream its stdout/stderr to ours as it comes,
 * exit with its exit code (exit-code.ts). Ctrl-C (or SIGTERM) cancels the job and waits for it to end
 * (exit 130, or 143); a second one leaves at once. A closed stdout (`| head`) cancels it too and exits
 * 141, as SIGPIPE would. `-d` prints the id and returns.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import type { JobRequest, SbxClient } from '../../../client/src/index.ts';
import { flagBool, flagList, flagString, flagValue, parseFlag, type Parsed } from '../args.ts';
import { CliError, UsageError } from '../cli-error.ts';
import { OutputClosedError, write, type Command, type Context } from '../command.ts';
import { credentialsFor } from '../docker-config.ts';
import { endNotes, exitCodeOf } from '../exit-code.ts';
import { DETACH_KEYS_FLAG, detachKeysFlag, interactive } from '../interactive.ts';
import { parseCpus, parseDuration, parseMemory, parseStopSignal } from '../units.ts';

export const run: Command = {
  name: 'run',
  usage: 'run [OPTIONS] IMAGE [COMMAND] [ARG...]',
  summary: 'Run a command in a new sandbox job',
  stopAtPositional: true,
  failureExit: 125,
  flags: [
    { name: 'detach', short: 'd', type: 'boolean', help: 'Submit the job and print its id' },
    { name: 'rm', type: 'boolean', help: 'Accepted for Docker compatibility: jobs are always removed (their records expire)' },
    { name: 'env', short: 'e', type: 'list', value: 'list', help: 'Set environment variables (K=V, or K to take it from here)' },
    { name: 'env-file', type: 'list', value: 'list', help: 'Read in a file of environment variables' },
    { name: 'workdir', short: 'w', type: 'string', value: 'string', help: 'Working directory inside the job' },
    { name: 'user', short: 'u', type: 'string', value: 'string', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
    { name: 'entrypoint', type: 'string', value: 'string', help: 'Overwrite the default ENTRYPOINT of the image ("" clears it)' },
    { name: 'memory', short: 'm', type: 'string', value: 'bytes', help: 'Memory limit (like 256m)' },
    { name: 'cpus', type: 'string', value: 'decimal', help: 'Number of CPUs' },
    { name: 'pids-limit', type: 'string', value: 'int', help: 'Limit the number of processes' },
    { name: 'timeout', type: 'string', value: 'duration', help: 'Kill the job after this long (like 30s)' },
    { name: 'output-bytes', type: 'string', value: 'bytes', help: 'Keep at most this much of each output stream (like 4m)' },
    { name: 'output-tail', type: 'string', value: 'bytes', help: 'Of --output-bytes, keep this much from the end of a longer output (like 64k)' },
    { name: 'output-idle-timeout', type: 'string', value: 'duration', help: 'Kill the job once it has written nothing for this long (like 1m)' },
    { name: 'cpu-time', type: 'string', value: 'duration', help: 'Kill the job once all its processes together have used this much CPU time (like 10s)' },
    { name: 'storage-opt', type: 'list', value: 'list', help: 'Storage driver options: size=<bytes> (the writable layer, like 64m)' },
    { name: 'ulimit', type: 'list', value: 'ulimit', help: 'Ulimit options: nofile=<n> (open files of each process)' },
    { name: 'stop-signal', type: 'string', value: 'string', help: 'Signal to stop the command with when a limit ends the job (default SIGTERM), given --stop-timeout to exit' },
    { name: 'stop-timeout', type: 'string', value: 'duration', help: 'When a limit ends the job, how long the command has to exit after --stop-signal before it is killed (like 10s; default 0)' },
    { name: 'idle-timeout', type: 'string', value: 'duration', help: 'With -i or -t: end the job once nothing is attached to it or written to its stdin for this long' },
    { name: 'label', short: 'l', type: 'list', value: 'list', help: 'Set labels on the job (k=v)' },
    { name: 'output-file', type: 'list', value: 'pattern', help: 'Collect the files matching this path or glob when the command ends or times out (then: sbx cp JOB:PATH DEST)' },
    { name: 'file', type: 'list', value: 'src[:dest]', help: 'Copy a local file, or a directory\'s files, into the job before its command starts (dest absolute or relative to the workdir; default: its name), modes kept' },
    { name: 'interactive', short: 'i', type: 'boolean', help: 'Keep STDIN open and stream it to the job' },
    { name: 'tty', short: 't', type: 'boolean', help: 'Allocate a pseudo-TTY' },
    DETACH_KEYS_FLAG,
    { name: 'network', type: 'string', value: 'string', help: 'Network mode: none (default, loopback only) or egress (public HTTP and HTTPS through the worker\'s proxy; HTTP_PROXY is set)' },
    { name: 'egress-host', type: 'list', value: 'host', help: 'With --network egress: the only hosts the job may reach (pypi.org, *.pythonhosted.org)' },
    { name: 'pull', type: 'string', value: 'string', help: 'Pull image before running ("always", "missing"); "missing" runs a cached tag as it was cached' },
    { name: 'format', type: 'string', value: 'string', help: 'With -d: print the job document as json' },
  ],
  async run(ctx, args) {
    const [image, ...command] = args.positionals;
    if (!image) throw new UsageError('"sbx run" requires at least 1 argument.\nUsage: sbx run [OPTIONS] IMAGE [COMMAND] [ARG...]', 'run');
    const request = await buildRequest(ctx, args, image, command);
    const client = ctx.client();
    if (flagBool(args, 'detach')) {
      const job = await client.submit(request);
      await write(ctx.stdout, flagString(args, 'format') === 'json' ? `${JSON.stringify(job)}\n` : `${job.id}\n`);
      return 0;
    }
    if (request.openStdin || request.tty) {
      const detachKeys = detachKeysFlag(args, 'run'); // a bad value is refused before the job exists
      const job = await client.submit(request);
      // Never attached (refused, no API): the job would wait for its idle limit with nobody on it.
      const unattached = () => client.cancel(job.id).then(() => {}, () => {});
      return interactive(ctx, job.id, { stdin: !!request.openStdin, tty: !!request.tty, signals: true, logs: true, detachKeys, unattached });
    }
    return attach(ctx, client, request);
  },
};

async function buildRequest(ctx: Context, args: Parsed, image: string, command: string[]): Promise<JobRequest> {
  const req: JobRequest = { image };
  if (command.length) req.command = command;
  const entrypoint = flagString(args, 'entrypoint');
  if (entrypoint !== undefined) req.entrypoint = entrypoint === '' ? [] : [entrypoint];
  const env = readEnv(ctx, flagList(args, 'env-file'), flagList(args, 'env'));
  if (Object.keys(env).length) req.env = env;
  const workdir = flagString(args, 'workdir');
  if (workdir !== undefined) req.workdir = workdir;
  const user = flagString(args, 'user');
  if (user !== undefined) req.user = user;
  const files = flagList(args, 'file').flatMap(readInputFiles);
  if (files.length) req.files = files;
  const outputFiles = flagList(args, 'output-file');
  if (outputFiles.length) req.outputFiles = outputFiles;
  const labels = keyValues(flagList(args, 'label'), 'label');
  if (Object.keys(labels).length) req.labels = labels;
  const pull = flagString(args, 'pull');
  if (pull !== undefined) {
    if (pull !== 'always' && pull !== 'missing') throw new UsageError(`invalid argument "${pull}" for "--pull" flag: use "always" or "missing" (sbx has no "never": whether a worker holds an image is not a tenant's to learn)`, 'run');
    req.pull = pull;
  }
  const network = flagString(args, 'network');
  if (network !== undefined && network !== 'none' && network !== 'egress') throw new UsageError(`network "${network}" is not supported: use --network none (loopback only) or --network egress (public HTTP and HTTPS through the worker's proxy; there is no bridge or host network)`, 'run');
  if (network === 'egress') req.network = 'egress';
  const egressHosts = flagList(args, 'egress-host');
  if (egressHosts.length && network !== 'egress') throw new UsageError('--egress-host needs --network egress', 'run');
  if (egressHosts.length) req.egressHosts = egressHosts;
  const limits: NonNullable<JobRequest['limits']> = {};
  const value = <T>(flag: string, parse: (s: string) => T): T | undefined => flagValue(args, 'run', flag, parse);
  const memoryBytes = value('memory', parseMemory);
  const cpus = value('cpus', parseCpus);
  const pids = value('pids-limit', (s) => {
    if (!/^\d+$/.test(s) || Number(s) < 1) throw new Error('use a whole number >= 1');
    return Number(s);
  });
  const timeoutMs = value('timeout', parseDuration);
  const outputBytes = value('output-bytes', parseMemory);
  const outputTailBytes = value('output-tail', parseMemory);
  const outputIdleTimeoutMs = value('output-idle-timeout', parseDuration);
  if (outputBytes !== undefined) limits.outputBytes = outputBytes;
  if (outputTailBytes !== undefined) limits.outputTailBytes = outputTailBytes;
  if (outputIdleTimeoutMs !== undefined) limits.outputIdleTimeoutMs = outputIdleTimeoutMs;
  if (memoryBytes !== undefined) limits.memoryBytes = memoryBytes;
  if (cpus !== undefined) limits.cpus = cpus;
  if (pids !== undefined) limits.pids = pids;
  if (timeoutMs !== undefined) limits.timeoutMs = timeoutMs;
  const cpuTimeMs = value('cpu-time', parseDuration);
  if (cpuTimeMs !== undefined) limits.cpuTimeMs = cpuTimeMs;
  const idleTimeoutMs = value('idle-timeout', parseDuration);
  if (idleTimeoutMs !== undefined) limits.idleTimeoutMs = idleTimeoutMs;
  const stopGraceMs = value('stop-timeout', parseDuration);
  if (stopGraceMs !== undefined) limits.stopGraceMs = stopGraceMs;
  const stopSignal = value('stop-signal', parseStopSignal);
  if (stopSignal !== undefined) req.stopSignal = stopSignal;
  for (const [key, v] of Object.entries(keyValues(flagList(args, 'storage-opt'), 'storage option'))) {
    if (key !== 'size') throw new UsageError(`storage option "${key}" is not supported: only size=<bytes> (the job's writable layer)`, 'run');
    limits.diskBytes = parseFlag('run', 'storage-opt', v, parseMemory);
  }
  for (const [key, v] of Object.entries(keyValues(flagList(args, 'ulimit'), 'ulimit'))) {
    if (key !== 'nofile') throw new UsageError(`ulimit "${key}" is not supported: only nofile=<n> (--cpu-time bounds the job's CPU time, --pids-limit its processes)`, 'run');
    limits.openFiles = parseFlag('run', 'ulimit', v, (text) => {
      const [soft, hard = soft] = text.split(':');
      if (!/^\d+$/.test(soft!) || !/^\d+$/.test(hard!)) throw new Error('use nofile=<n> or nofile=<n>:<n>');
      if (soft !== hard) throw new Error('sbx sets one limit, soft and hard: use nofile=<n>');
      return Number(soft);
    });
  }
  if (Object.keys(limits).length) req.limits = limits;
  if (flagBool(args, 'interactive')) req.openStdin = true; // streamed over the attach socket (interactive.ts)
  if (flagBool(args, 'tty')) {
    req.tty = true;
    const out = ctx.stdout as { isTTY?: boolean; rows?: number; columns?: number };
    if (out.isTTY && out.rows && out.columns) req.ttySize = { rows: out.rows, cols: out.columns };
  }
  try {
    const auth = credentialsFor(image, ctx.env);
    if (auth) req.registryAuth = auth;
  } catch (e) {
    // A broken or missing credential helper must not stop public images: the registry decides.
    await write(ctx.stderr, `sbx: warning: ${(e as Error).message}; running without registry credentials\n`);
  }
  return req;
}

/** `-e K=V` / `-e K` (from our environment) over `--env-file` lines (`K=V`, `K`, `# comment`), like Docker. */
function readEnv(ctx: Context, files: string[], pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  const add = (entry: string, where: string) => {
    const eq = entry.indexOf('=');
    const key = eq < 0 ? entry : entry.slice(0, eq);
    if (!key) throw new UsageError(`invalid environment variable "${entry}" in ${where}`, 'run');
    if (eq >= 0) env[key] = entry.slice(eq + 1);
    else if (ctx.env[key] !== undefined) env[key] = ctx.env[key]!;
  };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read env file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 125);
    }
    for (const line of text.split(/\r?\n/)) {
      const t = line.replace(/^\s+/, '');
      if (t === '' || t.startsWith('#')) continue;
      add(t, file);
    }
  }
  for (const p of pairs) add(p, '--env');
  return env;
}

type InputFile = NonNullable<JobRequest['files']>[number];

/**
 * `--file src[:dest]`: the local file's bytes (base64) and permission bits, for the job's `files`;
 * a directory brings every regular file under it (dest the directory they go under). A symbolic
 * link or another kind of file is refused: what is copied is exactly what the user sees.
 */
function readInputFiles(spec: string): InputFile[] {
  const colon = spec.indexOf(':');
  const src = colon < 0 ? spec : spec.slice(0, colon);
  const dest = colon < 0 ? basename(src) : spec.slice(colon + 1);
  if (!src || !dest) throw new UsageError(`invalid argument "${spec}" for "--file" flag: use src[:dest]`, 'run');
  const out: InputFile[] = [];
  const add = (local: string, remote: string) => {
    const st = readingForFile(local, (p) => lstatSync(p));
    if (st.isDirectory()) {
      for (const name of readdirSync(local).sort()) add(join(local, name), `${remote.replace(/\/+$/, '')}/${name}`);
      return;
    }
    if (!st.isFile()) throw new CliError(`cannot copy ${local} with --file: ${st.isSymbolicLink() ? 'it is a symbolic link' : 'it is not a regular file'} (only files and directories are copied)`, 125);
    out.push({ path: remote, content: readingForFile(local, (p) => readFileSync(p)).toString('base64'), encoding: 'base64', mode: st.mode & 0o777 });
  };
  add(src, dest);
  return out;
}

/** `read(path)`, or the one-line error naming the path (exit 125: nothing was submitted). */
function readingForFile<T>(path: string, read: (path: string) => T): T {
  try {
    return read(path);
  } catch (e) {
    throw new CliError(`cannot read ${path} for --file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 125);
  }
}

function keyValues(items: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    out[eq < 0 ? item : item.slice(0, eq)] = eq < 0 ? '' : item.slice(eq + 1);
    if ((eq < 0 ? item : item.slice(0, eq)) === '') throw new UsageError(`invalid ${what} "${item}": use key=value`, 'run');
  }
  return out;
}

async function attach(ctx: Context, client: SbxClient, request: JobRequest): Promise<number> {
  let interruptedBy: NodeJS.Signals | null = null;
  let jobId: string | null = null;
  const cancel = () => {
    if (jobId) client.cancel(jobId).catch(() => {}); // already finished: the stream says how it ended
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interruptedBy) process.exit(128 + constants.signals[signal]); // a second one: leave now, the job is being cancelled
    interruptedBy = signal;
    cancel();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // Submitted and followed in one request (POST ?stream=true): the first output comes a request sooner.
    const job = await client.follow(request);
    jobId = job.id;
    if (interruptedBy) cancel();
    const waiting = queueLine(ctx.stderr);
    try {
      for await (const e of job.events) {
        if (e.type === 'queue') await waiting.show(e.position, e.etaMs);
        else if (e.type === 'stdout' || e.type === 'stderr') {
          await waiting.clear();
          await write(e.type === 'stdout' ? ctx.stdout : ctx.stderr, e.data);
        } else if (e.type === 'exit') {
          await waiting.clear();
          for (const note of endNotes(e.job)) await write(ctx.stderr, `sbx: ${note}\n`);
          return exitCodeOf(e.job, { interruptedBy });
        }
      }
    } catch (e) {
      // Whoever read our output is gone (`sbx run … | head`): the job's output has nowhere to go, so
      // it ends, as a pipeline's writer does on SIGPIPE.
      if (e instanceof OutputClosedError) await client.cancel(job.id).catch(() => {});
      // Cut off from the API past the stream's reconnects: the job goes on, and only its id finds it again.
      else if (!interruptedBy) ctx.stderr.write(`sbx: lost the output of job ${job.id}, which goes on: follow it with "sbx logs -f ${job.id}", stop it with "sbx kill ${job.id}"\n`);
      throw e;
    }
    throw new CliError(`the event stream of job ${job.id} ended without its exit`, 125);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * While the job waits in the queue, one line on a terminal's stderr says where it is
 * (`sbx: queued, position 3, about 2 s`), rewritten as it moves and erased when it leaves the
 * queue; nothing when stderr is not a terminal (a script's stderr stays as the job's).
 */
function queueLine(stderr: NodeJS.WritableStream & { isTTY?: boolean }) {
  let shown = false;
  const clear = async () => {
    if (!shown) return;
    shown = false;
    await write(stderr, '\r\x1b[K');
  };
  return {
    clear,
    async show(position: number | null, etaMs: number | null): Promise<void> {
      if (!stderr.isTTY) return;
      if (position === null) return clear();
      shown = true;
      const eta = etaMs === null ? '' : `, about ${Math.max(1, Math.round(etaMs / 1000))} s`;
      await write(stderr, `\r\x1b[Ksbx: queued, position ${position}${eta}`);
    },
  };
}
