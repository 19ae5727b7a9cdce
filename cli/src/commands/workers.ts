/** `sbx workers`: the live workers and their free slots. */
import { flagBool, flagString } from '../args.ts';
import { FORMAT_FLAG, write, type Command } from '../command.ts';
import { jsonLines, parseFormat, table } from '../output.ts';
import { formatBytes, timeAgo } from '../units.ts';

export const workers: Command = {
  name: 'workers',
  usage: 'workers [OPTIONS]',
  summary: 'List the live workers',
  flags: [{ name: 'quiet', short: 'q', type: 'boolean', help: 'Only display worker ids' }, FORMAT_FLAG],
  async run(ctx, args) {
    const format = parseFormat(flagString(args, 'format'));
    const list = await ctx.client().workers();
    if (flagBool(args, 'quiet')) {
      await write(ctx.stdout, list.map((w) => `${w.id}\n`).join(''));
      return 0;
    }
    if (format === 'json') {
      await write(ctx.stdout, jsonLines(list));
      return 0;
    }
    const rows = list.map((w) => [w.id, w.host, `${w.slots.free}/${w.slots.total}`, String(w.runningJobs.length), formatBytes(w.cachedBytes), timeAgo(w.lastHeartbeat)]);
    await write(ctx.stdout, table(['WORKER ID', 'HOST', 'FREE SLOTS', 'RUNNING', 'CACHED', 'LAST HEARTBEAT'], rows));
    return 0;
  },
};
