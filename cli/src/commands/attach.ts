/**
 * `sbx attach ID`: docker attach — the job's output from now on, our stdin to it when its stdin is
 * open, raw terminal and window sizes when it has a tty. Exits with the job's code when it ends.
 */
import { UsageError } from '../cli-error.ts';
import type { Command } from '../command.ts';
import { flagBool } from '../args.ts';
import { DETACH_KEYS_FLAG, detachKeysFlag, interactive } from '../interactive.ts';
import { exitCodeOf } from '../exit-code.ts';
import { isFinished } from '../../../client/src/index.ts';

export const attach: Command = {
  name: 'attach',
  usage: 'attach [OPTIONS] JOB',
  summary: 'Attach local standard input, output, and error streams to a running job',
  flags: [
    { name: 'no-stdin', type: 'boolean', help: 'Do not attach STDIN' },
    { name: 'logs', type: 'boolean', help: 'Replay the job\'s output from its start first' },
    DETACH_KEYS_FLAG,
  ],
  async run(ctx, args) {
    const [id] = args.positionals;
    if (!id || args.positionals.length > 1) throw new UsageError('"sbx attach" requires exactly 1 argument.\nUsage: sbx attach [OPTIONS] JOB', 'attach');
    const job = await ctx.client().get(id);
    const info = job.interactive ?? { openStdin: false, tty: false };
    if (isFinished(job.status)) return exitCodeOf(job);
    const detachKeys = detachKeysFlag(args, 'attach');
    return interactive(ctx, job.id, { stdin: info.openStdin && !flagBool(args, 'no-stdin'), tty: info.tty, signals: info.openStdin || info.tty, logs: flagBool(args, 'logs'), detachKeys });
  },
};
