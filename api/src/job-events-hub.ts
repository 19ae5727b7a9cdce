/**
 * One Redis subscriber connection per API process, shared by every request that waits on a job
 * (SSE streams, ?wait=true). Workers PUBLISH a ping on `<job>:notify` after each append; data is
 * always read from the job's stream, so a missed ping only delays, never loses, an event.
 */
import type { RedisClient } from '../../core/src/redis.ts';

/** Called with the ping's payload: the type of what was appended ('status', 'output', 'exit'). */
type Listener = (what: string) => void;

export class JobEventsHub {
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(private readonly sub: RedisClient) {
    sub.on('message', (channel: string, what: string) => {
      for (const l of this.listeners.get(channel) ?? []) l(what);
    });
  }

  /** Subscribe `listener` to a channel; resolves once Redis confirmed. Returns the unsubscribe. */
  async watch(channel: string, listener: Listener): Promise<() => void> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      set.add(listener);
      try {
        await this.sub.subscribe(channel);
      } catch (e) {
        set.delete(listener);
        if (set.size === 0) this.listeners.delete(channel);
        throw e;
      }
    } else {
      set.add(listener);
    }
    return () => {
      const s = this.listeners.get(channel);
      if (!s?.delete(listener) || s.size > 0) return;
      this.listeners.delete(channel);
      this.sub.unsubscribe(channel).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.sub.disconnect();
  }
}

/**
 * A ping latch: `ring()` wakes the current `wait()`, or the next one if nobody waits yet, so a ping
 * that arrives between reading the stream and waiting again is never lost.
 */
export class Doorbell {
  private rung = false;
  private wake: (() => void) | null = null;

  ring = (): void => {
    if (this.wake) this.wake();
    else this.rung = true;
  };

  /** Resolves on a ring (past or future) or after `ms`; true if it was a ring. */
  wait(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.rung) {
      this.rung = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const finish = (rang: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.wake = null;
        resolve(rang);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), ms);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wake = () => finish(true);
    });
  }
}
