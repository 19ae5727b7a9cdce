/** Human tables (Docker's: upper-case headers, columns padded by three spaces) and `--format json`. */
export type Format = 'table' | 'json';

export function parseFormat(value: string | undefined): Format {
  if (value === undefined || value === 'table') return 'table';
  if (value === 'json') return 'json';
  throw new Error(`unsupported --format "${value}": use table or json`);
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Lists as Docker prints them with `--format json`: one JSON object per line. */
export const jsonLines = (items: unknown[]): string => items.map((i) => JSON.stringify(i) + '\n').join('');

export const truncate = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
