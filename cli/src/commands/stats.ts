/**
 * `sbx stats JOB [JOB...]` (docker stats --no-stream): each running job's usage as its worker last
 * read it from the job's cgroup (`liveUsage`, every SBX_LIVE_USAGE_MS); a finished job's final usage.
 */
import type { Job } from '../../../client/src/index.ts';
import { flagString } from '../args.ts';
import { FORMAT_FLAG, write, type Command } from '../command.ts';
import { eachJob, jobIds } from '../each-job.ts';
import { jsonLines, parseFormat, table } from '../output.ts';
import { formatBytes, formatMs, timeAgo } from '../units.ts';

export const stats: Command = {
  name: 'stats',
  usage: 'stats [OPTIONS] JOB [JOB...]',
  summary: 'Display the resource usage of jobs (running: as last read, every 2 s; finished: final)',
  flags: [FORMAT_FLAG],
  async run(ctx, args) {
    const format = parseFormat(flagString(args, 'format'));
    const client = ctx.client();
    const jobs: Job[] = [];
    const code = await eachJob(ctx, jobIds('stats', args.positionals), async (id) => { jobs.push(await client.get(id)); });
    if (format === 'json') {
      await write(ctx.stdout, jsonLines(jobs.map((j) => ({ id: j.id, status: j.status, ...usageOf(j) }))));
      return code;
    }
    const rows = jobs.map((j) => {
      const u = usageOf(j);
      const mem = u.memoryBytes ?? u.memoryPeakBytes;
      return [
        j.id, j.status, formatMs(u.cpuMs), `${mem === undefined ? '--' : formatBytes(mem)} / ${formatBytes(j.limits.memoryBytes)}`,
        mem === undefined ? '--' : `${((mem / j.limits.memoryBytes) * 100).toFixed(2)}%`, u.pids === undefined ? '--' : String(u.pids), u.at ? timeAgo(u.at) : '',
      ];
    });
    await write(ctx.stdout, table(['JOB ID', 'STATUS', 'CPU TIME', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS', 'READ'], rows));
    return code;
  },
};

/** What there is to show: the live reading while running, the final usage (its peak memory) once ended. */
function usageOf(j: Job): { cpuMs?: number; memoryBytes?: number; memoryPeakBytes?: number; pids?: number; at?: string } {
  if (j.liveUsage) return j.liveUsage;
  if (j.usage) return { cpuMs: j.usage.cpuMs, memoryPeakBytes: j.usage.memoryPeakBytes };
  return {};
}
