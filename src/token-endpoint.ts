/**
 * The token endpoint client: one client credentials request (RFC 6749 4.4) authenticated by a
 * `ClientAuth` strategy, sent as LogicNets documents it (GET, query parameters) or as RFC 6749
 * asks (POST, form body), and the answer read per RFC 6749 5.1 / 5.2. Every failure becomes a
 * `TokenEndpointError` with a stable code and a sentence that tells an operator what to fix.
 * Uses node:http / node:https directly: its own keep-alive agent, a time limit covering connect
 * and answer, and a cap on the answer's size. Never logs the URL's query, the assertion or the token.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { decodeJwt } from 'jose';
import type { Clock } from './clock.js';
import { ConfigError, TokenEndpointError } from './errors.js';
import type { TokenEndpointFailure } from './errors.js';
import { urlForLog } from './logger.js';
import type { Logger } from './logger.js';
import type { ClientAuth, Token } from './token.js';

/** Default cap on a token response body, in bytes. */
export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

/** Options of `TokenEndpointClient`. */
export interface TokenEndpointOptions {
  /** The token endpoint, e.g. `https://lua5.logicnets.local/logicnets/oauth2token`. */
  tokenUrl: string;
  /** `GET`: parameters in the query (LogicNets); `POST`: form body (RFC 6749). */
  method: 'GET' | 'POST';
  /** Optional `scope` parameter. */
  scope?: string;
  /** Adds the client's credentials (e.g. `privateKeyJwt`) to every request. */
  clientAuth: ClientAuth;
  clock: Clock;
  logger: Logger;
  /** Time limit for one request, connect to last byte, in ms. */
  timeoutMs: number;
  /** Extra trusted CA certificates (PEM), added to Node's root certificates. Verification is always on. */
  ca?: string;
  /** Lifetime assumed for a token with neither `expires_in` nor a JWT `exp`, in seconds. */
  defaultLifetimeSeconds: number;
  /** Cap on the response body (default 1 MiB); a longer answer is abandoned. */
  maxResponseBytes?: number;
  /** `User-Agent` header (default `logicnets-token-proxy`). */
  userAgent?: string;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** An error on a kept-alive socket the server had already closed: worth one immediate retry. */
class StaleSocketError extends Error {}

/** OAuth errors that the same request will keep getting until the configuration changes. */
const PERMANENT_OAUTH_ERRORS = new Set([
  'invalid_client', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_request',
]);

const OAUTH_HINTS: Readonly<Record<string, string>> = {
  invalid_client: 'check the client id (LOGICNETS_CLIENT_ID, the assertion\'s sub), the issuer ' +
    '(LOGICNETS_CLIENT_ISSUER), the audience (LOGICNETS_TOKEN_AUDIENCE) and that the private key matches ' +
    'the public key of the server user',
  invalid_grant: 'the server refused the assertion or the grant: check this machine\'s clock (iat/exp), ' +
    'the audience (LOGICNETS_TOKEN_AUDIENCE) and the assertion lifetime (LOGICNETS_ASSERTION_TTL)',
  unauthorized_client: 'the server user may not use the client credentials grant: check its authentication ' +
    'method (Bearer Authentication with RS256 signed JWT) and its roles',
  unsupported_grant_type: 'the server does not accept client_credentials here: is LOGICNETS_TOKEN_URL the ' +
    'oauth2token endpoint?',
  invalid_scope: 'check LOGICNETS_TOKEN_SCOPE (leave it unset unless the server asks for a scope)',
  invalid_request: 'the server could not read the request: check LOGICNETS_TOKEN_METHOD (GET or POST, as the ' +
    'server documents) and LOGICNETS_TOKEN_URL',
};

const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'INVALID_CA', 'CERT_CHAIN_TOO_LONG',
]);

/** Parameters whose values are not secret; every other value is kept out of messages. */
const PUBLIC_PARAMS = new Set(['grant_type', 'client_assertion_type', 'scope', 'client_id']);

/**
 * Fetches access tokens from one token endpoint. Each `fetchToken` call is one independent
 * request with a freshly signed assertion; concurrent calls are allowed and do not share
 * anything but the keep-alive agent (deduplicating them is the token cache's job). `close()`
 * destroys the agent's sockets; the client must not be used afterwards.
 */
export class TokenEndpointClient {
  readonly #url: URL;
  readonly #method: 'GET' | 'POST';
  readonly #scope: string | undefined;
  readonly #clientAuth: ClientAuth;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #defaultLifetimeMs: number;
  readonly #maxResponseBytes: number;
  readonly #userAgent: string;
  readonly #agent: HttpAgent;
  /** `host:port` for messages. */
  readonly #where: string;
  /** Origin and path, without the query, for messages and logs. */
  readonly #urlForLog: string;
  #lastResponseDate: number | undefined;

  /** Throws `ConfigError` for a token URL that is not an absolute http(s) URL. */
  constructor(options: TokenEndpointOptions) {
    let url: URL;
    try {
      url = new URL(options.tokenUrl);
    } catch {
      throw new ConfigError(['LOGICNETS_TOKEN_URL is not a valid absolute URL']);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ConfigError([`LOGICNETS_TOKEN_URL must start with https:// (or http://), not ${url.protocol}//`]);
    }
    this.#url = url;
    this.#method = options.method;
    this.#scope = options.scope === '' ? undefined : options.scope;
    this.#clientAuth = options.clientAuth;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#timeoutMs = options.timeoutMs;
    this.#defaultLifetimeMs = options.defaultLifetimeSeconds * 1000;
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#userAgent = options.userAgent ?? 'logicnets-token-proxy';
    const https = url.protocol === 'https:';
    this.#where = `${url.hostname}:${url.port || (https ? '443' : '80')}`;
    this.#urlForLog = urlForLog(url);
    this.#agent = https
      ? new HttpsAgent({
        keepAlive: true,
        rejectUnauthorized: true,
        ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
      })
      : new HttpAgent({ keepAlive: true });
    if (!https && !isLoopback(url.hostname)) {
      this.#logger.warn({ url: this.#urlForLog },
        'the token endpoint URL is plain http: the client assertion and the access token travel unencrypted; use https');
    }
  }

  /** Epoch ms of the `Date` header of the last answer received (success or failure), if it had a valid one. */
  get lastResponseDate(): number | undefined {
    return this.#lastResponseDate;
  }

  /**
   * Requests a token: `grant_type=client_credentials`, the client authentication's parameters,
   * and `scope` if configured; `Accept: application/json`. Resolves with the token, whose
   * `expiresAt` comes from `expires_in`, else from the access token's JWT `exp` (read, not
   * verified), else from the default lifetime. Rejects with a `TokenEndpointError` for every
   * failure of the endpoint; if `signal` aborts, rejects with `signal.reason` instead. A request
   * that fails because a kept-alive connection had been closed by the server is retried once
   * with a fresh assertion.
   */
  async fetchToken(signal?: AbortSignal): Promise<Token> {
    signal?.throwIfAborted();
    try {
      return await this.#attempt(signal, true);
    } catch (error) {
      if (!(error instanceof StaleSocketError)) throw error;
      this.#logger.debug({ url: this.#urlForLog }, 'a kept-alive connection was closed by the server; retrying once');
      return await this.#attempt(signal, false);
    }
  }

  /** Destroys the keep-alive agent and its sockets. Idempotent. */
  close(): void {
    this.#agent.destroy();
  }

  async #attempt(signal: AbortSignal | undefined, mayRetryStale: boolean): Promise<Token> {
    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#userAgent };
    await this.#clientAuth(params, headers);
    if (this.#scope !== undefined) params.set('scope', this.#scope);
    const secrets = [...params].filter(([name, value]) => !PUBLIC_PARAMS.has(name) && value.length >= 8).map(([, v]) => v);
    const url = new URL(this.#url);
    let body: Buffer | undefined;
    if (this.#method === 'GET') {
      for (const [name, value] of params) url.searchParams.append(name, value);
    } else {
      body = Buffer.from(params.toString(), 'utf8');
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(body.length);
    }
    const sentAt = this.#clock.now();
    this.#logger.debug({ url: this.#urlForLog, method: this.#method }, 'requesting an access token');
    try {
      const answer = await this.#exchange(url, headers, body, signal, mayRetryStale);
      return this.#interpret(answer, sentAt, secrets);
    } catch (error) {
      if (error instanceof TokenEndpointError) {
        this.#logger.debug({ url: this.#urlForLog, code: error.code, httpStatus: error.httpStatus }, 'the token request failed');
      }
      throw error;
    }
  }

  /** Sends the request and reads the answer, within the time limit and the size cap. */
  #exchange(url: URL, headers: Record<string, string>, body: Buffer | undefined,
    signal: AbortSignal | undefined, mayRetryStale: boolean): Promise<Answer> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const deadline = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    return new Promise<Answer>((resolve, reject) => {
      if (deadline.aborted) {
        reject(this.#abortError(signal));
        return;
      }
      let settled = false;
      const settle = (error: unknown, answer?: Answer): void => {
        if (settled) return;
        settled = true;
        deadline.removeEventListener('abort', onAbort);
        if (answer !== undefined) {
          resolve(answer);
        } else {
          request.destroy();
          reject(error);
        }
      };
      const onAbort = (): void => settle(this.#abortError(signal));
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const request = send(url, { method: this.#method, headers, agent: this.#agent }, (res) => {
        this.#lastResponseDate = parseHttpDate(res.headers.date);
        const status = res.statusCode ?? 0;
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > this.#maxResponseBytes) {
          settle(this.#tooLarge(status));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#maxResponseBytes) settle(this.#tooLarge(status));
          else chunks.push(chunk);
        });
        res.on('end', () => settle(undefined, { status, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (error) => settle(this.#transportError(error, false)));
        res.on('close', () => {
          if (!res.complete) settle(this.#transportError(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), false));
        });
      });
      deadline.addEventListener('abort', onAbort, { once: true });
      request.on('error', (error) => settle(this.#transportError(error, mayRetryStale && request.reusedSocket)));
      request.end(body);
    });
  }

  /** The caller's abort reason if the caller aborted, else the timeout error. */
  #abortError(signal: AbortSignal | undefined): unknown {
    if (signal?.aborted) return signal.reason;
    return this.#fail('token_endpoint_timeout', `the token endpoint ${this.#where} did not answer within ` +
      `${this.#timeoutMs} ms: check that LOGICNETS_TOKEN_URL is reachable from here (proxy, firewall, DNS) ` +
      'or raise the token request timeout', { retryable: true });
  }

  /** Turns an answer into a token or a `TokenEndpointError`. */
  #interpret(answer: Answer, sentAt: number, secrets: readonly string[]): Token {
    const { status, headers } = answer;
    const text = answer.body.toString('utf8');
    const retryAfterMs = parseRetryAfter(headers['retry-after'], this.#lastResponseDate ?? this.#clock.now());
    const json = parseJsonObject(text);
    const base = { httpStatus: status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };

    if (status >= 300 && status < 400) {
      const location = typeof headers.location === 'string' ? urlForLog(new URL(headers.location, this.#url)) : 'nowhere';
      return this.#throw('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status}, ` +
        `a redirect to ${location}: set LOGICNETS_TOKEN_URL to the final URL (redirects are not followed)`,
      { ...base, retryable: false });
    }
    if (json !== undefined && typeof json.error === 'string' && (status >= 400 || json.access_token === undefined)) {
      return this.#oauthError(status, json, secrets, base);
    }
    if (status >= 500) {
      return this.#throw('token_endpoint_unreachable', `the token endpoint ${this.#where} answered HTTP ${status}: ` +
        'the server or a gateway in front of it is failing or overloaded; try again later', { ...base, retryable: true });
    }
    if (status === 429) {
      const wait = retryAfterMs === undefined ? '' : ` (it asks to wait ${Math.ceil(retryAfterMs / 1000)} s)`;
      return this.#throw('token_request_rejected', `the token endpoint ${this.#where} is rate limiting token ` +
        `requests (HTTP 429)${wait}: too many requests are made with this client`, { ...base, retryable: true });
    }
    const contentType = String(headers['content-type'] ?? 'no content type').split(';')[0]?.trim();
    if (text.trim() === '') {
      return this.#throw('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        'with an empty body: is LOGICNETS_TOKEN_URL the oauth2token endpoint?', { ...base, retryable: status === 408 });
    }
    if (json === undefined) {
      return this.#throw('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        `(${contentType}), not JSON: is LOGICNETS_TOKEN_URL the oauth2token endpoint?`, { ...base, retryable: status === 408 });
    }
    if (status < 200 || status >= 300) {
      return this.#throw('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        'with JSON that is not an OAuth error (no "error" member): is LOGICNETS_TOKEN_URL the oauth2token endpoint?',
      { ...base, retryable: status === 408 });
    }
    return this.#token(status, json, sentAt);
  }

  #token(status: number, json: Record<string, unknown>, sentAt: number): Token {
    const accessToken = json.access_token;
    if (typeof accessToken !== 'string' || accessToken === '') {
      return this.#throw('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        'without an access_token: is LOGICNETS_TOKEN_URL the oauth2token endpoint?', { httpStatus: status, retryable: false });
    }
    const tokenType = json.token_type;
    if (tokenType === undefined) {
      this.#logger.warn({ url: this.#urlForLog }, 'the token response has no token_type; treating the token as Bearer');
    } else if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
      return this.#throw('token_response_invalid', `the token endpoint ${this.#urlForLog} issued a token of type ` +
        `"${safeWord(tokenType)}"; only Bearer tokens (RFC 6750) are supported`, { httpStatus: status, retryable: false });
    }
    const obtainedAt = this.#clock.now();
    const expiresIn = parseExpiresIn(json.expires_in);
    if (json.expires_in !== undefined && expiresIn === undefined) {
      this.#logger.warn({ url: this.#urlForLog }, 'ignoring an expires_in that is not a positive number of seconds');
    }
    let expiresAt: number;
    let expirySource: 'expires_in' | 'jwt_exp' | 'default';
    const jwtExp = expiresIn === undefined ? readJwtExp(accessToken) : undefined;
    if (expiresIn !== undefined) {
      expiresAt = sentAt + expiresIn * 1000;
      expirySource = 'expires_in';
    } else if (jwtExp !== undefined) {
      expiresAt = jwtExp * 1000;
      expirySource = 'jwt_exp';
    } else {
      expiresAt = sentAt + this.#defaultLifetimeMs;
      expirySource = 'default';
    }
    const scope = typeof json.scope === 'string' ? json.scope : undefined;
    this.#logger.debug({
      url: this.#urlForLog, httpStatus: status, expirySource,
      expiresInSeconds: Math.round((expiresAt - obtainedAt) / 1000), scope,
    }, 'received an access token');
    return { accessToken, tokenType: 'Bearer', expiresAt, obtainedAt, ...(scope === undefined ? {} : { scope }) };
  }

  #oauthError(status: number, json: Record<string, unknown>, secrets: readonly string[],
    base: { httpStatus: number; retryAfterMs?: number }): never {
    const error = safeWord(json.error, 64);
    const description = typeof json.error_description === 'string'
      ? sanitizeDescription(json.error_description, secrets) : undefined;
    const hint = OAUTH_HINTS[error] ?? 'see the token endpoint\'s log for details';
    const said = description === undefined || description === '' ? error : `${error}: "${description}"`;
    return this.#throw('token_request_rejected',
      `the token endpoint ${this.#urlForLog} refused the token request (HTTP ${status}, ${said}): ${hint}`,
      {
        ...base,
        oauthError: error,
        ...(description === undefined ? {} : { oauthErrorDescription: description }),
        retryable: status >= 500 || !PERMANENT_OAUTH_ERRORS.has(error),
      });
  }

  /** Maps a socket, DNS or TLS error to a `TokenEndpointError` (or a stale-socket retry). */
  #transportError(error: unknown, stale: boolean): Error {
    const code = typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'UNKNOWN';
    if (stale && (code === 'ECONNRESET' || code === 'EPIPE')) return new StaleSocketError(code);
    const where = this.#where;
    const details = { retryable: true, cause: error };
    if (TLS_UNTRUSTED.has(code)) {
      return this.#fail('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is not trusted ` +
        `(${code}): if the server uses a private or company CA, set LOGICNETS_CA_FILE to that CA's PEM certificate`, details);
    }
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
      return this.#fail('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is expired or not ` +
        `valid yet (${code}): the server's certificate must be renewed, or this machine's clock is wrong`, details);
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return this.#fail('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is not issued for ` +
        `the host name "${this.#url.hostname}": use a host name the certificate names in LOGICNETS_TOKEN_URL`, details);
    }
    if (code === 'EPROTO' || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
      return this.#fail('token_endpoint_tls', `the TLS handshake with the token endpoint ${where} failed (${code}): ` +
        'check that this port serves HTTPS (use http:// for a plain HTTP port)', details);
    }
    switch (code) {
      case 'ECONNREFUSED':
        return this.#fail('token_endpoint_unreachable', `the token endpoint ${where} refused the connection ` +
          '(ECONNREFUSED): check the host and port in LOGICNETS_TOKEN_URL and that the server is running', details);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
      case 'EAI_NONAME':
        return this.#fail('token_endpoint_unreachable', `the host name of the token endpoint ${where} cannot be ` +
          `resolved (${code}): check the host in LOGICNETS_TOKEN_URL and this machine's DNS`, details);
      case 'ECONNRESET':
      case 'EPIPE':
        return this.#fail('token_endpoint_unreachable', `the connection to the token endpoint ${where} was closed ` +
          `before a complete answer came (${code}): the server, a proxy or a firewall cut it; check LOGICNETS_TOKEN_URL ` +
          '(http vs https)', details);
      case 'ETIMEDOUT':
        return this.#fail('token_endpoint_timeout', `connecting to the token endpoint ${where} timed out (ETIMEDOUT): ` +
          'check that it is reachable from here (proxy, firewall)', details);
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
      case 'EADDRNOTAVAIL':
        return this.#fail('token_endpoint_unreachable', `there is no network route to the token endpoint ${where} ` +
          `(${code}): check LOGICNETS_TOKEN_URL and the network`, details);
      default:
        return this.#fail('token_endpoint_unreachable', `calling the token endpoint ${where} failed (${code}): ` +
          'check LOGICNETS_TOKEN_URL and the network', details);
    }
  }

  #tooLarge(status: number): TokenEndpointError {
    return this.#fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} with ` +
      `more than ${this.#maxResponseBytes} bytes, far more than a token response: is LOGICNETS_TOKEN_URL the ` +
      'oauth2token endpoint?', { httpStatus: status, retryable: false });
  }

  #fail(code: TokenEndpointFailure, message: string,
    details: ConstructorParameters<typeof TokenEndpointError>[2]): TokenEndpointError {
    return new TokenEndpointError(code, message, details);
  }

  #throw(code: TokenEndpointFailure, message: string, details: ConstructorParameters<typeof TokenEndpointError>[2]): never {
    throw this.#fail(code, message, details);
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** Epoch ms of an HTTP date, or `undefined`. */
function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : at;
}

/** `Retry-After` (RFC 9110 10.2.3) as milliseconds from `now`: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = parseHttpDate(trimmed);
  return at === undefined ? undefined : Math.max(0, at - now);
}

/** `expires_in` as a positive number of seconds; servers send a number or a numeric string. */
function parseExpiresIn(value: unknown): number | undefined {
  const seconds = typeof value === 'number' ? value
    : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

/** The `exp` of a JWT access token (not verified: the token is the server's business), else `undefined`. */
function readJwtExp(accessToken: string): number | undefined {
  try {
    const { exp } = decodeJwt(accessToken);
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** A server-supplied word (an error code, a token type) reduced to harmless characters. */
function safeWord(value: unknown, max = 32): string {
  return String(value).replace(/[^A-Za-z0-9_.:-]/g, '').slice(0, max);
}

/**
 * A server's `error_description`, made safe for a message: control characters removed, anything
 * we sent as a secret and anything shaped like a JWT replaced, and at most 300 characters.
 */
function sanitizeDescription(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('[redacted]');
  out = out.replace(/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, '[redacted]');
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return out.length > 300 ? `${out.slice(0, 297)}...` : out;
}
