/**
 * `sbx logs [-f] [--since T] [--until T] [-n N] [-t] ID`: the job's stdout to stdout and stderr to stderr, in
 * the order they were written (a replay of its event stream). Without `-f` only what the job has
 * written so far (the stream with `follow=false`); `-f` follows a running job to its end. `-n`
 * keeps the last N lines (of both streams together, as Docker's `--tail`), then follows on from
 * there with `-f`; `-t` puts the time each line was written (its event's) before it, in RFC 3339.
 */
import type { JobEvent } from '../../../client/src/index.ts';
import { flagBool, flagString } from '../args.ts';
import { UsageError } from '../cli-error.ts';
import { write, type Command, type Context } from '../command.ts';
import { parseSince } from '../units.ts';
import { OutputLines, type OutputLine } from '../output-lines.ts';

export const logs: Command = {
  name: 'logs',
  usage: 'logs [OPTIONS] JOB',
  summary: 'Fetch the output of a job',
  flags: [
    { name: 'follow', short: 'f', type: 'boolean', help: 'Follow log output until the job ends' },
    { name: 'since', type: 'string', value: 'string', help: 'Show output since a time (RFC 3339 or Unix seconds) or for a relative time (like 42m)' },
    { name: 'until', type: 'string', value: 'string', help: 'Show output before a time (RFC 3339 or Unix seconds) or a relative time (like 42m)' },
    { name: 'tail', short: 'n', type: 'string', value: 'string', help: 'Number of lines to show from the end of the logs (default "all")' },
    { name: 'timestamps', short: 't', type: 'boolean', help: 'Show timestamps' },
  ],
  async run(ctx, args) {
    const [id, ...extra] = args.positionals;
    if (!id || extra.length) throw new UsageError('"sbx logs" requires exactly 1 argument.\nUsage: sbx logs [OPTIONS] JOB', 'logs');
    let since: number | null = null;
    let until: number | null = null;
    let tail: number | null = null;
    try {
      const sinceText = flagString(args, 'since');
      since = sinceText === undefined ? null : parseSince(sinceText);
      const untilText = flagString(args, 'until');
      until = untilText === undefined ? null : parseSince(untilText, Date.now(), '--until');
      tail = parseTail(flagString(args, 'tail'));
    } catch (e) {
      throw new UsageError((e as Error).message, 'logs');
    }
    const client = ctx.client();
    const follow = flagBool(args, 'follow');
    const timestamps = flagBool(args, 'timestamps');
    // Event ids are Redis Stream ids, `<ms>-<seq>`: --since keeps the events from that millisecond
    // on, --until those before it. (Filtered here, not by resuming after a made-up id: past a
    // finished job's last event there is nothing to end the stream.)
    const inWindow = (id: string | null) => {
      const ms = id === null ? null : Number(id.split('-')[0]);
      return ms === null || ((since === null || ms >= since) && (until === null || ms < until));
    };
    const output = (e: JobEvent): e is Extract<JobEvent, { type: 'stdout' | 'stderr' }> => (e.type === 'stdout' || e.type === 'stderr') && inWindow(e.id);

    if (tail === null && !timestamps) {
      for await (const e of client.events(id, { follow })) if (output(e)) await write(e.type === 'stdout' ? ctx.stdout : ctx.stderr, e.data);
      return 0;
    }
    const lines = new OutputLines();
    let lastEventId: string | undefined;
    let ended = false;
    // The output so far (all of it when the job has ended), cut into lines; -n keeps the last ones.
    const kept: OutputLine[] = [];
    for await (const e of client.events(id, { follow: false })) {
      if (e.id !== null) lastEventId = e.id;
      if (e.type === 'exit') ended = true;
      if (output(e)) kept.push(...lines.add(e.type, e.data, eventTime(e.id)));
    }
    if (ended || !follow) kept.push(...lines.flush());
    for (const line of tail === null ? kept : kept.slice(Math.max(0, kept.length - tail))) await writeLine(ctx, line, timestamps);
    if (ended || !follow) return 0;
    // -f: on from there, line by line.
    for await (const e of client.events(id, lastEventId === undefined ? {} : { lastEventId })) {
      if (output(e)) for (const line of lines.add(e.type, e.data, eventTime(e.id))) await writeLine(ctx, line, timestamps);
    }
    for (const line of lines.flush()) await writeLine(ctx, line, timestamps);
    return 0;
  },
};

/** `--tail`: a count of lines, or "all" (null). */
function parseTail(text: string | undefined): number | null {
  if (text === undefined || text === 'all') return null;
  if (!/^\d{1,9}$/.test(text)) throw new Error(`invalid --tail ${JSON.stringify(text)}: a number of lines, or "all"`);
  return Number(text);
}

/** When an event was recorded: its stream id's milliseconds. */
function eventTime(id: string | null): Date {
  return new Date(id === null ? Date.now() : Number(id.split('-')[0]));
}

async function writeLine(ctx: Context, line: OutputLine, timestamps: boolean): Promise<void> {
  await write(line.stream === 'stdout' ? ctx.stdout : ctx.stderr, timestamps ? `${line.at.toISOString()} ${line.text}` : line.text);
}
