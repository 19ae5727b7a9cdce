/**
 * The one place where the native launcher's errors become SbxErrors. launch() rejects with a
 * LaunchError whose `code` is a kind (invalid_spec, command_not_found, host_unsupported,
 * launch_failed) or the errno name of the system call that failed (EPERM, ENOSPC, …); after this
 * mapping the job runner classifies every failure by its SbxError code alone.
 */
import os from 'node:os';
import {
  CommandNotFoundError, HostExhaustedError, HostUnsupportedError, InvalidRequestError, LaunchFailedError, isSbxError, type SbxError,
} from '../../core/src/errors.ts';
import { errnoName, LaunchError } from '../../native/index.ts';
import { exhaustedResource } from './host-exhaustion.ts';

/** `cwd`: the working directory the job was launched with (named by a `cwd` stage's failure). */
export function fromLaunchError(e: unknown, cwd?: string): SbxError {
  if (isSbxError(e)) return e;
  if (!(e instanceof LaunchError)) return new LaunchFailedError(`starting the job failed: ${(e as Error)?.message ?? String(e)}`, e);
  switch (e.code) {
    case 'invalid_spec': // the launcher's own checks on what the job asked (e.g. a workdir its user cannot make)
      if (e.errno === os.constants.errno.E2BIG && e.stage === 'exec-init') return new InvalidRequestError(ARGS_TOO_LONG, [{ path: 'command', message: ARGS_TOO_LONG }]);
      if (e.stage === 'files') return fileNotWritten(e);
      if (e.stage === 'cwd') return new UnenterableWorkdirError(workdirProblem(e, cwd ?? e.path ?? ''));
      return new InvalidRequestError(e.message, e.stage ? [{ path: e.stage, message: e.message }] : []);
    case 'command_not_found':
      return new CommandNotFoundError(e.path ?? '', commandProblem(e.errno));
    case 'host_unsupported':
      return new HostUnsupportedError([e.message]);
    default: { // launch_failed, or an errno name: a system call failed (the cause says which)
      const exhausted = exhaustedResource(errnoName(e.errno), e.syscall);
      if (exhausted) return new HostExhaustedError(exhausted, e);
      return new LaunchFailedError(`starting the job failed: ${e.message}`, e);
    }
  }
}

const FILE_PROBLEMS: Record<string, string> = {
  EACCES: 'the job\'s user may not write there',
  EPERM: 'the job\'s user may not write there',
  EROFS: 'that place is read-only in the job',
  ELOOP: 'the image has a symbolic link there (files are not written through one)',
  ENOENT: 'a directory on its path is missing and cannot be made (a dangling symbolic link in the image?)',
  ENOTDIR: 'a component of its path is not a directory',
  EISDIR: 'a directory is in the way',
  ENOSPC: 'the job\'s disk space (limits.diskBytes) ran out',
  EFBIG: 'the job\'s disk space (limits.diskBytes) ran out',
  EDQUOT: 'the job\'s disk space (limits.diskBytes) ran out',
};

/** An input file (JobRequest.files) that sbx-init could not write, as the job's user, inside the job. */
function fileNotWritten(e: LaunchError): InvalidRequestError {
  const name = errnoName(e.errno);
  const what = e.syscall === 'mkdir' ? `the directory ${JSON.stringify(e.path ?? '')}` : JSON.stringify(e.path ?? '');
  const message = `files: ${what} could not be written in the job: ${(name && FILE_PROBLEMS[name]) ?? 'the write failed'}${name ? ` (${e.syscall} ${name})` : ''}`;
  return new InvalidRequestError(message, [{ path: 'files', message }]);
}

/**
 * The launcher could not make the job's working directory its own (sbx-init's `cwd` stage, as the
 * job's user): the request's fault as `workdir`, or the image's as its WorkingDir
 * (launch/image-values.ts imageWorkdirError). `reason` names the directory and says why, without
 * the field's name: `"/etc/passwd" cannot be the job's working directory: it, or … (chdir ENOTDIR)`.
 */
export class UnenterableWorkdirError extends InvalidRequestError {
  constructor(readonly reason: string) {
    super(`workdir ${reason}`, [{ path: 'workdir', message: reason }]);
  }
}

const CWD_PROBLEMS: Record<string, string> = {
  ENOTDIR: 'it, or a directory on its path, is not a directory',
  EACCES: 'the job\'s user may not enter it',
  EPERM: 'the job\'s user may not enter it',
  ELOOP: 'too many levels of symbolic links',
  ENOENT: 'it does not exist (a dangling symbolic link in the image?)',
  ENAMETOOLONG: 'its path is too long',
};

/** `reason` for a launcher error of the `cwd` stage. */
function workdirProblem(e: LaunchError, cwd: string): string {
  const shown = (path: string) => JSON.stringify(path.length > 120 ? `${path.slice(0, 120)}…` : path);
  const name = errnoName(e.errno);
  const code = name ? ` (${e.syscall} ${name})` : '';
  if (e.syscall === 'mkdir') {
    const step = e.path && e.path !== cwd ? `, ${shown(e.path)} on its path` : '';
    return `${shown(cwd)} is not in the image and could not be made by the job's user${step}: ${(name && FILE_PROBLEMS[name]) ?? 'mkdir failed'}${code}`;
  }
  return `${shown(cwd)} cannot be the job's working directory: ${(name && CWD_PROBLEMS[name]) ?? 'the job cannot start there'}${code}`;
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
  ENAMETOOLONG: 'its name, or its path in a PATH directory, is too long',
  ELIBBAD: 'its program interpreter is not a valid executable',
  EINVAL: 'not a valid executable',
  ETXTBSY: 'it is open for writing',
  EIO: 'it, or its program interpreter, is too short to be an executable',
};

function commandProblem(errno: number | undefined): string | undefined {
  const name = errnoName(errno);
  return name ? `${COMMAND_PROBLEMS[name] ?? 'it cannot be executed'} (${name})` : undefined;
}
