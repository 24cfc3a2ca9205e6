/**
 * The project's errors: one base class with a stable `code`, the HTTP `status` the proxy answers
 * with, and the RFC 9209 `Proxy-Status` error type. Messages are sentences for an operator; they
 * never contain a token, an assertion, key material or a raw upstream body.
 */

/** Every error code the sidecar can produce. Stable: clients and dashboards may match on them. */
export type ErrorCode =
  | 'config_invalid'
  | 'key_invalid'
  | 'token_request_rejected'
  | 'token_response_invalid'
  | 'token_endpoint_timeout'
  | 'token_endpoint_unreachable'
  | 'token_endpoint_tls'
  | 'token_unavailable'
  | 'upstream_refused'
  | 'upstream_reset'
  | 'upstream_tls'
  | 'upstream_dns'
  | 'upstream_timeout'
  | 'destination_not_configured'
  | 'connect_not_supported'
  | 'loop_detected'
  | 'bad_request'
  | 'method_not_allowed'
  | 'upgrade_not_supported'
  | 'transfer_coding_not_supported'
  | 'request_header_too_large'
  | 'too_many_connections'
  | 'not_found'
  | 'internal_error';

/** RFC 9209 proxy error types used in `Proxy-Status`. */
export type ProxyStatusType =
  | 'dns_error'
  | 'destination_not_found'
  | 'destination_unavailable'
  | 'connection_refused'
  | 'connection_terminated'
  | 'connection_timeout'
  | 'http_response_timeout'
  | 'tls_protocol_error'
  | 'tls_certificate_error'
  | 'tls_alert_received'
  | 'http_request_error'
  | 'http_request_denied'
  | 'http_protocol_error'
  | 'proxy_internal_error'
  | 'proxy_configuration_error'
  | 'proxy_loop_detected'
  | 'connection_limit_reached';

/** Options every project error takes besides its message. */
export interface ProxyErrorOptions {
  status?: number;
  proxyStatus?: ProxyStatusType;
  cause?: unknown;
}

/** Base of every error the sidecar makes itself. */
export class ProxyError extends Error {
  readonly code: ErrorCode;
  /** HTTP status the proxy answers with when this error ends a request. */
  readonly status: number;
  /** RFC 9209 error type for the `Proxy-Status` header. */
  readonly proxyStatus: ProxyStatusType;

  constructor(code: ErrorCode, message: string, options: ProxyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.proxyStatus = options.proxyStatus ?? 'proxy_internal_error';
  }
}

/** A setting is missing or wrong. `problems` holds one line per problem, each naming the setting. */
export class ConfigError extends ProxyError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('config_invalid', `invalid configuration:\n  - ${problems.join('\n  - ')}`, {
      status: 500,
      proxyStatus: 'proxy_configuration_error',
    });
    this.problems = problems;
  }
}

/** The private key cannot be read, parsed, or is not an RSA key of at least 2048 bits. */
export class KeyError extends ProxyError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('key_invalid', message, { status: 503, proxyStatus: 'proxy_configuration_error', ...options });
  }
}

/** Which way a call to the token endpoint failed. */
export type TokenEndpointFailure =
  | 'token_request_rejected'
  | 'token_response_invalid'
  | 'token_endpoint_timeout'
  | 'token_endpoint_unreachable'
  | 'token_endpoint_tls';

/**
 * The token endpoint could not give a token. For RFC 6749 5.2 answers `oauthError` and
 * `oauthErrorDescription` carry the server's words; `httpStatus` is the answer's status, if any;
 * `retryAfterMs` is the server's `Retry-After`, if it sent one; `retryable` says whether trying
 * again can help (an `invalid_client` cannot).
 */
export class TokenEndpointError extends ProxyError {
  readonly httpStatus: number | undefined;
  readonly oauthError: string | undefined;
  readonly oauthErrorDescription: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly retryable: boolean;

  constructor(
    code: TokenEndpointFailure,
    message: string,
    details: {
      httpStatus?: number;
      oauthError?: string;
      oauthErrorDescription?: string;
      retryAfterMs?: number;
      retryable: boolean;
      cause?: unknown;
    },
  ) {
    super(code, message, { status: 503, proxyStatus: 'destination_unavailable', cause: details.cause });
    this.httpStatus = details.httpStatus;
    this.oauthError = details.oauthError;
    this.oauthErrorDescription = details.oauthErrorDescription;
    this.retryAfterMs = details.retryAfterMs;
    this.retryable = details.retryable;
  }
}

/** No valid token can be handed out now. `retryAfterSeconds` is a hint for the client. */
export class TokenUnavailableError extends ProxyError {
  readonly retryAfterSeconds: number;

  constructor(message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super('token_unavailable', message, {
      status: 503,
      proxyStatus: 'destination_unavailable',
      cause: options.cause,
    });
    this.retryAfterSeconds = Math.max(1, Math.ceil(options.retryAfterSeconds ?? 5));
  }
}

/**
 * A word from outside (a server's error code or token type, a JWK's `kty`) reduced to harmless
 * characters (`A-Z a-z 0-9 _ . : -`) and at most `max` of them, for a message. Pure.
 */
export function safeWord(value: unknown, max = 32): string {
  return String(value).replace(/[^A-Za-z0-9_.:-]/g, '').slice(0, max);
}

/**
 * The `code` of an error (e.g. `ECONNREFUSED`, `ERR_OSSL_...`), or of the first error in its
 * `cause` chain that has one; `undefined` when none has. Node's codes never contain input. Pure.
 */
export function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const cause = (current as { cause?: unknown }).cause;
    if (cause === current) return undefined;
    current = cause;
  }
  return undefined;
}
