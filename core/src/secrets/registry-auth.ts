/**
 * A job's registryAuth at rest: sealed by the API into the job record's `auth` field (never inside
 * the spec JSON), opened only by the worker that pulls the image, deleted from Redis when the job
 * ends (core/src/lua/transitionJob-2.lua).
 */
import { InvalidRequestError, SbxError } from '../errors.ts';
import type { JobSpec } from '../job-spec.ts';
import { SecretUnsealError, type SecretBox } from './secret-box.ts';

export type RegistryAuth = NonNullable<JobSpec['registryAuth']>;

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

/** The credentials, or an error ending the job without pulling (fails closed: never anonymous instead). */
export function openRegistryAuth(box: SecretBox | null, jobId: string, sealed: string): RegistryAuth {
  const fail = (why: string, cause?: unknown) =>
    new SbxError('registry_unauthorized', `this job's registryAuth cannot be decrypted (${why}); the image was not pulled`, { cause });
  if (!box) throw fail('this worker has no SBX_SECRETS_KEY; give it the same key as the API');
  try {
    const v = JSON.parse(box.open(sealed, context(jobId))) as RegistryAuth;
    return { username: v.username, password: v.password };
  } catch (e) {
    if (e instanceof SecretUnsealError) throw fail('SBX_SECRETS_KEY differs between the API and this worker, or the stored value was altered', e);
    throw e;
  }
}
