/** The name of an errno value (`2` → "ENOENT"); undefined for 0. */
import util from 'node:util';

/** Linux errnos libuv has no name for, which the launcher can still report (execve's ELIBBAD, say). */
const LINUX_ONLY: Record<number, string> = { 79: 'ELIBACC', 80: 'ELIBBAD', 81: 'ELIBSCN', 82: 'ELIBMAX', 83: 'ELIBEXEC' };

export function errnoName(errno: number | undefined): string | undefined {
  if (!errno) return undefined;
  const known = LINUX_ONLY[errno];
  if (known) return known;
  let name: string;
  try {
    name = util.getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
  return name.startsWith('Unknown system error') ? `errno ${errno}` : name;
}
