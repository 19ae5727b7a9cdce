/**
 * A process's last words go through its logger: an exception nobody caught, or a rejection nobody
 * handled, is logged at fatal level with the logger's error serializer (which leaves out a failed
 * Redis command's arguments: a job's env, stdin, credentials) and the process exits 1, as Node's
 * own handling would. Node's own printer writes every field of the error, those arguments included.
 */
import type { Logger } from './logger.ts';

export function exitOnFatalErrors(logger: Logger): void {
  const die = (what: string) => (err: unknown) => {
    logger.fatal({ err }, what);
    process.exit(1);
  };
  process.on('uncaughtException', die('uncaught exception: exiting'));
  process.on('unhandledRejection', die('unhandled rejection: exiting'));
}
