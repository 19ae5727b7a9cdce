/**
 * `sbx logs [-f] [--since T] ID`: the job's stdout to stdout and stderr to stderr, in the order
 * they were written (a replay of its event stream). `-f` follows a running job to its end; without
 * it a running job's output so far is printed (stdout, then stderr; `--since` applies to replays).
 */
import { isFinished } from '../../../client/src/index.ts';
import { flagBool, flagString } from '../args.ts';
import { UsageError } from '../cli-error.ts';
import { write, type Command } from '../command.ts';
import { parseSince } from '../units.ts';

export const logs: Command = {
  name: 'logs',
  usage: 'logs [OPTIONS] JOB',
  summary: 'Fetch the output of a job',
  flags: [
    { name: 'follow', short: 'f', type: 'boolean', help: 'Follow log output until the job ends' },
    { name: 'since', type: 'string', value: 'string', help: 'Show output since a time (RFC 3339 or Unix seconds) or for a relative time (like 42m)' },
  ],
  async run(ctx, args) {
    const [id, ...extra] = args.positionals;
    if (!id || extra.length) throw new UsageError('"sbx logs" requires exactly 1 argument.\nUsage: sbx logs [OPTIONS] JOB', 'logs');
    const sinceText = flagString(args, 'since');
    let since: number | null = null;
    try {
      since = sinceText === undefined ? null : parseSince(sinceText);
    } catch (e) {
      throw new UsageError((e as Error).message, 'logs');
    }
    const client = ctx.client();
    const follow = flagBool(args, 'follow');
    if (!follow) {
      const job = await client.get(id, { output: true });
      if (!isFinished(job.status)) {
        const out = job.output ?? { stdout: '', stderr: '' };
        await write(ctx.stdout, out.stdout);
        await write(ctx.stderr, out.stderr);
        return 0;
      }
    }
    // Event ids are Redis Stream ids, `<ms>-<seq>`: --since keeps the events from that millisecond on.
    // (Filtered here, not by resuming after a made-up id: past a finished job's last event there is nothing to end the stream.)
    for await (const e of client.events(id)) {
      if (since !== null && e.id !== null && Number(e.id.split('-')[0]) < since) continue;
      if (e.type === 'stdout') await write(ctx.stdout, e.data);
      else if (e.type === 'stderr') await write(ctx.stderr, e.data);
    }
    return 0;
  },
};
