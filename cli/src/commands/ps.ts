/** `sbx ps [-a] [-q] [--filter status=...|label=k[=v]|ancestor=IMAGE] [-n N] [--no-trunc] [--format json]`. */
import { isFinished, normalizeImageName, type Job, type JobStatus } from '../../../client/src/index.ts';
import { flagBool, flagList, flagString } from '../args.ts';
import { UsageError } from '../cli-error.ts';
import { FORMAT_FLAG, write, type Command } from '../command.ts';
import { jsonLines, parseFormat, table, truncate } from '../output.ts';
import { timeAgo } from '../units.ts';

const STATUSES: JobStatus[] = ['queued', 'pulling', 'running', 'succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'];

export const ps: Command = {
  name: 'ps',
  usage: 'ps [OPTIONS]',
  summary: 'List jobs (queued, pulling and running; -a for all)',
  flags: [
    { name: 'all', short: 'a', type: 'boolean', help: 'Show all jobs (default shows just the unfinished)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'Only display job ids' },
    { name: 'filter', short: 'f', type: 'list', value: 'filter', help: 'Filter output: status=<status>, label=<key>[=<value>], ancestor=<image>' },
    { name: 'last', short: 'n', type: 'string', value: 'int', help: 'Show n last created jobs (includes all states)' },
    { name: 'no-trunc', type: 'boolean', help: "Don't truncate output" },
    FORMAT_FLAG,
  ],
  async run(ctx, args) {
    const format = parseFormat(flagString(args, 'format'));
    const statuses = new Set<JobStatus>();
    const labels: Array<[string, string | null]> = [];
    const ancestors: string[] = [];
    for (const f of flagList(args, 'filter')) {
      const eq = f.indexOf('=');
      const [key, value] = eq < 0 ? [f, ''] : [f.slice(0, eq), f.slice(eq + 1)];
      if (key === 'status') {
        if (!STATUSES.includes(value as JobStatus)) throw new UsageError(`invalid filter 'status=${value}': use one of ${STATUSES.join(', ')}`, 'ps');
        statuses.add(value as JobStatus);
      } else if (key === 'label') {
        const e = value.indexOf('=');
        labels.push(e < 0 ? [value, null] : [value.slice(0, e), value.slice(e + 1)]);
      } else if (key === 'ancestor') ancestors.push(normalizeImageName(value));
      else throw new UsageError(`invalid filter '${key}': use status, label or ancestor`, 'ps');
    }
    const lastText = flagString(args, 'last');
    const last = lastText === undefined ? null : Number(lastText);
    if (last !== null && (!Number.isInteger(last) || last < 1)) throw new UsageError(`invalid argument "${lastText}" for "-n, --last" flag: use a whole number >= 1`, 'ps');
    const all = flagBool(args, 'all') || statuses.size > 0 || last !== null;
    const keep = (j: Job) =>
      (all || !isFinished(j.status)) &&
      (statuses.size === 0 || statuses.has(j.status)) &&
      labels.every(([k, v]) => (v === null ? k in j.labels : j.labels[k] === v)) &&
      (ancestors.length === 0 || ancestors.includes(normalizeImageName(j.image)));
    const jobs: Job[] = [];
    const client = ctx.client();
    const server = statuses.size === 1 ? { status: [...statuses][0] } : {};
    for await (const j of client.listAll({ ...server, limit: 100 })) {
      if (keep(j)) jobs.push(j);
      if (last !== null && jobs.length >= last) break;
    }
    if (flagBool(args, 'quiet')) {
      await write(ctx.stdout, jobs.map((j) => `${j.id}\n`).join(''));
      return 0;
    }
    if (format === 'json') {
      await write(ctx.stdout, jsonLines(jobs));
      return 0;
    }
    const noTrunc = flagBool(args, 'no-trunc');
    const rows = jobs.map((j) => [j.id, j.image, quoteCommand(j, noTrunc), timeAgo(j.timings.createdAt), describeStatus(j), j.worker ?? '']);
    await write(ctx.stdout, table(['JOB ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'WORKER'], rows));
    return 0;
  },
};

function quoteCommand(j: Job, noTrunc: boolean): string {
  const argv = [...(j.entrypoint ?? []), ...(j.command ?? [])].join(' ');
  return `"${noTrunc ? argv : truncate(argv, 20)}"`;
}

/** Docker's STATUS column: `Up 3 seconds`, `Exited (3) 5 seconds ago`, ... */
export function describeStatus(j: Job): string {
  const ago = timeAgo(j.timings.finishedAt);
  switch (j.status) {
    case 'queued':
      return j.queuePosition != null ? `Queued (#${j.queuePosition})` : 'Queued';
    case 'pulling':
      return 'Pulling';
    case 'running':
      return `Up ${timeAgo(j.timings.startedAt).replace(/ ago$/, '')}`;
    case 'succeeded':
    case 'failed':
      return `Exited (${j.exitCode ?? (j.signal ?? '?')}) ${ago}`;
    case 'timeout':
      return `Timeout ${ago}`;
    case 'oom':
      return `OOMKilled ${ago}`;
    case 'cancelled':
      return `Cancelled ${ago}`;
    case 'error':
      return `Error (${j.error?.code ?? 'unknown'}) ${ago}`;
  }
}
