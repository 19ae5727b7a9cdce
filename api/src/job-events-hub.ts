/**
 * One Redis subscriber connection per API process, shared by every request that waits on a job
 * (SSE streams, ?wait=true). Workers PUBLISH a ping on `<job>:notify` after each append; data is
 * always read from the job's stream, so a missed ping only delays, never loses, an event.
 * Jobs created with ?wait=true name this process's inbox channel as their waiter instead
 * (openInbox, listenInbox): their final transition pings the inbox with the job's channel, so such
 * a wait costs no SUBSCRIBE/UNSUBSCRIBE.
 * Followers of one job share their reads of its stream (sharedRead): the followers a ping wakes ask
 * for the same events at once, and Redis is asked once, not once per follower (P45).
 */
import type { RedisClient } from '../../core/src/redis.ts';

/** Called with the ping's payload: the type of what was appended ('status', 'output', 'exit'). */
type Listener = (what: string) => void;
/** Woken by the inbox: `ended` is the job's end as the final transition sent it (JSON), when it did. */
type InboxListener = (what: 'exit', ended?: string) => void;

/** A subscribed channel: its listeners, how many pings it has had, and the reads in flight for it. */
interface Channel {
  listeners: Set<Listener>;
  pings: number;
  /** By the read's key (where it starts): the read and the channel's ping count when it went out. */
  reads: Map<string, { result: Promise<unknown>; pings: number }>;
}

export class JobEventsHub {
  private readonly channels = new Map<string, Channel>();
  /** Job notify channel → listeners woken by the inbox ('exit' only). */
  private readonly inboxListeners = new Map<string, Set<InboxListener>>();
  /** This process's inbox channel, once subscribed (openInbox). */
  inbox: string | null = null;

  constructor(private readonly sub: RedisClient) {
    sub.on('message', (channel: string, what: string) => {
      if (channel === this.inbox) {
        // '<job channel>', or '<job channel>\n<the end: {"doc","callback"?,"output"}>' (transitionJob-2.lua)
        const nl = what.indexOf('\n');
        const job = nl === -1 ? what : what.slice(0, nl);
        const ended = nl === -1 ? undefined : what.slice(nl + 1);
        for (const l of this.inboxListeners.get(job) ?? []) l('exit', ended);
        return;
      }
      const ch = this.channels.get(channel);
      if (!ch) return;
      ch.pings++;
      for (const l of ch.listeners) l(what);
    });
  }

  /** Subscribe this process's inbox (a channel of its own); resolves once Redis confirmed. */
  async openInbox(channel: string): Promise<void> {
    await this.sub.subscribe(channel);
    this.inbox = channel;
  }

  /**
   * openInbox(), and again until Redis confirms it: at the subscriber's next `ready` when it is not
   * connected (an API started before its Redis), else after a wait that doubles from 1 s to 60 s.
   * Until then ?wait=true subscribes per job. Before, a first try that failed was never made again,
   * and every wait of that API's life paid a SUBSCRIBE and an UNSUBSCRIBE. `onFailure`: each failed try.
   */
  keepInbox(channel: string, onFailure: (err: Error) => void): void {
    let waitMs = 1_000;
    const attempt = (): void => {
      this.openInbox(channel).catch((err: Error) => {
        onFailure(err);
        if (this.sub.status !== 'ready') return void this.sub.once('ready', attempt);
        setTimeout(attempt, waitMs).unref();
        waitMs = Math.min(waitMs * 2, 60_000);
      });
    };
    attempt();
  }

  /**
   * Wake `listener` with 'exit' when a job created with this inbox as its waiter ends (`channel`: the
   * job's notify channel). Synchronous: no Redis command. Returns the removal.
   */
  listenInbox(channel: string, listener: InboxListener): () => void {
    let set = this.inboxListeners.get(channel);
    if (!set) this.inboxListeners.set(channel, (set = new Set()));
    set.add(listener);
    return () => {
      const s = this.inboxListeners.get(channel);
      if (s?.delete(listener) && s.size === 0) this.inboxListeners.delete(channel);
    };
  }

  /** Subscribe `listener` to a channel; resolves once Redis confirmed. Returns the unsubscribe. */
  async watch(channel: string, listener: Listener): Promise<() => void> {
    let ch = this.channels.get(channel);
    if (!ch) {
      ch = { listeners: new Set([listener]), pings: 0, reads: new Map() };
      this.channels.set(channel, ch);
      try {
        await this.sub.subscribe(channel);
      } catch (e) {
        ch.listeners.delete(listener);
        if (ch.listeners.size === 0 && this.channels.get(channel) === ch) this.channels.delete(channel);
        throw e;
      }
    } else {
      ch.listeners.add(listener);
    }
    const watched = ch;
    return () => {
      if (!watched.listeners.delete(listener) || watched.listeners.size > 0) return;
      if (this.channels.get(channel) === watched) this.channels.delete(channel);
      this.sub.unsubscribe(channel).catch(() => {});
    };
  }

  /**
   * `read()` of a watched channel's job, shared: a caller asking with the same `key` (where the read
   * starts) while one is in flight gets that one's result, as long as the channel has had no ping
   * since it went out. So the shared result holds every event appended before the caller's own wake-up
   * (a worker appends, then pings). On a channel nobody watches, `read()` itself.
   */
  sharedRead<T>(channel: string, key: string, read: () => Promise<T>): Promise<T> {
    const ch = this.channels.get(channel);
    if (!ch) return read();
    const inFlight = ch.reads.get(key);
    if (inFlight && inFlight.pings === ch.pings) return inFlight.result as Promise<T>;
    const result = read();
    const entry = { result, pings: ch.pings };
    ch.reads.set(key, entry);
    const done = () => {
      if (ch.reads.get(key) === entry) ch.reads.delete(key);
    };
    result.then(done, done);
    return result;
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.inboxListeners.clear();
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

  /**
   * Resolves on a ring (past or future), after `ms`, or when `signal` aborts (at once if it already
   * has: a client gone while its stream read Redis must not hold its place for the whole wait);
   * true if it was a ring.
   */
  wait(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.rung) {
      this.rung = false;
      return Promise.resolve(true);
    }
    if (signal?.aborted) return Promise.resolve(false);
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
