/**
 * A minimal Docker registry token server (distribution token auth spec) for tests: GET
 * /token?service=&scope= answers an ES256-signed JWT that Distribution verifies through the x5c
 * certificate in its header against `rootcertbundle`. Users authenticate with Basic; anonymous
 * requests get pull access only when `anonymousPull` is set. POST /token with a form body is the
 * OAuth2 flow: grant_type=refresh_token with one of `refreshTokens` gets the same token as its user
 * would by GET (a wrong refresh token gets 401 and an OAuth2 JSON error); `oauth: 404 | 405` makes
 * the server answer POST like one without OAuth2.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface TokenServerOptions {
  /** username → password */
  users?: Record<string, string>;
  anonymousPull?: boolean;
  service?: string;
  issuer?: string;
  tokenSeconds?: number;
  /** refresh token → username, for POST grant_type=refresh_token */
  refreshTokens?: Record<string, string>;
  /** How POST /token is answered: the OAuth2 flow (default) or a bare 404/405. */
  oauth?: 'enabled' | 404 | 405;
  /** A refresh token to hand out with POST answers (rotation). */
  rotateRefreshTokenTo?: string;
}

export interface TokenRequestLog {
  method: string;
  /** The first scope (GET query or POST form); all of them are in `form`/`query`. */
  scope: string | null;
  service: string | null;
  user: string | null;
  status: number;
  /** Whether the request carried an Authorization header. */
  authorization: boolean;
  content_type: string | null;
  /** POST form fields (repeated fields in order). */
  form?: Record<string, string[]>;
}

export interface RunningTokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM of the signing certificate, for the registry's rootcertbundle. */
  certPath: string;
  requests: TokenRequestLog[];
  /** A token for `scope` ('repository:name:pull,push') as `user`, for pushing fixtures. */
  tokenFor(scope: string, user?: string): string;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

function parseScope(scope: string): { type: string; name: string; actions: string[] } | null {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first === -1 || last === first) return null;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

function signJwt(key: KeyObject, x5c: string, claims: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c: [x5c] }));
  const payload = b64url(JSON.stringify(claims));
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${b64url(signature)}`;
}

function basicUser(req: IncomingMessage, users: Record<string, string>): { user: string | null; bad: boolean } {
  const header = req.headers.authorization;
  if (!header) return { user: null, bad: false };
  if (!header.startsWith('Basic ')) return { user: null, bad: true };
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = decoded.slice(0, colon);
  return users[user] !== undefined && users[user] === decoded.slice(colon + 1) ? { user, bad: false } : { user: null, bad: true };
}

export async function startTokenServer(opts: TokenServerOptions = {}): Promise<RunningTokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sbx-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=sbx-test-token-issuer',
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const x5c = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const service = opts.service ?? 'sbx-test-registry';
  const issuer = opts.issuer ?? 'sbx-test-token-issuer';
  const users = opts.users ?? {};
  const requests: TokenRequestLog[] = [];

  const tokenFor = (scope: string, user?: string): string => {
    const now = Math.floor(Date.now() / 1000);
    const parsed = parseScope(scope);
    const actions = parsed ? parsed.actions.filter((a) => user !== undefined || (opts.anonymousPull && a === 'pull')) : [];
    return signJwt(key, x5c, {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + (opts.tokenSeconds ?? 300),
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access: parsed && actions.length ? [{ type: parsed.type, name: parsed.name, actions }] : [],
    });
  };

  const refreshTokens = opts.refreshTokens ?? {};
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const post = req.method === 'POST';
    const params = post ? new URLSearchParams(body) : url.searchParams;
    const scopes = params.getAll('scope');
    const scope = scopes[0] ?? null;
    let { user, bad } = basicUser(req, users);
    const log: TokenRequestLog = {
      method: req.method ?? 'GET',
      scope,
      service: params.get('service'),
      user,
      status: 0,
      authorization: req.headers.authorization !== undefined,
      content_type: req.headers['content-type'] ?? null,
    };
    if (post) {
      const form: Record<string, string[]> = {};
      for (const [k, v] of params) (form[k] ??= []).push(v);
      log.form = form;
    }
    const reply = (status: number, answer: unknown) => {
      log.user = user;
      log.status = status;
      requests.push(log);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    };
    if (url.pathname !== '/token') return reply(404, { details: 'not found' });
    if (post) {
      if (opts.oauth === 404 || opts.oauth === 405) return reply(opts.oauth, { details: 'method not supported' });
      if (params.get('grant_type') !== 'refresh_token') return reply(400, { error: 'unsupported_grant_type', error_description: 'only refresh_token is supported' });
      const owner = refreshTokens[params.get('refresh_token') ?? ''];
      if (owner === undefined) return reply(401, { error: 'invalid_grant', error_description: 'invalid refresh token' });
      user = owner;
      bad = false;
    }
    if (bad) return reply(401, { details: 'incorrect username or password' });
    // Several scopes: the token carries the first (enough for the tests' single-repository pulls).
    const token = tokenFor(scope ?? '', user ?? undefined);
    if (post) {
      return reply(200, {
        access_token: token,
        expires_in: opts.tokenSeconds ?? 300,
        scope: scopes.join(' '),
        ...(opts.rotateRefreshTokenTo ? { refresh_token: opts.rotateRefreshTokenTo } : {}),
      });
    }
    reply(200, { token, access_token: token, expires_in: opts.tokenSeconds ?? 300, issued_at: new Date().toISOString() });
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    tokenFor,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
