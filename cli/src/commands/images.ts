/** `sbx images`, `sbx pull IMAGE`, `sbx rmi IMAGE|DIGEST`: the workers' image caches. */
import { flagBool, flagString } from '../args.ts';
import { UsageError } from '../cli-error.ts';
import { FORMAT_FLAG, write, type Command } from '../command.ts';
import { jsonLines, parseFormat, table } from '../output.ts';
import { formatBytes, timeAgo } from '../units.ts';

export const images: Command = {
  name: 'images',
  usage: 'images [OPTIONS]',
  summary: 'List the images cached on the workers',
  flags: [
    { name: 'quiet', short: 'q', type: 'boolean', help: 'Only show digests' },
    { name: 'no-trunc', type: 'boolean', help: "Don't truncate output" },
    FORMAT_FLAG,
  ],
  async run(ctx, args) {
    const format = parseFormat(flagString(args, 'format'));
    const rows = await ctx.client().images();
    if (flagBool(args, 'quiet')) {
      await write(ctx.stdout, [...new Set(rows.map((r) => r.digest))].map((d) => `${d}\n`).join(''));
      return 0;
    }
    if (format === 'json') {
      await write(ctx.stdout, jsonLines(rows));
      return 0;
    }
    const noTrunc = flagBool(args, 'no-trunc');
    await write(
      ctx.stdout,
      table(
        ['REPOSITORY', 'TAG', 'DIGEST', 'SIZE', 'WORKERS', 'LAST USED'],
        rows.map((r) => {
          const { repository, tag } = splitTag(r.image);
          return [repository, tag, noTrunc ? r.digest : r.digest.slice(0, 19), formatBytes(r.sizeBytes), String(r.workers.length), timeAgo(r.lastUsedAt)];
        }),
      ),
    );
    return 0;
  },
};

function splitTag(ref: string): { repository: string; tag: string } {
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) return { repository: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repository: name, tag: '<none>' };
}

export const pull: Command = {
  name: 'pull',
  usage: 'pull IMAGE',
  summary: 'Pre-pull an image on every live worker (asynchronously)',
  flags: [FORMAT_FLAG],
  async run(ctx, args) {
    const [image, ...extra] = args.positionals;
    if (!image || extra.length) throw new UsageError('"sbx pull" requires exactly 1 argument.\nUsage: sbx pull IMAGE', 'pull');
    const res = await ctx.client().pull(image);
    if (parseFormat(flagString(args, 'format')) === 'json') {
      await write(ctx.stdout, `${JSON.stringify(res)}\n`);
      return 0;
    }
    await write(ctx.stdout, `${res.image ?? image}: pulling on ${res.workers.length} worker${res.workers.length === 1 ? '' : 's'}${res.workers.length ? ` (${res.workers.join(', ')})` : ''}\n`);
    return 0;
  },
};

export const rmi: Command = {
  name: 'rmi',
  usage: 'rmi IMAGE|DIGEST [IMAGE|DIGEST...]',
  summary: "Remove images from the workers' caches (not while a running job uses them)",
  flags: [],
  async run(ctx, args) {
    if (args.positionals.length === 0) throw new UsageError('"sbx rmi" requires at least 1 argument.\nUsage: sbx rmi IMAGE|DIGEST [IMAGE|DIGEST...]', 'rmi');
    let failed = 0;
    for (const ref of args.positionals) {
      try {
        for (const r of await ctx.client().rmi(ref)) await write(ctx.stdout, `Deleted: ${r.digest}\n`);
      } catch (e) {
        failed++;
        await write(ctx.stderr, `sbx: ${(e as Error).message}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};
