/**
 * A count per key (a manifest or layer digest): how many holds, pins or pending releases it has.
 * A key whose count drops to 0 is forgotten, so keys() lists only what is held.
 */
export class HoldCounts {
  private readonly counts = new Map<string, number>();

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  keys(): string[] {
    return [...this.counts.keys()];
  }

  /** One more for `key`; returns its count now. */
  add(key: string): number {
    const count = this.count(key) + 1;
    this.counts.set(key, count);
    return count;
  }

  /** One less for `key`; returns its count now, or null when it had none (nothing changed). */
  remove(key: string): number | null {
    const count = this.counts.get(key);
    if (count === undefined) return null;
    if (count > 1) this.counts.set(key, count - 1);
    else this.counts.delete(key);
    return count - 1;
  }

  clear(): void {
    this.counts.clear();
  }
}
