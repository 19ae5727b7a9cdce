/**
 * The exit code of `sbx run` / `sbx wait` for a finished job, by Docker's conventions: the
 * process's own code; 128+n when signal n ended it; 137 (SIGKILL) for oom, a timeout and a kill;
 * 128+n when our own signal n (Ctrl-C: 130, SIGTERM: 143) cancelled it; 126/127 when the command could not be invoked / was not
 * found; 125 when sbx itself could not run it (image not found, pull failed, ...).
 */
import { constants } from 'node:os';
import type { Job } from '../../client/src/index.ts';

export const EXIT_SBX_ERROR = 125;
export const EXIT_CANNOT_INVOKE = 126;
export const EXIT_NOT_FOUND = 127;
const SIGKILL_EXIT = 128 + constants.signals.SIGKILL;

/** Linux's first real-time signal as glibc numbers it (what the worker's launcher names SIGRTMIN+n from). */
const SIGRTMIN = 34;

function signalExit(signal: string | null): number | null {
  if (!signal) return null;
  const n = (constants.signals as Record<string, number>)[signal];
  if (n !== undefined) return 128 + n;
  const rt = /^SIGRTMIN\+(\d+)$/.exec(signal);
  if (rt) return 128 + SIGRTMIN + Number(rt[1]);
  const numbered = /^SIG(\d+)$/.exec(signal);
  return numbered ? 128 + Number(numbered[1]) : null;
}

export function exitCodeOf(job: Job, opts: { interruptedBy?: NodeJS.Signals | null } = {}): number {
  switch (job.status) {
    case 'succeeded':
      return 0;
    case 'failed':
      return signalExit(job.signal) ?? job.exitCode ?? 1;
    case 'oom':
      return SIGKILL_EXIT;
    case 'timeout':
      return signalExit(job.signal) ?? SIGKILL_EXIT;
    case 'cancelled':
      return signalExit(opts.interruptedBy ?? null) ?? signalExit(job.signal) ?? SIGKILL_EXIT;
    case 'error':
      if (job.error?.code === 'command_not_found') return /EACCES|EISDIR|ENOEXEC|permission denied/i.test(job.error.message) ? EXIT_CANNOT_INVOKE : EXIT_NOT_FOUND;
      return EXIT_SBX_ERROR;
    default:
      return EXIT_SBX_ERROR; // not finished: the caller gave up waiting
  }
}

/** What to print on stderr after a job's output: how it ended when not by its own exit, and what of its output was left out. */
export function endNotes(job: Job): string[] {
  const notes: string[] = [];
  const ending = endingNote(job);
  if (ending) notes.push(ending);
  const dropped = job.outputDroppedBytes;
  if (dropped && (dropped.stdout > 0 || dropped.stderr > 0)) {
    const where = job.limits.outputTailBytes ? `between its first ${job.limits.outputBytes - job.limits.outputTailBytes} and last ${job.limits.outputTailBytes} bytes` : `after its first ${job.limits.outputBytes} bytes`;
    notes.push(`job ${job.id}'s output was cut at limits.outputBytes: ${dropped.stdout} bytes of stdout and ${dropped.stderr} of stderr left out, ${where}`);
  } else if (job.outputTruncated) {
    notes.push(`job ${job.id}'s output was cut (its tenant's storage budget for the hour, or limits.outputBytes)`);
  }
  return notes;
}

/** How a job ended when not by its own exit, or null. */
function endingNote(job: Job): string | null {
  switch (job.status) {
    case 'error':
      return `${job.error?.code ?? 'error'}: ${job.error?.message ?? 'the job could not run'}`;
    case 'oom':
      return `job ${job.id} was killed: out of memory (limit ${job.limits.memoryBytes} bytes)`;
    case 'timeout':
      // error: an idle limit (idle_timeout, output_idle_timeout); none: limits.timeoutMs or cpuTimeMs
      return job.error ? `job ${job.id} was killed: ${job.error.message}` : `job ${job.id} was killed: timeout after ${job.limits.timeoutMs} ms`;
    default:
      return null;
  }
}
