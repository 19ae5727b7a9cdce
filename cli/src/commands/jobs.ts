/** `sbx inspect`, `sbx kill`, `sbx stop`, `sbx wait`: one job document, cancel (at once or gracefully), wait for the exit code. */
import { SbxConflictError, type CancelOptions, type Job } from '../../../client/src/index.ts';
import { flagValue } from '../args.ts';
import { write, type Command, type Context } from '../command.ts';
import { eachJob, jobIds } from '../each-job.ts';
import { exitCodeOf } from '../exit-code.ts';
import { parseDuration, parseStopSignal } from '../units.ts';

/** docker stop's default: ten seconds to exit. */
const DEFAULT_STOP_MS = 10_000;


export const inspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] JOB [JOB...]',
  summary: 'Display the job document of one or more jobs (JSON)',
  flags: [
    { name: 'output', type: 'boolean', help: 'Include the stdout and stderr of each job' },
    { name: 'format', type: 'string', value: 'string', help: 'json (the only format; the default)' },
  ],
  async run(ctx, args) {
    const docs: Job[] = [];
    const client = ctx.client();
    const code = await eachJob(ctx, jobIds('inspect', args.positionals), async (id) => {
      docs.push(await client.get(id, { output: args.flags.get('output') === true }));
    });
    await write(ctx.stdout, `${JSON.stringify(docs, null, 4)}\n`);
    return code;
  },
};

/** `sbx kill` / `sbx stop`: cancel each job (`how`: at once, or gracefully), printing its id. */
function cancelEach(ctx: Context, verb: 'kill' | 'stop', positionals: string[], how: CancelOptions): Promise<number> {
  const client = ctx.client();
  return eachJob(ctx, jobIds(verb, positionals), async (id) => {
    try {
      await client.cancel(id, how);
    } catch (e) {
      if (e instanceof SbxConflictError) throw new Error(`cannot ${verb} job ${id}: it is not running (${e.message})`);
      throw e;
    }
    await write(ctx.stdout, `${id}\n`);
  });
}

export const kill: Command = {
  name: 'kill',
  usage: 'kill JOB [JOB...]',
  summary: 'Kill (cancel) one or more queued or running jobs',
  flags: [],
  run: (ctx, args) => cancelEach(ctx, 'kill', args.positionals, {}),
};

export const stop: Command = {
  name: 'stop',
  usage: 'stop [OPTIONS] JOB [JOB...]',
  summary: 'Stop one or more running jobs: a signal, time to exit, then kill (their output files are collected)',
  flags: [
    { name: 'signal', short: 's', type: 'string', value: 'string', help: 'Signal to send to the command (default: the job\'s --stop-signal, else SIGTERM)' },
    { name: 'time', short: 't', type: 'string', value: 'duration', help: 'How long to wait before killing it (default 10s; a bare number is seconds)' },
  ],
  run(ctx, args) {
    const graceMs = flagValue(args, 'stop', 'time', parseDuration) ?? DEFAULT_STOP_MS;
    const signal = flagValue(args, 'stop', 'signal', parseStopSignal);
    return cancelEach(ctx, 'stop', args.positionals, { graceMs, ...(signal ? { signal } : {}) });
  },
};

export const wait: Command = {
  name: 'wait',
  usage: 'wait JOB [JOB...]',
  summary: 'Block until one or more jobs stop, then print their exit codes',
  flags: [],
  async run(ctx, args) {
    const client = ctx.client();
    return eachJob(ctx, jobIds('wait', args.positionals), async (id) => {
      await write(ctx.stdout, `${exitCodeOf(await client.wait(id))}\n`);
    });
  },
};
