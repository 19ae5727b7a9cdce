/**
 * Answers registry auth challenges (WWW-Authenticate): Basic with the configured credentials, or the
 * Bearer token flow of the distribution token spec (GET realm?service=&scope=, anonymous or with
 * Basic credentials), or its OAuth2 flow (POST realm, grant_type=refresh_token) when the credentials
 * carry an identity token (Docker config.json `identitytoken`), falling back to GET when the server
 * answers 404/405 and a username and password are available, as Docker's client does. Tokens are
 * cached per scope until shortly before they expire (expires_in, default 60 s).
 */
import { RegistryUnauthorizedError } from '../../../../core/src/errors.ts';
import { registryText } from './registry-text.ts';

/**
 * Username and password, or an identity token (an OAuth2 refresh token, `identitytoken` in a Docker
 * config.json) with the username and password that came with it, if any.
 */
export type RegistryCredentials =
  | { username: string; password: string; identityToken?: undefined }
  | { identityToken: string; username?: string; password?: string };

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** What the auth needs from the transport: a GET that returns status, headers and a capped body. */
export type TokenFetcher = (url: URL, headers: Record<string, string>, signal?: AbortSignal) => Promise<{ status: number; body: string }>;

/** Tokens without expires_in live 60 s (token spec); renew a little early. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Docker's client (distribution/registry/client/auth/session.go) also sends a client_id. */
const CLIENT_ID = 'sbx';

/** What the OAuth2 flow needs: a POST of a form body, returning status and a capped body. */
export type TokenPoster = (url: URL, headers: Record<string, string>, body: string, signal?: AbortSignal) => Promise<{ status: number; body: string }>;
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

/** Username and password, when the credentials have both (an identity token may come without). */
function userPassword(c: RegistryCredentials | undefined): { username: string; password: string } | null {
  return c && typeof c.username === 'string' && typeof c.password === 'string' && (c.identityToken === undefined || c.password !== '')
    ? { username: c.username, password: c.password }
    : null;
}

function basicHeader(c: { username: string; password: string }): string {
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');
}

/** The token server's own words, bounded and sanitised (registry-text.ts): they reach the job's error. */
function registryMessage(body: string): string {
  try {
    const json = JSON.parse(body) as { errors?: Array<{ message?: string }>; details?: string; error?: string; error_description?: string };
    const message = json.errors?.[0]?.message ?? json.details ?? json.error_description ?? json.error;
    return registryText(typeof message === 'string' ? message : body) || 'no details';
  } catch {
    return registryText(body) || 'no details';
  }
}

export class RegistryAuth {
  private readonly tokens = new Map<string, { header: string; expiresAt: number }>();
  private basic: string | null = null;
  /** The refresh token to send next: the configured one, or a newer one the token server handed out. */
  private refreshToken: string | undefined;

  /** `fetchToken` GETs (token flow), `postToken` POSTs a form (OAuth2 flow, for identity tokens). */
  constructor(
    private readonly registry: string,
    private readonly credentials: RegistryCredentials | undefined,
    private readonly fetchToken: TokenFetcher,
    private readonly postToken: TokenPoster,
  ) {
    this.refreshToken = credentials?.identityToken || undefined;
  }

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
      const userPass = userPassword(this.credentials);
      if (!userPass) {
        const why = this.credentials ? 'the configured credentials are an identity token without a password' : 'none are configured';
        throw new RegistryUnauthorizedError(this.registry, `it requires credentials (Basic auth) and ${why}`);
      }
      this.basic = basicHeader(userPass);
      return this.basic !== sentAuthorization;
    }
    throw new RegistryUnauthorizedError(this.registry, `unsupported or missing WWW-Authenticate challenge ${JSON.stringify(registryText(wwwAuthenticate ?? ''))}`);
  }

  private async fetchBearer(challenge: Challenge, scope: string, signal?: AbortSignal): Promise<void> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryUnauthorizedError(this.registry, 'its Bearer challenge has no realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryUnauthorizedError(this.registry, `its token realm ${JSON.stringify(registryText(realm))} is not a URL`);
    }
    // A challenge may name several scopes, space separated; the token spec repeats `scope`.
    const scopes = (challenge.params.scope ?? scope).split(' ').filter(Boolean);
    const service = challenge.params.service;
    const token = this.refreshToken !== undefined ? await this.oauthToken(url, service, scopes, signal) : await this.getToken(url, service, scopes, signal);
    this.tokens.set(scope, { header: `Bearer ${token.value}`, expiresAt: Date.now() + token.seconds * 1000 - RENEW_EARLY_MS });
  }

  /** GET realm?service=&scope=, anonymous or with Basic credentials. */
  private async getToken(realm: URL, service: string | undefined, scopes: string[], signal?: AbortSignal): Promise<{ value: string; seconds: number }> {
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const userPass = userPassword(this.credentials);
    const headers: Record<string, string> = userPass ? { authorization: basicHeader(userPass) } : {};
    const res = await this.fetchToken(url, headers, signal);
    if (res.status !== 200) {
      const who = userPass ? `user ${userPass.username}` : 'anonymous access';
      throw new RegistryUnauthorizedError(this.registry, `token server ${url.origin} refused ${who} (HTTP ${res.status}: ${registryMessage(res.body)})`);
    }
    return this.parseToken(res.body);
  }

  /** POST realm with grant_type=refresh_token (OAuth2); 404/405 falls back to GET when a password is known. */
  private async oauthToken(realm: URL, service: string | undefined, scopes: string[], signal?: AbortSignal): Promise<{ value: string; seconds: number }> {
    const refreshToken = this.refreshToken ?? '';
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken });
    if (service) form.set('service', service);
    for (const s of scopes) form.append('scope', s);
    form.set('client_id', CLIENT_ID);
    const res = await this.postToken(realm, { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, form.toString(), signal);
    if ((res.status === 404 || res.status === 405) && userPassword(this.credentials)) return this.getToken(realm, service, scopes, signal);
    if (res.status !== 200) {
      throw new RegistryUnauthorizedError(this.registry, `token server ${realm.origin} refused the identity token (HTTP ${res.status}: ${registryMessage(res.body)})`);
    }
    const token = this.parseToken(res.body);
    if (token.refreshToken) this.refreshToken = token.refreshToken;
    return token;
  }

  private parseToken(body: string): { value: string; seconds: number; refreshToken?: string } {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new RegistryUnauthorizedError(this.registry, 'its token server answered something that is not JSON');
    }
    // `null` is JSON too: read as an object it was a TypeError, and the job's error an `internal` one.
    if (typeof parsed !== 'object' || parsed === null) throw new RegistryUnauthorizedError(this.registry, 'its token server answered without a token');
    const json = parsed as { token?: unknown; access_token?: unknown; expires_in?: unknown; refresh_token?: unknown };
    const value = typeof json.token === 'string' && json.token !== '' ? json.token : json.access_token;
    if (typeof value !== 'string' || value === '') throw new RegistryUnauthorizedError(this.registry, 'its token server answered without a token');
    const seconds = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_SECONDS;
    const refreshToken = typeof json.refresh_token === 'string' && json.refresh_token !== '' ? json.refresh_token : undefined;
    return { value, seconds: Math.max(seconds, (RENEW_EARLY_MS + 1000) / 1000), ...(refreshToken ? { refreshToken } : {}) };
  }
}
