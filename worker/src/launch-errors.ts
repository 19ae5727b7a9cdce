/**
 * The one place where the native launcher's errors become SbxErrors. launch() rejects with a
 * LaunchError whose `code` is a kind (invalid_spec, command_not_found, host_unsupported,
 * launch_failed) or the errno name of the system call that failed (EPERM, ENOSPC, …); after this
 * mapping the job runner classifies every failure by its SbxError code alone.
 */
import os from 'node:os';
import util from 'node:util';
import {
  CommandNotFoundError, HostUnsupportedError, InvalidRequestError, LaunchFailedError, isSbxError, type SbxError,
} from '../../core/src/errors.ts';
import { LaunchError } from '../../native/index.ts';

export function fromLaunchError(e: unknown): SbxError {
  if (isSbxError(e)) return e;
  if (!(e instanceof LaunchError)) return new LaunchFailedError(`starting the job failed: ${(e as Error)?.message ?? String(e)}`, e);
  switch (e.code) {
    case 'invalid_spec': // the launcher's own checks on what the job asked (e.g. a workdir the image lacks)
      if (e.errno === os.constants.errno.E2BIG && e.stage === 'exec-init') return new InvalidRequestError(ARGS_TOO_LONG, [{ path: 'command', message: ARGS_TOO_LONG }]);
      return new InvalidRequestError(e.message, e.stage ? [{ path: e.stage, message: e.message }] : []);
    case 'command_not_found':
      return new CommandNotFoundError(e.path ?? '', commandProblem(e.errno));
    case 'host_unsupported':
      return new HostUnsupportedError([e.message]);
    default: // launch_failed, or an errno name: a system call failed (the cause says which)
      return new LaunchFailedError(`starting the job failed: ${e.message}`, e);
  }
}

/** The request's own strings are bounded by the API (EXEC_BOUNDS); the image's env and entrypoint add to them. */
const ARGS_TOO_LONG = 'the command\'s arguments and environment, with the image\'s own, are longer than the kernel lets a program start with (E2BIG: each string under 128 KiB, all together under 2 MiB)';

const COMMAND_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file in the image',
  EACCES: 'not executable (permission denied)',
  ENOEXEC: 'not in an executable format',
  ENOTDIR: 'a component of its path is not a directory',
  ELOOP: 'too many levels of symbolic links',
  EISDIR: 'it is a directory',
};

function commandProblem(errno: number | undefined): string | undefined {
  if (!errno) return undefined;
  let name: string;
  try {
    name = util.getSystemErrorName(-errno);
  } catch {
    return undefined;
  }
  return `${COMMAND_PROBLEMS[name] ?? 'it cannot be executed'} (${name})`;
}
