/**
 * The LogicNets emulator's token endpoint (`/<company>/oauth2token`): reads a client credentials
 * request from a GET query or a form POST, checks it and its client assertion (RFC 7523, with a
 * replay check on `jti`), and issues RS256-signed access tokens, or answers RFC 6749 5.2 JSON.
 * Keeps the set of issued tokens the API routes check, and can be told to fail on purpose
 * (`TokenEndpointFault`). Test and demo code only; never logs a token or an assertion.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey } from 'jose';
import type { Clock } from '../lib/clock.js';
import type { AssertionVerifier } from './assertion.js';
import { invalidClient, OAuthFailure, resetSocket, sendJson } from './http.js';
import type { Logger } from '../lib/logger.js';

/** What `setTokenEndpointFault` can make the token endpoint do instead of its job. */
export type TokenEndpointFault =
  | null
  | { status: number; body?: string; contentType?: string; retryAfter?: number }
  | 'hang'
  | 'reset';

/** An access token the emulator issued and has not forgotten. */
export interface IssuedToken {
  clientId: string;
  /** Expiry in epoch seconds (the JWT's `exp`, whole seconds). */
  exp: number;
  /**
   * Expiry in epoch ms: issue time plus `expires_in`, to the millisecond, which is what the API
   * checks. A client that counts `expires_in` from when it sent the request is never later than it.
   */
  expiresAtMs: number;
}

/** Options of `EmulatorTokenEndpoint`. */
export interface EmulatorTokenEndpointOptions {
  verifier: AssertionVerifier;
  clock: Clock;
  logger: Logger | undefined;
  /** Counters bumped for every token request and every one not answered 200 (faults included). */
  stats: { tokenRequests: number; tokenFailures: number };
  /** `expires_in` of issued access tokens, in seconds. */
  tokenLifetimeSeconds: number;
  /** Clock skew allowed on an assertion's `exp`: its `jti` is remembered this much longer, in seconds. */
  clockToleranceSeconds: number;
  /** The emulator's base URL, read at every issue: the `iss` and `aud` of access tokens. */
  baseUrl: () => string;
  /** Parameters every token request must carry with exactly these values (e.g. `audience`, `resource`). */
  requiredParams?: Readonly<Record<string, string>>;
}

/** `client_assertion_type` of RFC 7523. */
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Largest token request body read (form POST). */
const MAX_FORM_BYTES = 64 * 1024;

/**
 * The token endpoint. Safe for concurrent requests (one event loop; the replay check and the
 * token set are updated without an await in between). `setFault` and `revokeAll` may be called
 * at any time and apply to the requests that arrive afterwards.
 */
export class EmulatorTokenEndpoint {
  readonly #verifier: AssertionVerifier;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #stats: { tokenRequests: number; tokenFailures: number };
  readonly #tokenLifetime: number;
  readonly #tolerance: number;
  readonly #baseUrl: () => string;
  readonly #requiredParams: Readonly<Record<string, string>>;
  readonly #signingKey: Promise<CryptoKey>;
  #fault: TokenEndpointFault = null;
  /** Access tokens issued and not revoked. */
  #tokens = new Map<string, IssuedToken>();
  /** `sub` + `jti` of accepted assertions, with the epoch second after which they may be forgotten. */
  #seenJti = new Map<string, number>();

  /** Starts generating the RS256 key access tokens are signed with; see `ready()`. */
  constructor(options: EmulatorTokenEndpointOptions) {
    this.#verifier = options.verifier;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#stats = options.stats;
    this.#tokenLifetime = options.tokenLifetimeSeconds;
    this.#tolerance = options.clockToleranceSeconds;
    this.#baseUrl = options.baseUrl;
    this.#requiredParams = options.requiredParams ?? {};
    this.#signingKey = generateKeyPair('RS256').then((pair) => pair.privateKey);
    this.#signingKey.catch(() => undefined);
  }

  /** Resolves once the signing key exists; rejects if it could not be made. */
  async ready(): Promise<void> {
    await this.#signingKey;
  }

  /** Makes the endpoint answer with `fault` from now on; `null` restores normal service. */
  setFault(fault: TokenEndpointFault): void {
    this.#fault = fault;
  }

  /** Forgets every access token issued so far. */
  revokeAll(): void {
    this.#tokens.clear();
  }

  /** The issued, not revoked token `accessToken`, possibly expired; `undefined` for any other string. */
  findToken(accessToken: string): IssuedToken | undefined {
    return this.#tokens.get(accessToken);
  }

  /** Answers one request to the token endpoint; `url` is the request's parsed URL. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    this.#stats.tokenRequests++;
    const fault = this.#fault;
    if (fault !== null) {
      this.#stats.tokenFailures++;
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
      const params = await this.#params(req, url);
      const answer = await this.#issue(params);
      sendJson(res, 200, answer, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    } catch (error) {
      if (!(error instanceof OAuthFailure)) throw error;
      this.#stats.tokenFailures++;
      this.#logger?.debug({ status: error.status, error: error.error, reason: error.description }, 'token request refused');
      const headers: Record<string, string> = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
      if (error.status === 405) headers.Allow = 'GET, POST';
      if (error.status === 413 || error.status === 415) headers.Connection = 'close';
      sendJson(res, error.status, { error: error.error, error_description: error.description }, headers);
    }
  }

  /** The token request's parameters: the query of a GET, the form body of a POST. */
  async #params(req: IncomingMessage, url: URL): Promise<URLSearchParams> {
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
    for (const [name, value] of Object.entries(this.#requiredParams)) {
      if (params.get(name) !== value) {
        throw new OAuthFailure(400, name === 'resource' ? 'invalid_target' : 'invalid_request', `The ${name} parameter is missing or wrong.`);
      }
    }
    const { clientId, jti, exp } = await this.#verifier.verify(assertion);
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
      .setIssuer(this.#baseUrl())
      .setAudience(this.#baseUrl())
      .setSubject(clientId)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(tokenExp)
      .setJti(randomUUID())
      .sign(await this.#signingKey);
    for (const [token, issued] of this.#tokens) if (issued.expiresAtMs <= this.#clock.now()) this.#tokens.delete(token);
    this.#tokens.set(accessToken, { clientId, exp: tokenExp, expiresAtMs: this.#clock.now() + this.#tokenLifetime * 1000 });
    this.#logger?.debug({ clientId, expiresIn: this.#tokenLifetime }, 'access token issued');
    const answer: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer', expires_in: this.#tokenLifetime };
    if (scope !== undefined) answer.scope = scope;
    return answer;
  }
}
