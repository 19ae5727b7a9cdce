/**
 * The terminal side of `sbx run -i/-t` and `sbx attach`: a WebSocket to the job (client attachJob),
 * our stdin streamed to it (awaiting each write: bounded memory for any size of input), its output
 * to our stdout/stderr. With a tty on both ends our terminal goes to raw mode (so Ctrl-C, Ctrl-Z,
 * Ctrl-D are bytes for the job's terminal, which turns them into signals for its foreground
 * process) and is restored on every way out: normal end, error, SIGTERM/SIGHUP, process exit.
 * Window changes (SIGWINCH) are forwarded as resizes. The detach keys (ctrl-p,ctrl-q by default)
 * typed on a raw terminal detach us and leave the job running.
 */
import { attachJob, type Job } from '../../client/src/index.ts';
import { flagString, type FlagSpec, type Parsed } from './args.ts';
import { CliError, UsageError } from './cli-error.ts';
import { OutputClosedError, write, type Context } from './command.ts';
import { DEFAULT_DETACH_KEYS, DetachWatch, parseDetachKeys } from './detach-keys.ts';
import { endNotes, exitCodeOf } from './exit-code.ts';

export interface InteractiveOptions {
  /** Stream our stdin to the job (its stdin is open). */
  stdin: boolean;
  /** The job has a tty: raw mode here when our stdin is a terminal, forward window sizes. */
  tty: boolean;
  /**
   * The job takes signals (its stdin is open or it has a tty): our SIGINT, SIGTERM and SIGHUP go to
   * its command, like docker's --sig-proxy; otherwise they only detach us.
   */
  signals: boolean;
  /** Replay output from the job's start (run), or only from now (attach). */
  logs: boolean;
  /** The detach sequence (detach-keys.ts), watched for on a raw terminal; null = none. */
  detachKeys?: Buffer | null;
  /**
   * For a job this command started (`sbx run -i`): ends it when nobody can be on it, that is when
   * the attach is refused or our output is closed (`| head`). Not for `sbx attach`.
   */
  unattached?: () => Promise<void>;
}

type TtyIn = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(on: boolean): unknown; pause(): unknown; resume(): unknown };
type TtyOut = NodeJS.WritableStream & { isTTY?: boolean; rows?: number; columns?: number };

export async function interactive(ctx: Context, jobId: string, o: InteractiveOptions): Promise<number> {
  const stdin = ctx.stdin as TtyIn;
  const stdout = ctx.stdout as TtyOut;
  const raw = o.tty && o.stdin && !!stdin.isTTY && typeof stdin.setRawMode === 'function';
  // Output is written in order; the first failed write (our output closed) ends the session.
  let pending: Promise<void> = Promise.resolve();
  let failOutput!: (e: unknown) => void;
  const outputFailed = new Promise<never>((_resolve, reject) => { failOutput = reject; });
  outputFailed.catch(() => {}); // observed by the race below
  let att: Awaited<ReturnType<typeof attachJob>>;
  try {
    att = await attachJob(jobId, {
      baseUrl: ctx.settings.host,
      apiKey: ctx.settings.apiKey,
      logs: o.logs,
      onOutput: (stream, data) => {
        const text = data.toString('utf8');
        pending = pending.then(() => write(stream === 'stdout' ? ctx.stdout : ctx.stderr, text)).catch((e: unknown) => failOutput(e));
      },
    });
  } catch (e) {
    await o.unattached?.();
    throw e;
  }
  const restore = raw ? rawMode(stdin) : () => {};
  const onSignal = (sig: NodeJS.Signals) => () => {
    if (o.signals) att.signal(sig); // like docker's --sig-proxy: to the job's command
    else att.close();
  };
  // On a raw terminal Ctrl-C is a byte, so a SIGINT comes from elsewhere (kill -INT): it too goes to
  // the job, and the terminal is not left raw by Node's default of dying.
  const handlers: Array<[NodeJS.Signals, () => void]> = [['SIGTERM', onSignal('SIGTERM')], ['SIGHUP', onSignal('SIGHUP')], ['SIGINT', onSignal('SIGINT')]];
  for (const [s, h] of handlers) process.on(s, h);
  const onWinch = () => att.resize(stdout.rows ?? 0, stdout.columns ?? 0);
  if (o.tty && stdout.isTTY) {
    process.on('SIGWINCH', onWinch);
    onWinch();
  }
  let pumping = true;
  // Detach keys on a raw terminal only, as Docker: typed there, not bytes of piped input.
  const watch = raw && o.detachKeys ? new DetachWatch(o.detachKeys) : null;
  let detach: () => void = () => {};
  const detached = new Promise<'detached'>((resolve) => { detach = () => resolve('detached'); });
  const pump = o.stdin ? (async () => {
    try {
      for await (const chunk of stdin) {
        if (!pumping) break;
        let data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
        const seen = watch?.feed(data);
        if (seen) data = seen.pass;
        if (data.length) await att.write(data);
        if (seen?.detached) return detach();
      }
      if (pumping) att.eof();
    } catch {
      // our stdin went away: the job keeps running, as with docker
    }
  })() : Promise.resolve();
  try {
    const ended = await Promise.race([att.ended, detached, outputFailed]).catch(async (e: unknown) => {
      if (e instanceof OutputClosedError) await o.unattached?.();
      throw e;
    });
    pumping = false;
    await Promise.race([pending, outputFailed]);
    if (ended === 'detached') {
      restore();
      await write(ctx.stderr, `\r\nsbx: detached from job ${jobId}, which runs on; \`sbx attach ${jobId}\` reattaches\n`);
      return 0;
    }
    const job: Job | null = ended;
    if (!job) throw new CliError(`the connection to job ${jobId} closed before it ended; \`sbx attach ${jobId}\` reattaches`, 125);
    restore();
    for (const note of endNotes(job)) await write(ctx.stderr, `sbx: ${note}\n`);
    return exitCodeOf(job);
  } finally {
    restore();
    pumping = false;
    for (const [s, h] of handlers) process.off(s, h);
    process.off('SIGWINCH', onWinch);
    att.close();
    // A pending read on our stdin would keep the process alive after the job ended.
    if (o.stdin) (stdin as { destroy?(): void }).destroy?.();
    void pump;
  }
}

/** Raw mode now; the returned function (idempotent, also run at process exit) restores it. */
function rawMode(stdin: TtyIn): () => void {
  stdin.setRawMode!(true);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    try {
      stdin.setRawMode!(false);
    } catch {
      // the terminal is gone
    }
    process.off('exit', restore);
  };
  process.on('exit', restore);
  return restore;
}

/** `--detach-keys`, as `sbx run` and `sbx attach` declare it. */
export const DETACH_KEYS_FLAG: FlagSpec = { name: 'detach-keys', type: 'string', value: 'string', help: 'Override the key sequence for detaching from a tty job (default ctrl-p,ctrl-q; "" turns it off)' };

/** `--detach-keys` of `command` (Docker's format), or the default; a bad value is a UsageError. */
export function detachKeysFlag(args: Parsed, command: string): Buffer | null {
  try {
    return parseDetachKeys(flagString(args, 'detach-keys') ?? DEFAULT_DETACH_KEYS);
  } catch (e) {
    throw new UsageError(`invalid argument for "--detach-keys" flag: ${(e as Error).message}`, command);
  }
}
