/**
 * Checks on a job's callbackUrl at submission, where the server's settings are known: the tenant
 * must have a webhook secret (a webhook is never sent unsigned), and plain http is only for a host
 * the egress allow-list names (SBX_EGRESS_ALLOW: an internal receiver the operator chose). Whether
 * the address is reachable at all is the egress policy's call at delivery time (on the address
 * actually connected to), so an https URL naming a private address is accepted here and ends as a
 * visible egress_refused attempt.
 */
import { webhookSecretFor, type Env } from '../config.ts';
import { InvalidRequestError } from '../errors.ts';
import { normalizeHostName, type EgressAllowEntry } from '../egress/egress-allow.ts';
import { bareAddress, inPrefix, parseIp, unmapped } from '../egress/ip-address.ts';

/** Whether an allow-list entry names this host (a name entry) or its IP literal (a network entry) and port. */
export function allowListNames(entries: readonly EgressAllowEntry[], host: string, port: number): boolean {
  const ip = parseIp(bareAddress(host));
  return entries.some((e) => {
    if (e.port !== null && e.port !== port) return false;
    if (e.kind === 'name') return ip === null && normalizeHostName(bareAddress(host)) === e.name;
    return ip !== null && inPrefix(unmapped(ip), e.network, e.prefix);
  });
}

export function checkCallbackUrl(callbackUrl: string | undefined, tenant: string, env: Pick<Env, 'SBX_WEBHOOK_SECRETS' | 'SBX_EGRESS_ALLOW'>): void {
  if (callbackUrl === undefined) return;
  const bad = (message: string) => new InvalidRequestError(`callbackUrl ${message}`, [{ path: 'callbackUrl', message }]);
  if (webhookSecretFor(env, tenant) === null) {
    throw bad(`cannot be used: no webhook secret is configured for tenant ${tenant} (SBX_WEBHOOK_SECRETS, or webhookSecret in its API key entry)`);
  }
  const url = new URL(callbackUrl);
  if (url.protocol === 'http:') {
    const port = Number(url.port) || 80;
    if (!allowListNames(env.SBX_EGRESS_ALLOW, url.hostname, port)) {
      throw bad(`must be https://; http:// only for hosts this server allow-lists (SBX_EGRESS_ALLOW), and ${url.host} is not one`);
    }
  }
}
