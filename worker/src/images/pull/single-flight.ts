/**
 * Concurrent calls with the same key share one run of the work; the next call after it settles runs
 * anew. Runs are refcounted by their callers: a call whose signal aborts stops waiting at once (it
 * rejects with the signal's reason), and when no caller waits any more the run's own signal aborts
 * and the run is forgotten (a later call starts a new one). A call without a signal keeps its run
 * wanted until it settles.
 */

/** The reason a run's signal aborts with when every caller stopped waiting. */
export class AbandonedError extends Error {
  constructor() {
    super('nobody waits for this any more');
    this.name = 'AbandonedError';
  }
}

interface Flight<V> {
  promise: Promise<V>;
  controller: AbortController;
  /** Callers with a signal still waiting. */
  waiters: number;
  /** A caller without a signal joined: never abandoned. */
  pinned: boolean;
}

export class SingleFlight<V> {
  private readonly running = new Map<string, Flight<V>>();
  /** Every run not settled yet, abandoned ones included (for idle()). */
  private readonly unsettled = new Set<Promise<V>>();

  run(key: string, work: (signal: AbortSignal) => Promise<V>, signal?: AbortSignal): Promise<V> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const flight = this.running.get(key) ?? this.start(key, work);
    if (!signal) {
      flight.pinned = true;
      return flight.promise;
    }
    flight.waiters++;
    return new Promise<V>((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason);
        if (--flight.waiters === 0 && !flight.pinned) this.abandon(key, flight);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  get size(): number {
    return this.running.size;
  }

  /** Settles when every run started so far has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.unsettled]);
  }

  private start(key: string, work: (signal: AbortSignal) => Promise<V>): Flight<V> {
    const controller = new AbortController();
    let started: Promise<V>;
    try {
      started = work(controller.signal);
    } catch (e) {
      started = Promise.reject(e);
    }
    const flight: Flight<V> = { promise: started, controller, waiters: 0, pinned: false };
    const settled = started.finally(() => {
      if (this.running.get(key) === flight) this.running.delete(key);
      this.unsettled.delete(settled);
    });
    settled.catch(() => {}); // an abandoned run's failure reaches nobody
    flight.promise = settled;
    this.running.set(key, flight);
    this.unsettled.add(settled);
    return flight;
  }

  private abandon(key: string, flight: Flight<V>): void {
    if (this.running.get(key) === flight) this.running.delete(key);
    flight.controller.abort(new AbandonedError());
  }
}
