/** Concurrent calls with the same key share one run of the work; the next call after it settles runs anew. */
export class SingleFlight<V> {
  private readonly running = new Map<string, Promise<V>>();

  run(key: string, work: () => Promise<V>): Promise<V> {
    const existing = this.running.get(key);
    if (existing) return existing;
    const promise = work().finally(() => this.running.delete(key));
    this.running.set(key, promise);
    return promise;
  }

  get size(): number {
    return this.running.size;
  }

  /** Settles when every run started so far has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }
}
