/**
 * Reading the token endpoint's answer per RFC 6749 5.1 / 5.2. A successful JSON answer becomes a
 * `Token` whose expiry comes from `expires_in`, else the access token's JWT `exp`, else a default,
 * capped at a day (`MAX_TOKEN_LIFETIME_MS`); an `expires_in` that is present but not a positive
 * number, a JWT `exp` already past, and an `access_token` that is not RFC 6750 `b64token` syntax
 * are refused (`token_response_invalid`); every other answer (an OAuth error, a redirect, a 5xx, a 429, an empty or non-JSON body) becomes
 * a `TokenEndpointError` with a stable code, whether retrying can help, the server's `Retry-After`,
 * and a sentence telling an operator what to fix. Anything the server echoes back of what was sent
 * as a secret is redacted from those sentences. Knows nothing of sockets: token/endpoint.ts makes
 * the HTTP call. Never logs the access token.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { decodeJwt } from 'jose';
import type { Clock } from '../lib/clock.js';
import { safeWord, TokenEndpointError } from '../lib/errors.js';
import type { TokenEndpointFailure } from '../lib/errors.js';
import { urlForLog } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import { TOKEN_SETTING_WORDS } from './setting-names.js';
import type { SettingNames } from './setting-names.js';
import type { Token } from './token.js';

/** A complete answer of the token endpoint, as read off the wire (within the size cap). */
export interface TokenAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Options of `TokenResponseReader`. */
export interface TokenResponseReaderOptions {
  /** The token URL; a redirect's `Location` is resolved against it. */
  url: URL;
  /** Origin and path of the token URL, without the query, for messages and logs. */
  urlForLog: string;
  /** `host:port` of the token endpoint, for messages. */
  where: string;
  clock: Clock;
  logger: Logger;
  /** Lifetime assumed for a token with neither `expires_in` nor a JWT `exp`, in ms. */
  defaultLifetimeMs: number;
  /** Names the settings a hint points at; the token path's own words when absent. */
  settingNames?: SettingNames;
}

/** What the reader needs to know about the request an answer belongs to. */
export interface TokenRequestFacts {
  /** When the request was sent (epoch ms): `expires_in` counts from then. */
  sentAt: number;
  /** The secret values that were sent (see `secretParamValues`), redacted from echoed descriptions. */
  secrets: readonly string[];
  /** Epoch ms of the answer's valid `Date` header; an HTTP-date `Retry-After` counts from it, else from the clock. */
  responseDate: number | undefined;
}

/** The longest lifetime a token is trusted for: a longer one is capped, so tokens are refreshed at least daily. */
export const MAX_TOKEN_LIFETIME_MS = 24 * 3600 * 1000;

/** RFC 6750 2.1 `b64token`, the syntax of a Bearer token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** OAuth errors that the same request will keep getting until the configuration changes. */
const PERMANENT_OAUTH_ERRORS = new Set([
  'invalid_client', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_request',
]);

/** What to check for each OAuth error, naming the settings with `names`. */
function oauthHints(names: SettingNames): Readonly<Record<string, string>> {
  return {
    invalid_client: `check the client id (${names('clientId')}, the assertion's sub), the issuer ` +
      `(${names('clientIssuer')}), the audience (${names('tokenAudience')}) and that the private key matches ` +
      'the public key of the server user',
    invalid_grant: 'the server refused the assertion or the grant: check this machine\'s clock (iat/exp), ' +
      `the audience (${names('tokenAudience')}) and the assertion lifetime (${names('assertionTtl')})`,
    unauthorized_client: 'the server user may not use the client credentials grant: check its authentication ' +
      'method (Bearer Authentication with RS256 signed JWT) and its roles',
    unsupported_grant_type: `the server does not accept client_credentials here: is ${names('tokenUrl')} the ` +
      'oauth2token endpoint?',
    invalid_scope: `check ${names('tokenScope')} (leave it unset unless the server asks for a scope)`,
    invalid_request: `the server could not read the request: check ${names('tokenMethod')} (GET or POST, as the ` +
      `server documents) and ${names('tokenUrl')}`,
  };
}

/** Parameters whose values are not secret; every other value is kept out of messages. */
const PUBLIC_PARAMS = new Set(['grant_type', 'client_assertion_type', 'scope', 'client_id']);

/**
 * Turns token endpoint answers into tokens or `TokenEndpointError`s. Keeps no state between
 * answers, so one reader may serve any number of concurrent requests.
 */
export class TokenResponseReader {
  readonly #url: URL;
  readonly #urlForLog: string;
  readonly #where: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #defaultLifetimeMs: number;
  readonly #hints: Readonly<Record<string, string>>;
  readonly #tokenUrl: string;

  constructor(options: TokenResponseReaderOptions) {
    const names = options.settingNames ?? TOKEN_SETTING_WORDS;
    this.#hints = oauthHints(names);
    this.#tokenUrl = names('tokenUrl');
    this.#url = options.url;
    this.#urlForLog = options.urlForLog;
    this.#where = options.where;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#defaultLifetimeMs = options.defaultLifetimeMs;
  }

  /**
   * The token of a 2xx JSON answer carrying a Bearer `access_token`; throws a `TokenEndpointError`
   * for any other answer. Redirects are not followed: they are reported with their target's
   * origin and path.
   */
  read(answer: TokenAnswer, request: TokenRequestFacts): Token {
    const { status, headers } = answer;
    const text = answer.body.toString('utf8');
    const retryAfterMs = parseRetryAfter(headers['retry-after'], request.responseDate ?? this.#clock.now());
    const json = parseJsonObject(text);
    const base = { httpStatus: status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };

    if (status >= 300 && status < 400) {
      const location = redirectTarget(headers.location, this.#url);
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status}, ` +
        `a redirect to ${location}: set ${this.#tokenUrl} to the final URL (redirects are not followed)`,
      { ...base, retryable: false });
    }
    if (json !== undefined && typeof json.error === 'string' && (status >= 400 || json.access_token === undefined)) {
      return this.#oauthError(status, json, request.secrets, base);
    }
    if (status >= 500) {
      return fail('token_endpoint_unreachable', `the token endpoint ${this.#where} answered HTTP ${status}: ` +
        'the server or a gateway in front of it is failing or overloaded; try again later', { ...base, retryable: true });
    }
    if (status === 429) {
      const wait = retryAfterMs === undefined ? '' : ` (it asks to wait ${Math.ceil(retryAfterMs / 1000)} s)`;
      return fail('token_request_rejected', `the token endpoint ${this.#where} is rate limiting token ` +
        `requests (HTTP 429)${wait}: too many requests are made with this client`, { ...base, retryable: true });
    }
    const contentType = String(headers['content-type'] ?? 'no content type').split(';')[0]?.trim();
    if (text.trim() === '') {
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        `with an empty body: is ${this.#tokenUrl} the oauth2token endpoint?`, { ...base, retryable: status === 408 });
    }
    if (json === undefined) {
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        `(${contentType}), not JSON: is ${this.#tokenUrl} the oauth2token endpoint?`, { ...base, retryable: status === 408 });
    }
    if (status < 200 || status >= 300) {
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        `with JSON that is not an OAuth error (no "error" member): is ${this.#tokenUrl} the oauth2token endpoint?`,
      { ...base, retryable: status === 408 });
    }
    return this.#token(status, json, request.sentAt);
  }

  #token(status: number, json: Record<string, unknown>, sentAt: number): Token {
    const accessToken = json.access_token;
    if (typeof accessToken !== 'string' || accessToken === '') {
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered HTTP ${status} ` +
        'without an access_token: is the token URL the oauth2token endpoint?', { httpStatus: status, retryable: false });
    }
    if (!B64TOKEN.test(accessToken)) {
      // Never quote it: it may be a real token with one stray character.
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} issued an access_token that is ` +
        'not RFC 6750 Bearer token syntax (letters, digits, -._~+/ and trailing =; no spaces, commas or control ' +
        'characters): it cannot be sent in an Authorization header', { httpStatus: status, retryable: false });
    }
    const tokenType = json.token_type;
    if (tokenType === undefined) {
      this.#logger.warn({ url: this.#urlForLog }, 'the token response has no token_type; treating the token as Bearer');
    } else if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} issued a token of type ` +
        `"${safeWord(tokenType)}"; only Bearer tokens (RFC 6750) are supported`, { httpStatus: status, retryable: false });
    }
    const obtainedAt = this.#clock.now();
    const missing = json.expires_in === undefined || json.expires_in === null;
    const expiresIn = missing ? undefined : parseExpiresIn(json.expires_in);
    if (!missing && expiresIn === undefined) {
      return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} answered with an expires_in of ` +
        `${describeValue(json.expires_in)}, not a positive number of seconds (RFC 6749 5.1); the token was not used: ` +
        'the server is misconfigured or not an OAuth 2.0 token endpoint', { httpStatus: status, retryable: false });
    }
    let expiresAt: number;
    let expirySource: 'expires_in' | 'jwt_exp' | 'default';
    const jwtExp = expiresIn === undefined ? readJwtExp(accessToken) : undefined;
    if (expiresIn !== undefined) {
      expiresAt = sentAt + Math.min(expiresIn * 1000, MAX_TOKEN_LIFETIME_MS);
      expirySource = 'expires_in';
    } else if (jwtExp !== undefined) {
      if (jwtExp * 1000 <= obtainedAt) {
        return fail('token_response_invalid', `the token endpoint ${this.#urlForLog} issued a JWT access token whose ` +
          'exp has passed and no expires_in: check that this machine\'s clock and the server\'s agree (NTP)',
        { httpStatus: status, retryable: false });
      }
      expiresAt = Math.min(jwtExp * 1000, obtainedAt + MAX_TOKEN_LIFETIME_MS);
      expirySource = 'jwt_exp';
    } else {
      expiresAt = sentAt + Math.min(this.#defaultLifetimeMs, MAX_TOKEN_LIFETIME_MS);
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
    const hint = this.#hints[error] ?? 'see the token endpoint\'s log for details';
    const said = description === undefined || description === '' ? error : `${error}: "${description}"`;
    return fail('token_request_rejected',
      `the token endpoint ${this.#urlForLog} refused the token request (HTTP ${status}, ${said}): ${hint}`,
      {
        ...base,
        oauthError: error,
        ...(description === undefined ? {} : { oauthErrorDescription: description }),
        retryable: status >= 500 || !PERMANENT_OAUTH_ERRORS.has(error),
      });
  }
}

/**
 * The values of a token request's parameters that are secret (the assertion, a client secret):
 * every value of 8 characters or more except those of `grant_type`, `client_assertion_type`,
 * `scope` and `client_id`. Pure.
 */
export function secretParamValues(params: URLSearchParams): string[] {
  return [...params].filter(([name, value]) => !PUBLIC_PARAMS.has(name) && value.length >= 8).map(([, v]) => v);
}

/** Epoch ms of an HTTP date, or `undefined`. Pure. */
export function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : at;
}

/** `Retry-After` (RFC 9110 10.2.3) as milliseconds from `now`: delay-seconds or an HTTP date. Pure. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = parseHttpDate(trimmed);
  return at === undefined ? undefined : Math.max(0, at - now);
}

function fail(code: TokenEndpointFailure, message: string, details: ConstructorParameters<typeof TokenEndpointError>[2]): never {
  throw new TokenEndpointError(code, message, details);
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

/**
 * `expires_in` as a positive finite number of seconds (servers send a number or a numeric string),
 * else `undefined`. Huge values are returned as they are: the caller caps the lifetime.
 */
function parseExpiresIn(value: unknown): number | undefined {
  const seconds = typeof value === 'number' ? value
    : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

/** A server-sent JSON value, described for a message without quoting much of it. */
function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `"${safeWord(value, 20)}" (a string)`;
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : typeof value;
}

/**
 * The `exp` of a JWT access token (not verified: the token is the server's business), else
 * `undefined`: also for an `exp` that is not a finite number, which is treated as no `exp`.
 */
function readJwtExp(accessToken: string): number | undefined {
  try {
    const { exp } = decodeJwt(accessToken);
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `word` holds three consecutive dot-separated parts of 8 or more characters (a JWT, a JWS). */
function looksLikeJwt(word: string): boolean {
  let run = 0;
  for (const part of word.split('.')) {
    run = part.length >= 8 ? run + 1 : 0;
    if (run >= 3) return true;
  }
  return false;
}

/**
 * A server's `error_description`, made safe for a message: control characters removed, anything
 * we sent as a secret and anything shaped like a JWT replaced, and at most 300 characters.
 */
function sanitizeDescription(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('[redacted]');
  // Only the start is ever shown; and every step below is linear in its input (a pattern that
  // backtracks over a megabyte of token characters would block the event loop for minutes).
  out = out.slice(0, 2000);
  out = out.replace(/[A-Za-z0-9_.-]+/g, (word) => (looksLikeJwt(word) ? '[redacted]' : word));
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return out.length > 300 ? `${out.slice(0, 297)}...` : out;
}

/** Where a redirect points, for a message: origin and path only, and never a parse error. */
function redirectTarget(location: string | string[] | undefined, base: URL): string {
  if (typeof location !== 'string') return 'nowhere';
  try {
    return urlForLog(new URL(location, base));
  } catch {
    return 'an unparseable Location';
  }
}
