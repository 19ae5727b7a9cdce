/**
 * limits.outputIdleTimeoutMs: a job that writes nothing to stdout, stderr or its terminal for that
 * long is killed, and ends `timeout` with error.code output_idle_timeout (outputIdleEnd). The output
 * sink notes the time of each chunk (RedisOutputSink.lastOutputAt); one timer, re-armed only when it
 * fires early, checks it (no timer work per chunk of a chatty job).
 */
export const outputIdleEnd = (ms: number) => ({
  status: 'timeout' as const,
  error: { code: 'output_idle_timeout', message: `the job wrote no output for limits.outputIdleTimeoutMs (${ms} ms)` },
});

export interface SilenceWatch {
  /** The job was killed for its silence. */
  readonly silencedOut: boolean;
  stop(): void;
}

/** `lastOutputAt`: the output sink's time of the job's latest byte (null: none yet, counted from now). */
export function watchSilence(lastOutputAt: () => number | null, ms: number | undefined, end: () => void): SilenceWatch | null {
  if (!ms) return null;
  const since = Date.now();
  let silencedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    const quietFor = Date.now() - (lastOutputAt() ?? since);
    if (quietFor >= ms) {
      silencedOut = true;
      end();
      return;
    }
    timer = setTimeout(check, ms - quietFor);
  };
  timer = setTimeout(check, ms);
  return {
    get silencedOut() { return silencedOut; },
    stop() {
      clearTimeout(timer);
    },
  };
}
