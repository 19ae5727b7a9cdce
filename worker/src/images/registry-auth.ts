/**
 * Answers registry auth challenges (WWW-Authenticate): Basic with the configured credentials, or the
 * Bearer token flow of the distribution token spec (GET realm?service=&scope=, anonymous or with
 * Basic credentials). Tokens are cached per scope until shortly before they expire.
 */
import { RegistryUnauthorizedError } from '../../../core/src/errors.ts';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** What the auth needs from the transport: a GET that returns status, headers and a capped body. */
export type TokenFetcher = (url: URL, headers: Record<string, string>, signal?: AbortSignal) => Promise<{ status: number; body: string }>;

/** Tokens without expires_in live 60 s (token spec); renew a little early. */
const DEFAULT_TOKEN_SECONDS = 60;
const RENEW_EARLY_MS = 5_000;

/** Parses `Bearer realm="…",service="…",scope="…"` (one or several challenges, comma separated). */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let current: Challenge | null = null;
  let i = 0;
  const skip = (chars: string) => {
    while (i < header.length && chars.includes(header[i] ?? '')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < header.length && !' \t,="'.includes(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  const readValue = () => {
    if (header[i] !== '"') return readToken();
    let value = '';
    for (i++; i < header.length && header[i] !== '"'; i++) value += header[i] === '\\' ? (header[++i] ?? '') : header[i];
    i++;
    return value;
  };
  while (i < header.length) {
    skip(' \t,');
    const token = readToken();
    if (token === '') break;
    skip(' \t');
    if (header[i] === '=' && current) {
      i++;
      skip(' \t');
      current.params[token.toLowerCase()] = readValue();
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

function basicHeader(c: RegistryCredentials): string {
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');
}

function registryMessage(body: string): string {
  try {
    const json = JSON.parse(body) as { errors?: Array<{ message?: string }>; details?: string; error?: string };
    return json.errors?.[0]?.message ?? json.details ?? json.error ?? body.slice(0, 200);
  } catch {
    return body.slice(0, 200) || 'no details';
  }
}

export class RegistryAuth {
  private readonly tokens = new Map<string, { header: string; expiresAt: number }>();
  private basic: string | null = null;

  constructor(
    private readonly registry: string,
    private readonly credentials: RegistryCredentials | undefined,
    private readonly fetchToken: TokenFetcher,
  ) {}

  /** The Authorization header to send for `scope`, if a previous challenge taught us one. */
  authorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token && token.expiresAt > Date.now()) return token.header;
    return this.basic ?? undefined;
  }

  /**
   * Answers a 401's challenge. Returns true when there is a new Authorization to retry with;
   * throws RegistryUnauthorizedError when the challenge cannot be met.
   */
  async answer(wwwAuthenticate: string | undefined, scope: string, sentAuthorization: string | undefined, signal?: AbortSignal): Promise<boolean> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      await this.fetchBearer(bearer, scope, signal);
      return this.authorization(scope) !== sentAuthorization;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (!this.credentials) throw new RegistryUnauthorizedError(this.registry, 'it requires credentials (Basic auth) and none are configured');
      this.basic = basicHeader(this.credentials);
      return this.basic !== sentAuthorization;
    }
    throw new RegistryUnauthorizedError(this.registry, `unsupported or missing WWW-Authenticate challenge ${JSON.stringify(wwwAuthenticate ?? '')}`);
  }

  private async fetchBearer(challenge: Challenge, scope: string, signal?: AbortSignal): Promise<void> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryUnauthorizedError(this.registry, 'its Bearer challenge has no realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryUnauthorizedError(this.registry, `its token realm ${JSON.stringify(realm)} is not a URL`);
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', challenge.params.scope ?? scope);
    const headers: Record<string, string> = this.credentials ? { authorization: basicHeader(this.credentials) } : {};
    const res = await this.fetchToken(url, headers, signal);
    if (res.status !== 200) {
      const who = this.credentials ? `user ${this.credentials.username}` : 'anonymous access';
      throw new RegistryUnauthorizedError(this.registry, `token server ${url.origin} refused ${who} (HTTP ${res.status}: ${registryMessage(res.body)})`);
    }
    const token = this.parseToken(res.body);
    this.tokens.set(scope, { header: `Bearer ${token.value}`, expiresAt: Date.now() + token.seconds * 1000 - RENEW_EARLY_MS });
  }

  private parseToken(body: string): { value: string; seconds: number } {
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      json = JSON.parse(body) as typeof json;
    } catch {
      throw new RegistryUnauthorizedError(this.registry, 'its token server answered something that is not JSON');
    }
    const value = typeof json.token === 'string' && json.token !== '' ? json.token : json.access_token;
    if (typeof value !== 'string' || value === '') throw new RegistryUnauthorizedError(this.registry, 'its token server answered without a token');
    const seconds = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_SECONDS;
    return { value, seconds: Math.max(seconds, (RENEW_EARLY_MS + 1000) / 1000) };
  }
}
