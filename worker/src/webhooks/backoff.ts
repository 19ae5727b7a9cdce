/**
 * When to try a webhook again: `base` after the first attempt, doubling each time, never more than
 * `max`, plus up to 10 % jitter (receivers coming back from an outage are not hit by every retry in
 * the same millisecond); null once the next attempt would fall past the retry window.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** Retries stop this long after the first attempt was queued. */
  retryForMs: number;
}

export function nextAttemptDelay(policy: BackoffPolicy, attemptsMade: number, firstAt: number, now = Date.now(), random = Math.random): number | null {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attemptsMade - 1, 40));
  const delay = Math.round(exp * (1 + 0.1 * random()));
  return now + delay - firstAt <= policy.retryForMs ? delay : null;
}
