/** Order statistics the worker benches report. */

/** The middle value (the upper one of an even count). */
export const median = (xs: number[]): number => percentile(xs, 50);

/** The value `p`% of the way up the sorted values (nearest rank, from below). */
export function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
