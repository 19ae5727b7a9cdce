/**
 * limits.outputIdleTimeoutMs: a job that writes nothing to stdout, stderr or its terminal for that
 * long is killed, and ends `timeout` with error.code output_idle_timeout (OUTPUT_IDLE_END). The
 * time of the last output is noted on each chunk; one timer, re-armed only when it fires early,
 * checks it (no timer work per chunk of a chatty job).
 */
import type { Readable } from 'node:stream';

export const outputIdleEnd = (ms: number) => ({
  status: 'timeout' as const,
  error: { code: 'output_idle_timeout', message: `the job wrote no output for limits.outputIdleTimeoutMs (${ms} ms)` },
});

export interface SilenceWatch {
  /** The job was killed for its silence. */
  readonly silencedOut: boolean;
  stop(): void;
}

export function watchSilence(streams: readonly Readable[], ms: number | undefined, kill: () => void): SilenceWatch | null {
  if (!ms) return null;
  let last = performance.now();
  let silencedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const noteOutput = (): void => {
    last = performance.now();
  };
  for (const s of streams) s.on('data', noteOutput);
  const check = (): void => {
    const quietFor = performance.now() - last;
    if (quietFor >= ms) {
      silencedOut = true;
      kill();
      return;
    }
    timer = setTimeout(check, ms - quietFor);
  };
  timer = setTimeout(check, ms);
  return {
    get silencedOut() { return silencedOut; },
    stop() {
      clearTimeout(timer);
      for (const s of streams) s.off('data', noteOutput);
    },
  };
}
