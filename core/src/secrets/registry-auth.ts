/**
 * A job's registryAuth at rest: sealed by the API into the job record's `auth` field (never inside
 * the spec JSON), opened only by the worker that pulls the image, deleted from Redis when the job
 * ends (core/src/lua/transitionJob-2.lua).
 */
import { InvalidRequestError, SbxError } from '../errors.ts';
import { JobSpec } from '../job-spec.ts';
import { unknownIn } from '../schema-unknowns.ts';
import { SecretUnsealError, type SecretBox } from './secret-box.ts';

export type RegistryAuth = NonNullable<JobSpec['registryAuth']>;

/** The opened value as this version reads it: strict, as the rest of the stored request (JobSpec). */
const SealedAuth = JobSpec.shape.registryAuth.unwrap();

/**
 * The sealed registryAuth has fields this version does not know: a newer API accepted and sealed
 * them. The stored spec check (storedSpecProblems) does not see them (the spec holds registryAuth
 * null; the request's value is sealed in the record's `auth` field), so the worker's open of it
 * refuses them here; `unknown` names them (registryAuth.<field>) for WorkerOutdatedError.
 */
export class UnknownAuthFieldsError extends Error {
  constructor(readonly unknown: string[]) {
    super(`the job's registryAuth has fields this version does not know: ${unknown.join(', ')}`);
  }
}

/** Bound to the job: a sealed value copied onto another job's record does not open. */
const context = (jobId: string) => `sbx registryAuth ${jobId}`;

export function sealRegistryAuth(box: SecretBox | null, jobId: string, auth: RegistryAuth): string {
  if (!box) {
    throw new InvalidRequestError('registryAuth cannot be accepted: this server has no SBX_SECRETS_KEY to encrypt it at rest; ask its operator to set one, or use credentials configured on the workers', [
      { path: 'registryAuth', message: 'needs SBX_SECRETS_KEY on the server' },
    ]);
  }
  return box.seal(JSON.stringify({ username: auth.username, password: auth.password }), context(jobId));
}

/**
 * The credentials, or an error ending the job without pulling (fails closed: never anonymous instead).
 * A value with fields this version does not know throws UnknownAuthFieldsError: before, they were
 * dropped and the image pulled with the username and password alone.
 */
export function openRegistryAuth(box: SecretBox | null, jobId: string, sealed: string): RegistryAuth {
  const fail = (why: string, cause?: unknown) =>
    new SbxError('registry_unauthorized', `this job's registryAuth cannot be decrypted (${why}); the image was not pulled`, { cause });
  if (!box) throw fail('this worker has no SBX_SECRETS_KEY; give it the same key as the API');
  let value: unknown;
  try {
    value = JSON.parse(box.open(sealed, context(jobId)));
  } catch (e) {
    if (e instanceof SecretUnsealError) throw fail('SBX_SECRETS_KEY differs between the API and this worker, or the stored value was altered', e);
    throw e;
  }
  const parsed = SealedAuth.safeParse(value);
  if (parsed.success) return { username: parsed.data.username, password: parsed.data.password };
  const unknown = unknownIn(parsed.error.issues, value, 'registryAuth');
  if (unknown.length) throw new UnknownAuthFieldsError(unknown);
  throw fail('it does not hold a username and a password');
}
