/**
 * A set of TCP ports as an operator writes it: '*' (every port) or a comma list of ports and
 * ranges, e.g. '80,443,8000-8999' (SBX_JOB_EGRESS_PORTS).
 */
export interface PortSet {
  /** Whether `port` is in the set. */
  has(port: number): boolean;
  /** The set as written back ('*' or '80,443,8000-8999'), for messages. */
  readonly text: string;
}

const RANGE = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;
const isPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;

/** The set, or null when `text` is not '*' nor a list of ports and ranges within 1-65535. */
export function parsePortSet(text: string): PortSet | null {
  const trimmed = text.trim();
  if (trimmed === '*') return { has: isPort, text: '*' };
  const ranges: [number, number][] = [];
  for (const part of trimmed.split(',').map((p) => p.trim())) {
    const m = RANGE.exec(part);
    if (!m) return null;
    const low = Number(m[1]);
    const high = m[2] === undefined ? low : Number(m[2]);
    if (!isPort(low) || !isPort(high) || high < low) return null;
    ranges.push([low, high]);
  }
  if (ranges.length === 0) return null;
  return {
    has: (port) => ranges.some(([low, high]) => port >= low && port <= high),
    text: ranges.map(([low, high]) => (low === high ? `${low}` : `${low}-${high}`)).join(','),
  };
}
