/**
 * A command line that gets SIGTERM when the process that started it dies, however it dies (setpriv
 * --pdeathsig; util-linux). The harness starts its redis-servers, registries, APIs and workers so:
 * a test or bench that crashes, or is killed, leaves none of them running.
 */
export function diesWithParent(command: string, args: string[]): [string, string[]] {
  return ['setpriv', ['--pdeathsig', 'SIGTERM', command, ...args]];
}
