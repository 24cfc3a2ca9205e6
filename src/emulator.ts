/**
 * A LogicNets emulator: an independent HTTP(S) server that behaves like the installation in the
 * LogicNets OAuth 2.0 tutorial, for tests and the `demo` command. It verifies client assertions
 * strictly with jose against registered public keys (it shares no code with the client side) and
 * answers RFC 6749 JSON; the API endpoints under `/<company>/` answer 403 without a token, 401
 * with an unknown, revoked or expired one, and 200 JSON otherwise. It never logs a token or an
 * assertion.
 */
import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** A client (LogicNets "server user") the emulator accepts assertions from. */
export interface EmulatorClient {
  /** The client id; the assertion's `sub` selects the client. */
  clientId: string;
  /** The RSA public key (a private key is reduced to its public half). */
  publicKey: KeyObject | JWK;
  /** When set, the assertion's `iss` must equal it. */
  issuer?: string;
}

/** What `setTokenEndpointFault` can make the token endpoint do instead of its job. */
export type TokenEndpointFault =
  | null
  | { status: number; body?: string; contentType?: string; retryAfter?: number }
  | 'hang'
  | 'reset';

/** Options of `startEmulator`. */
export interface EmulatorOptions {
  /** The company path segment; default `logicnets`. */
  company?: string;
  /** Listen address; default `127.0.0.1`. */
  host?: string;
  /** Listen port; default 0 (any free port). */
  port?: number;
  /** PEM certificate chain and key: serve HTTPS when set. */
  tls?: { cert: string; key: string };
  clients: EmulatorClient[];
  /** `expires_in` of issued access tokens; default 300. */
  tokenLifetimeSeconds?: number;
  /** Largest accepted `exp - iat` of an assertion; default 3600. */
  maxAssertionLifetimeSeconds?: number;
  /** Clock skew allowed on `exp`, `iat` and `nbf`; default 60. */
  clockToleranceSeconds?: number;
  /** Time for assertion and token checks and the `Date` header; default the system clock. */
  clock?: Clock;
  logger?: Logger;
  /** The `aud` an assertion must carry; default the emulator's base URL (`url`). */
  audience?: string;
}

/** Live counters; they only grow. */
export interface EmulatorStats {
  /** Requests that reached `/<company>/oauth2token`. */
  tokenRequests: number;
  /** Token requests not answered 200 (faults included). */
  tokenFailures: number;
  /** Requests to any other path under `/<company>/`. */
  apiRequests: number;
}

/**
 * A running emulator. Safe for concurrent requests (one event loop; the replay check and the
 * token set are updated without an await in between). Methods may be called at any time.
 */
export interface Emulator {
  /** Base URL including the company, without a trailing slash, e.g. `http://127.0.0.1:41234/logicnets`. */
  readonly url: string;
  /** `${url}/oauth2token`. */
  readonly tokenUrl: string;
  /** The `aud` assertions must carry. */
  readonly audience: string;
  readonly port: number;
  readonly server: http.Server | https.Server;
  readonly stats: EmulatorStats;
  /** Makes the token endpoint answer with `fault` from now on; `null` restores normal service. */
  setTokenEndpointFault(fault: TokenEndpointFault): void;
  /** Forgets every access token issued so far: they are answered 401 from now on. */
  revokeAll(): void;
  /** Stops listening, cuts every connection (hanging ones included) and cancels slow answers. */
  close(): Promise<void>;
}

/** `client_assertion_type` of RFC 7523. */
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Largest token request body read (form POST). */
const MAX_FORM_BYTES = 64 * 1024;
/** Longest wait `_slow` accepts. */
const MAX_SLOW_MS = 10 * 60 * 1000;
/** Largest `_download` size (16 GiB). */
const MAX_DOWNLOAD_BYTES = 16 * 1024 ** 3;
const CHUNK_BYTES = 64 * 1024;

/**
 * A stream of `bytes` deterministic pseudo-random bytes (mulberry32 seeded with `seed`), made in
 * 64 KiB chunks on demand with back-pressure. `_download?bytes=N&seed=S` serves exactly this, so
 * a test can compare hashes, or use it as a large upload body. Each call returns a new stream.
 */
export function createDeterministicStream(bytes: number, seed = 1): Readable {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError('bytes must be a non-negative integer');
  function* chunks(): Generator<Buffer> {
    let state = seed >>> 0;
    let left = bytes;
    while (left > 0) {
      const size = Math.min(CHUNK_BYTES, left);
      const buffer = Buffer.allocUnsafe(Math.ceil(size / 4) * 4);
      for (let i = 0; i < buffer.length; i += 4) {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        buffer.writeUInt32LE((t ^ (t >>> 14)) >>> 0, i);
      }
      left -= size;
      yield size === buffer.length ? buffer : buffer.subarray(0, size);
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** An answer the token endpoint gives instead of a token. */
class OAuthFailure {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {}
}

interface IssuedToken {
  clientId: string;
  /** Expiry in epoch seconds. */
  exp: number;
}

/** Starts an emulator and resolves once it listens. See `Emulator` and `EmulatorOptions`. */
export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const emulator = new LogicNetsEmulator(options);
  await emulator.listen(options.host ?? '127.0.0.1', options.port ?? 0);
  return emulator;
}

class LogicNetsEmulator implements Emulator {
  readonly server: http.Server | https.Server;
  readonly stats: EmulatorStats = { tokenRequests: 0, tokenFailures: 0, apiRequests: 0 };
  #company: string;
  #clients = new Map<string, { key: KeyObject; issuer: string | undefined }>();
  #clock: Clock;
  #logger: Logger | undefined;
  #tokenLifetime: number;
  #maxAssertionLifetime: number;
  #tolerance: number;
  #audienceOption: string | undefined;
  #signingKey: Promise<CryptoKey>;
  #fault: TokenEndpointFault = null;
  /** Access tokens issued and not revoked. */
  #tokens = new Map<string, IssuedToken>();
  /** `sub` + `jti` of accepted assertions, with the epoch second after which they may be forgotten. */
  #seenJti = new Map<string, number>();
  #slowTimers = new Set<NodeJS.Timeout>();
  #url = '';
  #port = 0;
  #closed: Promise<void> | undefined;

  constructor(options: EmulatorOptions) {
    this.#company = options.company ?? 'logicnets';
    if (!/^[A-Za-z0-9._~-]+$/.test(this.#company)) throw new TypeError('The emulator company must be one URL path segment.');
    for (const client of options.clients) {
      const key = toPublicKey(client.publicKey);
      if (key.asymmetricKeyType !== 'rsa') throw new TypeError(`The emulator key of client ${client.clientId} must be an RSA key.`);
      this.#clients.set(client.clientId, { key, issuer: client.issuer });
    }
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger?.child({ component: 'logicnets-emulator' });
    this.#tokenLifetime = options.tokenLifetimeSeconds ?? 300;
    this.#maxAssertionLifetime = options.maxAssertionLifetimeSeconds ?? 3600;
    this.#tolerance = options.clockToleranceSeconds ?? 60;
    this.#audienceOption = options.audience;
    this.#signingKey = generateKeyPair('RS256').then((pair) => pair.privateKey);
    this.#signingKey.catch(() => undefined);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#logger?.error({ err: { name: (error as Error).name } }, 'emulator request failed');
        if (!res.headersSent) this.#json(res, 500, { error: 'server_error', error_description: 'The emulator failed.' });
        else res.destroy();
      });
    };
    this.server = options.tls
      ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler)
      : http.createServer(handler);
  }

  get url(): string { return this.#url; }
  get tokenUrl(): string { return `${this.#url}/oauth2token`; }
  get audience(): string { return this.#audienceOption ?? this.#url; }
  get port(): number { return this.#port; }

  async listen(host: string, port: number): Promise<void> {
    await this.#signingKey;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.server.address() as AddressInfo).port;
    const scheme = this.server instanceof https.Server ? 'https' : 'http';
    const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
    this.#url = `${scheme}://${urlHost}:${this.#port}/${this.#company}`;
    this.#logger?.info({ url: this.#url }, 'LogicNets emulator listening');
  }

  setTokenEndpointFault(fault: TokenEndpointFault): void {
    this.#fault = fault;
  }

  revokeAll(): void {
    this.#tokens.clear();
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      for (const timer of this.#slowTimers) clearTimeout(timer);
      this.#slowTimers.clear();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.#closed;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.setHeader('Date', new Date(this.#clock.now()).toUTCString());
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const prefix = `/${this.#company}/`;
    if (!url.pathname.startsWith(prefix)) {
      this.#json(res, 404, { error: 'not_found', error_description: `Nothing is served outside ${prefix}.` });
      return;
    }
    if (url.pathname === `${prefix}oauth2token`) {
      await this.#tokenEndpoint(req, res, url);
      return;
    }
    this.stats.apiRequests++;
    await this.#api(req, res, url);
  }

  // ---- token endpoint -------------------------------------------------------------------------

  async #tokenEndpoint(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    this.stats.tokenRequests++;
    const fault = this.#fault;
    if (fault !== null) {
      this.stats.tokenFailures++;
      this.#logger?.debug({ fault: typeof fault === 'string' ? fault : fault.status }, 'token endpoint fault injected');
      if (fault === 'hang') return;
      if (fault === 'reset') {
        resetSocket(req.socket);
        return;
      }
      const headers: Record<string, string> = { 'Content-Type': fault.contentType ?? 'text/plain; charset=utf-8' };
      if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
      res.writeHead(fault.status, headers).end(fault.body ?? '');
      return;
    }
    try {
      const params = await this.#tokenParams(req, url);
      const answer = await this.#issue(params);
      this.#json(res, 200, answer, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    } catch (error) {
      if (!(error instanceof OAuthFailure)) throw error;
      this.stats.tokenFailures++;
      this.#logger?.debug({ status: error.status, error: error.error, reason: error.description }, 'token request refused');
      const headers: Record<string, string> = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
      if (error.status === 405) headers.Allow = 'GET, POST';
      if (error.status === 413 || error.status === 415) headers.Connection = 'close';
      this.#json(res, error.status, { error: error.error, error_description: error.description }, headers);
    }
  }

  /** The token request's parameters: the query of a GET, the form body of a POST. */
  async #tokenParams(req: http.IncomingMessage, url: URL): Promise<URLSearchParams> {
    if (req.method === 'GET') return url.searchParams;
    if (req.method !== 'POST') throw new OAuthFailure(405, 'invalid_request', 'The token endpoint accepts GET and POST only.');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new OAuthFailure(415, 'invalid_request', 'A POST token request must have an application/x-www-form-urlencoded body.');
    }
    const tooLarge = new OAuthFailure(413, 'invalid_request', `The token request body is larger than ${MAX_FORM_BYTES} bytes.`);
    if (Number(req.headers['content-length'] ?? 0) > MAX_FORM_BYTES) throw tooLarge;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) throw tooLarge;
      chunks.push(chunk);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  /** Checks the request and its client assertion, then issues an access token. */
  async #issue(params: URLSearchParams): Promise<Record<string, unknown>> {
    for (const name of new Set(params.keys())) {
      if (params.getAll(name).length > 1) throw new OAuthFailure(400, 'invalid_request', `The parameter ${name} is repeated.`);
    }
    const grantType = params.get('grant_type');
    if (grantType === null) throw new OAuthFailure(400, 'invalid_request', 'The grant_type parameter is missing.');
    if (grantType !== 'client_credentials') {
      throw new OAuthFailure(400, 'unsupported_grant_type', 'Only grant_type=client_credentials is supported.');
    }
    if (params.get('client_assertion_type') !== JWT_BEARER) {
      throw new OAuthFailure(400, 'invalid_request', `The client_assertion_type parameter must be ${JWT_BEARER}.`);
    }
    const assertion = params.get('client_assertion');
    if (!assertion) throw new OAuthFailure(400, 'invalid_request', 'The client_assertion parameter is missing.');
    const { clientId, jti, exp } = await this.#verifyAssertion(assertion);
    const requestedClientId = params.get('client_id');
    if (requestedClientId !== null && requestedClientId !== clientId) {
      throw invalidClient('The client_id parameter does not match the assertion sub.');
    }
    // Replay check and record, with no await in between.
    const nowSeconds = Math.floor(this.#clock.now() / 1000);
    for (const [seen, forgetAt] of this.#seenJti) if (forgetAt < nowSeconds) this.#seenJti.delete(seen);
    const replayKey = `${clientId}\u0000${jti}`;
    if (this.#seenJti.has(replayKey)) throw invalidClient('The assertion jti was already used; sign a new assertion for every request.');
    this.#seenJti.set(replayKey, exp + this.#tolerance);

    const scope = params.get('scope') ?? undefined;
    const tokenExp = nowSeconds + this.#tokenLifetime;
    const claims: Record<string, unknown> = { client_id: clientId };
    if (scope !== undefined) claims.scope = scope;
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' })
      .setIssuer(this.#url)
      .setAudience(this.#url)
      .setSubject(clientId)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(tokenExp)
      .setJti(randomUUID())
      .sign(await this.#signingKey);
    for (const [token, issued] of this.#tokens) if (issued.exp <= nowSeconds) this.#tokens.delete(token);
    this.#tokens.set(accessToken, { clientId, exp: tokenExp });
    this.#logger?.debug({ clientId, expiresIn: this.#tokenLifetime }, 'access token issued');
    const answer: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer', expires_in: this.#tokenLifetime };
    if (scope !== undefined) answer.scope = scope;
    return answer;
  }

  /** Verifies a client assertion strictly (RFC 7523 3); throws an `OAuthFailure` saying why not. */
  async #verifyAssertion(assertion: string): Promise<{ clientId: string; jti: string; exp: number }> {
    let alg: unknown;
    let sub: unknown;
    try {
      alg = decodeProtectedHeader(assertion).alg;
      sub = decodeJwt(assertion).sub;
    } catch {
      throw invalidClient('The client_assertion is not a well-formed signed JWT.');
    }
    if (alg !== 'RS256') throw invalidClient('The client assertion must be signed with RS256.');
    if (typeof sub !== 'string' || sub === '') throw invalidClient('The client assertion has no sub claim naming the client.');
    const client = this.#clients.get(sub);
    if (client === undefined) throw invalidClient(`No client with id ${sub} is registered.`);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(assertion, client.key, {
        algorithms: ['RS256'],
        audience: this.audience,
        issuer: client.issuer,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti'],
        maxTokenAge: this.#maxAssertionLifetime,
        clockTolerance: this.#tolerance,
        currentDate: new Date(this.#clock.now()),
      }));
    } catch (error) {
      throw invalidClient(this.#describeJoseError(error, sub));
    }
    if (typeof payload.aud !== 'string') throw invalidClient(`The assertion aud claim must be the single string ${this.audience}.`);
    const { exp, iat, jti } = payload;
    if (typeof jti !== 'string' || jti === '') throw invalidClient('The assertion jti claim must be a non-empty string.');
    if (typeof exp !== 'number' || typeof iat !== 'number') throw invalidClient('The assertion exp and iat claims must be numbers.');
    if (exp - iat > this.#maxAssertionLifetime) {
      throw invalidClient(`The assertion lives longer than ${this.#maxAssertionLifetime} seconds (exp - iat).`);
    }
    return { clientId: sub, jti, exp };
  }

  #describeJoseError(error: unknown, clientId: string): string {
    const { code, claim, reason } = (error ?? {}) as { code?: string; claim?: string; reason?: string };
    switch (code) {
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return `The assertion signature does not verify with the public key registered for client ${clientId}.`;
      case 'ERR_JWT_EXPIRED':
        return claim === 'iat'
          ? `The assertion iat is more than ${this.#maxAssertionLifetime} seconds in the past.`
          : 'The assertion has expired (exp); check the clock and sign a fresh assertion.';
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        return 'The client assertion must be signed with RS256.';
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        if (reason === 'missing') return `The assertion has no ${claim} claim.`;
        if (claim === 'aud') return `The assertion aud claim must be ${this.audience}.`;
        if (claim === 'iss') return `The assertion iss claim must be ${this.#clients.get(clientId)?.issuer ?? ''}.`;
        if (claim === 'iat') return 'The assertion iat is in the future; check the clock.';
        if (claim === 'nbf') return 'The assertion is not valid yet (nbf); check the clock.';
        return `The assertion ${claim} claim is invalid.`;
      default:
        return 'The client_assertion is not a valid signed JWT.';
    }
  }

  // ---- API ------------------------------------------------------------------------------------

  async #api(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (match === null) {
      this.#json(res, 403, { error: 'forbidden', error_description: 'Authentication is required: send Authorization: Bearer <access token>.' });
      return;
    }
    const issued = this.#tokens.get(match[1]!);
    if (issued === undefined || issued.exp * 1000 <= this.#clock.now()) {
      this.#json(res, 401, { error: 'invalid_token', error_description: 'The access token is unknown, revoked or expired.' },
        { 'WWW-Authenticate': `Bearer realm="${this.#company}", error="invalid_token"` });
      return;
    }
    const endpoint = url.pathname.slice(this.#company.length + 2);
    const query = queryObject(url.searchParams);
    if (endpoint === '_download') {
      const bytes = Number(url.searchParams.get('bytes') ?? '0');
      const seed = Number(url.searchParams.get('seed') ?? '1');
      if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_DOWNLOAD_BYTES || !Number.isSafeInteger(seed)) {
        this.#json(res, 400, { error: 'bad_request', error_description: 'bytes and seed must be non-negative integers.' });
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes) });
      const stream = createDeterministicStream(bytes, seed);
      res.on('close', () => stream.destroy());
      stream.pipe(res);
      return;
    }
    if (endpoint === '_slow') {
      const ms = Math.min(Math.max(Number(url.searchParams.get('ms') ?? '0') || 0, 0), MAX_SLOW_MS);
      // Real time, on purpose: it stands for a slow network peer, which no injected clock moves.
      const timer = setTimeout(() => {
        this.#slowTimers.delete(timer);
        this.#json(res, 200, { ok: true, company: this.#company, path: url.pathname, waitedMs: ms });
      }, ms);
      this.#slowTimers.add(timer);
      res.on('close', () => {
        clearTimeout(timer);
        this.#slowTimers.delete(timer);
      });
      return;
    }
    if (endpoint === '_status') {
      const code = Number(url.searchParams.get('code') ?? '200');
      const status = Number.isInteger(code) && code >= 200 && code <= 599 ? code : 400;
      this.#json(res, status, { ok: status < 400, company: this.#company, path: url.pathname, status });
      return;
    }
    const body = await hashBody(req);
    if (body === undefined) return; // the client went away
    const common = { ok: true, company: this.#company, path: url.pathname, method: req.method, query, clientId: issued.clientId, ...body };
    if (endpoint === '_echo') {
      this.#json(res, 200, { ...common, url: req.url, httpVersion: req.httpVersion, headers: req.headers, rawHeaders: req.rawHeaders });
      return;
    }
    this.#json(res, 200, common);
  }

  #json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed || res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
    });
    res.end(text);
  }
}

function invalidClient(description: string): OAuthFailure {
  return new OAuthFailure(401, 'invalid_client', description);
}

function toPublicKey(key: KeyObject | JWK): KeyObject {
  if (isKeyObject(key)) return key.type === 'public' ? key : createPublicKey(key);
  return createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
}

function isKeyObject(key: KeyObject | JWK): key is KeyObject {
  return (key as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'KeyObject';
}

function queryObject(search: URLSearchParams): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const name of new Set(search.keys())) {
    const values = search.getAll(name);
    query[name] = values.length === 1 ? values[0]! : values;
  }
  return query;
}

/** Reads a request body to its end, hashing as it goes; `undefined` when the client aborted. */
async function hashBody(req: http.IncomingMessage): Promise<{ bodyBytes: number; bodySha256: string } | undefined> {
  const hash = createHash('sha256');
  let bodyBytes = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bodyBytes += chunk.length;
    }
  } catch {
    return undefined;
  }
  return { bodyBytes, bodySha256: hash.digest('hex') };
}

/** Cuts a connection with a TCP RST where the socket allows it, else destroys it. */
function resetSocket(socket: Socket): void {
  const plain = socket as Socket & { encrypted?: boolean };
  if (!plain.encrypted && typeof plain.resetAndDestroy === 'function') {
    try {
      plain.resetAndDestroy();
      return;
    } catch {
      // fall through
    }
  }
  socket.destroy();
}
