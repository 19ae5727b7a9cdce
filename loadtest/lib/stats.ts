/** Order statistics the benches report. */

/** The value `p`% of the way up the sorted values (nearest rank, from below); NaN for none. */
export function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Rounded to two decimals, as the benches print figures. */
export const r2 = (x: number): number => Math.round(x * 100) / 100;

/** The middle value (the upper one of an even count): percentile 50. */
export const median = (xs: number[]): number => percentile(xs, 50);

/** The middle value, or the mean of the two middle ones of an even count. */
export function midpointMedian(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
