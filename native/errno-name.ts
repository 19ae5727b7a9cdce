/** The name of an errno value (`2` → "ENOENT"); undefined for 0 or a number the platform does not know. */
import util from 'node:util';

export function errnoName(errno: number | undefined): string | undefined {
  if (!errno) return undefined;
  try {
    return util.getSystemErrorName(-errno);
  } catch {
    return undefined;
  }
}
