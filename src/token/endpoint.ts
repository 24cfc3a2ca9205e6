/**
 * The token endpoint client: one client credentials request (RFC 6749 4.4) authenticated by a
 * `ClientAuth` strategy, sent as LogicNets documents it (GET, query parameters) or as RFC 6749
 * asks (POST, form body). Every failure becomes a `TokenEndpointError` with a stable code and a
 * sentence that tells an operator what to fix; the answer is read per RFC 6749 5.1 / 5.2 by
 * token/response.ts and transport errors are named by token/transport-error.ts. Uses node:http /
 * node:https directly: its own keep-alive agent, a time limit covering connect and answer, and a
 * cap on the answer's size. Never logs the URL's query, the assertion or the token.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Clock } from '../lib/clock.js';
import { ConfigError, errorCode, TokenEndpointError } from '../lib/errors.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { trustedSecureContext } from '../lib/tls-trust.js';
import { RESERVED_TOKEN_PARAMS } from '../lib/token-params.js';
import { urlForLog } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import type { ClientAuth, Token } from './token.js';
import { parseHttpDate, secretParamValues, TokenResponseReader } from './response.js';
import type { TokenAnswer } from './response.js';
import { TOKEN_SETTING_WORDS } from './setting-names.js';
import type { SettingNames } from './setting-names.js';
import { transportFailure } from './transport-error.js';

/** Default cap on a token response body, in bytes. */
export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

/** A token and the server's clock, as `exchangeToken` reports them. */
export interface TokenExchange {
  /** The token, when the request gave one. */
  readonly token?: Token;
  /** Why the request gave no token. */
  readonly error?: Error;
  /** Epoch ms of the `Date` header of the answer (success or failure), if it had a valid one. */
  readonly responseDate?: number;
}

/** Per-call facts the HTTP exchange reports back (one object per `fetchToken` call, never shared). */
interface CallFacts {
  responseDate?: number;
}

/** Options of `TokenEndpointClient`. */
export interface TokenEndpointOptions {
  /** The token endpoint, e.g. `https://lua5.logicnets.local/logicnets/oauth2token`. */
  tokenUrl: string;
  /** `GET`: parameters in the query (LogicNets); `POST`: form body (RFC 6749). */
  method: 'GET' | 'POST';
  /** Optional `scope` parameter. */
  scope?: string;
  /**
   * Extra parameters added to every token request (e.g. `audience`, `resource`): in the query for
   * GET, in the form for POST. Their values are treated as secrets (never logged, redacted from
   * echoed error descriptions). Names in `RESERVED_TOKEN_PARAMS` are refused (`ConfigError`).
   */
  extraParams?: readonly (readonly [string, string])[];
  /** Adds the client's credentials (e.g. `privateKeyJwt`) to every request. */
  clientAuth: ClientAuth;
  clock: Clock;
  logger: Logger;
  /** Time limit for one request, connect to last byte, in ms. */
  timeoutMs: number;
  /** Extra trusted CA certificates (PEM), added to Node's root certificates. Verification is always on. */
  ca?: string;
  /**
   * The agent to send with (egress proxy, client certificate), replacing the client's own
   * keep-alive agent built from `ca`; `close()` destroys it. It must suit the token URL's scheme.
   */
  agent?: HttpAgent;
  /** Lifetime assumed for a token with neither `expires_in` nor a JWT `exp`, in seconds. */
  defaultLifetimeSeconds: number;
  /** Names the settings a message's hint points at (the wiring knows where each came from); the token path's own words when absent. */
  settingNames?: SettingNames;
  /** Cap on the response body (default 1 MiB); a longer answer is abandoned. */
  maxResponseBytes?: number;
  /** `User-Agent` header (default `logicnets-token-proxy`). */
  userAgent?: string;
}

/** An error on a kept-alive socket the server had already closed: worth one immediate retry. */
class StaleSocketError extends Error {}

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
  readonly #extraParams: readonly (readonly [string, string])[];
  readonly #clientAuth: ClientAuth;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #userAgent: string;
  readonly #agent: HttpAgent;
  readonly #reader: TokenResponseReader;
  readonly #names: SettingNames;
  /** `host:port` for messages. */
  readonly #where: string;
  /** Origin and path, without the query, for messages and logs. */
  readonly #urlForLog: string;

  /** Throws `ConfigError` for a token URL that is not an absolute http(s) URL. */
  constructor(options: TokenEndpointOptions) {
    let url: URL;
    try {
      url = new URL(options.tokenUrl);
    } catch {
      throw new ConfigError(['the token URL is not a valid absolute URL']);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ConfigError([`the token URL must start with https:// (or http://), not ${url.protocol}//`]);
    }
    for (const [name] of options.extraParams ?? []) {
      if (name === '' || RESERVED_TOKEN_PARAMS.has(name)) {
        throw new ConfigError([`the extra token request parameter "${name}" is empty or one the sidecar sets itself`]);
      }
    }
    this.#extraParams = options.extraParams ?? [];
    this.#url = url;
    this.#method = options.method;
    this.#scope = options.scope === '' ? undefined : options.scope;
    this.#clientAuth = options.clientAuth;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#timeoutMs = options.timeoutMs;
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#userAgent = options.userAgent ?? 'logicnets-token-proxy';
    const https = url.protocol === 'https:';
    this.#where = `${url.hostname}:${url.port || (https ? '443' : '80')}`;
    this.#urlForLog = urlForLog(url);
    this.#names = options.settingNames ?? TOKEN_SETTING_WORDS;
    this.#reader = new TokenResponseReader({
      url, urlForLog: this.#urlForLog, where: this.#where, clock: this.#clock, logger: this.#logger,
      defaultLifetimeMs: options.defaultLifetimeSeconds * 1000, settingNames: this.#names,
    });
    this.#agent = options.agent ?? (https
      ? new HttpsAgent({
        keepAlive: true,
        rejectUnauthorized: true,
        secureContext: trustedSecureContext(options.ca),
      })
      : new HttpAgent({ keepAlive: true }));
    if (!https && !isLoopbackHost(url.hostname)) {
      this.#logger.warn({ url: this.#urlForLog },
        'the token endpoint URL is plain http: the client assertion and the access token travel unencrypted; use https');
    }
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
    return this.#fetch(signal, {});
  }

  /**
   * Like `fetchToken`, but never rejects (except with `signal.reason` on abort): reports the token
   * or the error together with the `Date` of the server's answer, for comparing clocks (`check`).
   */
  async exchangeToken(signal?: AbortSignal): Promise<TokenExchange> {
    const facts: CallFacts = {};
    try {
      const token = await this.#fetch(signal, facts);
      return { token, ...(facts.responseDate === undefined ? {} : { responseDate: facts.responseDate }) };
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error;
      return { error: error instanceof Error ? error : new Error(String(error)),
        ...(facts.responseDate === undefined ? {} : { responseDate: facts.responseDate }) };
    }
  }

  async #fetch(signal: AbortSignal | undefined, facts: CallFacts): Promise<Token> {
    signal?.throwIfAborted();
    try {
      return await this.#attempt(signal, true, facts);
    } catch (error) {
      if (!(error instanceof StaleSocketError)) throw error;
      this.#logger.debug({ url: this.#urlForLog }, 'a kept-alive connection was closed by the server; retrying once');
      return await this.#attempt(signal, false, facts);
    }
  }

  /** Destroys the keep-alive agent and its sockets. Idempotent. */
  close(): void {
    this.#agent.destroy();
  }

  async #attempt(signal: AbortSignal | undefined, mayRetryStale: boolean, facts: CallFacts): Promise<Token> {
    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#userAgent };
    await this.#clientAuth(params, headers);
    if (this.#scope !== undefined) params.set('scope', this.#scope);
    for (const [name, value] of this.#extraParams) params.append(name, value);
    const secrets = [...secretParamValues(params), ...this.#extraParams.map(([, value]) => value).filter((v) => v.length >= 4)];
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
      const answer = await this.#exchange(url, headers, body, signal, mayRetryStale, facts);
      return this.#reader.read(answer, { sentAt, secrets, responseDate: facts.responseDate });
    } catch (error) {
      if (error instanceof TokenEndpointError) {
        this.#logger.debug({ url: this.#urlForLog, code: error.code, httpStatus: error.httpStatus }, 'the token request failed');
      }
      throw error;
    }
  }

  /** Sends the request and reads the answer, within the time limit and the size cap. */
  #exchange(url: URL, headers: Record<string, string>, body: Buffer | undefined,
    signal: AbortSignal | undefined, mayRetryStale: boolean, facts: CallFacts): Promise<TokenAnswer> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const deadline = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    return new Promise<TokenAnswer>((resolve, reject) => {
      if (deadline.aborted) {
        reject(this.#abortError(signal));
        return;
      }
      let settled = false;
      const settle = (error: unknown, answer?: TokenAnswer): void => {
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
        facts.responseDate = parseHttpDate(res.headers.date);
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
    return new TokenEndpointError('token_endpoint_timeout', `the token endpoint ${this.#where} did not answer within ` +
      `${this.#timeoutMs} ms: check that ${this.#names('tokenUrl')} is reachable from here (proxy, firewall, DNS) ` +
      'or raise the token request timeout', { retryable: true });
  }

  /** Maps a socket, DNS or TLS error to a `TokenEndpointError` (or a stale-socket retry). */
  #transportError(error: unknown, stale: boolean): Error {
    const code = errorCode(error) ?? 'UNKNOWN';
    if (stale && (code === 'ECONNRESET' || code === 'EPIPE')) return new StaleSocketError(code);
    return transportFailure(code, error, this.#where, this.#url.hostname, this.#names);
  }

  #tooLarge(status: number): TokenEndpointError {
    return new TokenEndpointError('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ` +
      `${status} with more than ${this.#maxResponseBytes} bytes, far more than a token response: is ` +
      `${this.#names('tokenUrl')} the oauth2token endpoint?`, { httpStatus: status, retryable: false });
  }
}
