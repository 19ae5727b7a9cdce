/**
 * What a job takes from its image's config (Entrypoint, Cmd, Env, WorkingDir) passes the rules that
 * a request's own command, env and workdir pass at the API (core/src/job-spec.ts). The launcher
 * refuses the same values, but as the request's fault (invalid_request, "spec `env: items must be
 * K=V`"); checked here, before the launch, each problem is the image's: invalid_image, naming the
 * config field and the value. Values the request replaced are not looked at (as Docker ignores an
 * image Cmd that `docker run` replaces).
 */
import { InvalidImageError, InvalidRequestError } from '../../../core/src/errors.ts';
import { isInsideProc, LONE_SURROGATE, PATH_MAX_BYTES } from '../../../core/src/job-spec.ts';
import { UnenterableWorkdirError } from '../launch-errors.ts';
import { UnresolvableUserError } from './image-user.ts';

/** The image's values a job runs with (after the request's replacements); null: not the image's. */
export interface ImageValuesUsed {
  entrypoint: readonly string[];
  cmd: readonly string[];
  env: readonly string[];
  workingDir: string | null;
}

const shown = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

/** Why `s` cannot reach the job byte for byte, or null. */
function stringProblem(s: string): string | null {
  if (s.includes('\0')) return 'contains a NUL byte';
  if (LONE_SURROGATE.test(s)) return 'is not well-formed Unicode (a lone surrogate has no UTF-8 form)';
  return null;
}

/** The first problem of the image's values, as the message's end ("its config's Env item 2 …"), or null. */
function firstProblem(used: ImageValuesUsed): string | null {
  for (const field of ['entrypoint', 'cmd'] as const) {
    const name = field === 'entrypoint' ? 'Entrypoint' : 'Cmd';
    for (const [i, arg] of used[field].entries()) {
      const problem = stringProblem(arg);
      if (problem) return `its config's ${name} item ${i} ${problem}`;
    }
  }
  const program = used.entrypoint[0] ?? used.cmd[0];
  if (program === '') return `its config's ${used.entrypoint.length > 0 ? 'Entrypoint' : 'Cmd'} names no program (its first item is empty)`;
  for (const [i, entry] of used.env.entries()) {
    const problem = stringProblem(entry) ?? (entry.indexOf('=') > 0 ? null : 'is not NAME=value');
    if (problem) return `its config's Env item ${i} ${shown(entry)} ${problem}`;
  }
  if (used.workingDir !== null) {
    const dir = used.workingDir;
    const problem = stringProblem(dir)
      ?? (Buffer.byteLength(dir, 'utf8') > PATH_MAX_BYTES ? `is longer than ${PATH_MAX_BYTES} bytes` : null)
      ?? (isInsideProc(dir) ? 'is inside /proc, where no job may start' : null);
    if (problem) return `its config's WorkingDir ${shown(dir)} ${problem}`;
  }
  return null;
}

/** Throws invalid_image naming the first of the image's values that no job could start with. */
export function checkImageValues(reference: string, used: ImageValuesUsed): void {
  const problem = firstProblem(used);
  if (problem) throw new InvalidImageError(reference, `${problem}; a job's request can replace it (command, entrypoint, env, workdir)`);
}

/** The program to run is the request's and empty: its command's or entrypoint's first item. */
export function checkProgram(argv: readonly string[], from: 'command' | 'entrypoint'): void {
  if (argv[0] !== '') return;
  const message = `the first item of ${from} (the program to run) is empty`;
  throw new InvalidRequestError(message, [{ path: from, message }]);
}

/** The image's own User could not be resolved (UnresolvableUserError): the image's fault, said so. */
export function imageUserError(reference: string, e: unknown): unknown {
  if (!(e instanceof UnresolvableUserError)) return e;
  return new InvalidImageError(reference, `its config's User ${shown(e.user)}: ${e.detail}; a job's request can replace it (user)`, e);
}

/** The launcher could not make the image's WorkingDir the job's (its `cwd` stage): the image's fault, said so. */
export function imageWorkdirError(reference: string, e: unknown): unknown {
  if (!(e instanceof UnenterableWorkdirError)) return e;
  return new InvalidImageError(reference, `its config's WorkingDir ${e.reason}; a job's request can replace it (workdir)`, e);
}
