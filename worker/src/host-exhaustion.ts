/**
 * A system call of the worker's that failed because the host ran out of something (open files,
 * processes): the host's state at that moment, not the job's fault. The job ends `error` /
 * `host_exhausted` (HostExhaustedError), logged as a warning for the operator; before, it ended
 * `internal`, "the worker hit an internal error" (auditor: a worker at RLIMIT_NOFILE 128 with 8
 * slots; EMFILE from the launcher's clone3, socketpair, pipe2 and memfd_create, and from the image
 * cache's marker files).
 */
import { HostExhaustedError } from '../../core/src/errors.ts';

const EXHAUSTED: Record<string, string> = {
  EMFILE: 'open files (EMFILE: the worker process\'s RLIMIT_NOFILE)',
  ENFILE: 'open files (ENFILE: the host\'s fs.file-max)',
};

/** What ran out, when a system call failed with errno `name`: a clone's EAGAIN is a pids limit (the worker's cgroup's or the host's). */
export function exhaustedResource(name: string | undefined, syscall?: string): string | null {
  if (name === 'EAGAIN' && /^(clone|fork)/.test(syscall ?? '')) return 'processes (EAGAIN: a pids limit of the worker\'s cgroup, or the host\'s)';
  return (name && EXHAUSTED[name]) ?? null;
}

/** A Node.js system-call error (EMFILE opening a file, say) that says the host ran out, as a HostExhaustedError; else null. */
export function hostExhausted(e: unknown): HostExhaustedError | null {
  const err = e as NodeJS.ErrnoException | null;
  const resource = typeof err?.code === 'string' && typeof err.syscall === 'string' ? exhaustedResource(err.code, err.syscall) : null;
  return resource ? new HostExhaustedError(resource, e) : null;
}
