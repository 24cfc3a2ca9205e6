/**
 * The one place that turns a failure into the client's answer: a status, a JSON body
 * `{"error": code, "message": sentence}`, and a `Proxy-Status` header (RFC 9209) naming the
 * sidecar and the error type. Never an upstream's raw error text, never a stack.
 * (fastify-reply-from `lib/errors.js`.)
 */
import { STATUS_CODES } from 'node:http';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../lib/logger.js';
import { errorCode, ProxyError, TokenEndpointError, TokenUnavailableError } from '../lib/errors.js';
import { classifyNetworkError } from '../lib/network-errors.js';
import type { ProxyStatusType } from '../lib/errors.js';
import { VIA_PSEUDONYM } from './header-rules.js';

/** Methods a 405 advertises in `Allow`. */
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** Retry-After sent with a 503 when the cause gives no better hint, in seconds. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** A rendered error answer, for `sendError` and for writing on a raw socket (CONNECT). */
export interface ErrorAnswer {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: string;
}

/** Escapes `text` as an RFC 8941 sf-string (printable ASCII only; others become `?`). */
function sfString(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if (code >= 0x20 && code <= 0x7e && char.length === 1) out += char;
    else out += code === 0x0a || code === 0x09 ? ' ' : '?';
  }
  return `${out}"`;
}

/** The `Proxy-Status` value: `logicnets-token-proxy; error=<type>; details="<sentence>"`. */
export function formatProxyStatus(type: ProxyStatusType, details: string): string {
  return `${VIA_PSEUDONYM}; error=${type}; details=${sfString(details)}`;
}

function upstreamError(code: ProxyError['code'], status: number, proxyStatus: ProxyStatusType, message: string, cause: unknown): ProxyError {
  return new ProxyError(code, message, { status, proxyStatus, cause });
}

/**
 * Maps any failure to a `ProxyError`. A `ProxyError` is returned as is; Node socket, DNS and TLS
 * errors of the upstream call (classified by lib/network-errors.ts) become 502/504 errors whose
 * sentence names `upstream` and the error code (never the error's own text); anything else is a
 * 500 `internal_error`.
 */
export function toProxyError(error: unknown, upstream?: string): ProxyError {
  if (error instanceof ProxyError) return error;
  const who = upstream === undefined ? 'the upstream' : `the upstream ${upstream}`;
  const code = errorCode(error);
  if (code === undefined) {
    return new ProxyError('internal_error', 'The sidecar failed while handling the request; see its log.', {
      status: 500, proxyStatus: 'proxy_internal_error', cause: error,
    });
  }
  const { kind, certificate } = classifyNetworkError(code, error instanceof Error ? error.message : '');
  switch (kind) {
    case 'refused':
      return upstreamError('upstream_refused', 502, 'connection_refused',
        `Connecting to ${who} was refused (${code}); check that it runs and that its URL and port are right.`, error);
    case 'unreachable':
      return upstreamError('upstream_refused', 502, 'destination_unavailable',
        `The host of ${who} cannot be reached (${code}); check the network path to it.`, error);
    case 'reset':
      return upstreamError('upstream_reset', 502, 'connection_terminated',
        `The connection to ${who} was closed before it answered (${code}); check the upstream's health and logs, ` +
        'and, where it requires mTLS, that it accepts the client certificate.', error);
    case 'dns':
      return upstreamError('upstream_dns', 502, 'dns_error',
        `The host name of ${who} could not be resolved (${code}); check the upstream URL and the DNS.`, error);
    case 'timeout':
      return upstreamError('upstream_timeout', 504, 'connection_timeout',
        `Connecting to ${who} timed out (${code}); check that it runs and is reachable.`, error);
    case 'tls_certificate':
      return upstreamError('upstream_tls', 502, 'tls_certificate_error', certificate === 'expired'
        ? `The TLS certificate of ${who} is expired or not valid yet (${code}); it must be renewed, or this machine's clock is wrong.`
        : certificate === 'host_name'
          ? `The TLS certificate of ${who} is not issued for the host name in its URL (${code}); use a name the certificate names.`
          : `The TLS certificate of ${who} could not be verified (${code}); set the upstream's CA file to the CA that signed it.`, error);
    case 'client_certificate':
      return upstreamError('upstream_tls', 502, 'tls_alert_received',
        `${capitalise(who)} refused the TLS handshake for want of an acceptable client certificate (${code}); ` +
        "it requires mTLS: configure a client certificate it trusts for this upstream, and check that it has not expired.", error);
    case 'egress_proxy':
      return upstreamError('upstream_refused', 502, 'destination_unavailable',
        `The egress proxy on the way to ${who} could not be reached or refused the tunnel (${code}); ` +
        "see the sidecar's log, and check HTTPS_PROXY / NO_PROXY or the upstream's egressProxy.", error);
    case 'tls_protocol':
      return upstreamError('upstream_tls', 502, 'tls_protocol_error',
        `The TLS handshake with ${who} failed (${code}); check that its URL uses the right scheme and port.`, error);
    case 'http_protocol':
      return upstreamError('upstream_reset', 502, 'http_protocol_error',
        `${capitalise(who)} sent a malformed HTTP response (${code}).`, error);
    case 'other':
      return upstreamError('upstream_reset', 502, 'connection_terminated',
        `The exchange with ${who} failed (${code}); check the upstream's health and logs.`, error);
  }
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function retryAfterSeconds(error: ProxyError): number {
  if (error instanceof TokenUnavailableError) return error.retryAfterSeconds;
  if (error instanceof TokenEndpointError && error.retryAfterMs !== undefined) {
    return Math.max(1, Math.ceil(error.retryAfterMs / 1000));
  }
  return DEFAULT_RETRY_AFTER_SECONDS;
}

/**
 * Renders `error` (mapped with `toProxyError`) as an answer: its status, `Content-Type:
 * application/json`, `Cache-Control: no-store`, `Proxy-Status`, `Retry-After` on a 503, `Allow`
 * on a 405, and the JSON body.
 */
export function renderError(error: unknown, requestId?: string): ErrorAnswer {
  const failure = toProxyError(error);
  const body = JSON.stringify({ error: failure.code, message: failure.message });
  const headers: OutgoingHttpHeaders = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'proxy-status': formatProxyStatus(failure.proxyStatus, failure.message),
  };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  if (failure.status === 503) headers['retry-after'] = String(retryAfterSeconds(failure));
  if (failure.status === 405) headers.allow = ALLOWED_METHODS;
  return { status: failure.status, headers, body };
}

/**
 * Ends `res` with the answer for `error` (with `X-Request-Id: requestId` when given). When the response has already started (headers sent)
 * the client cannot be told any more: the connection is destroyed instead, so the client sees a
 * truncated response rather than a wrong one. Does nothing for a response already closed. When
 * the request still has an unread body, the connection is closed after the answer. Logs the
 * failure at `warn` (5xx) or `debug` (4xx) with its code, never a secret.
 */
export function sendError(res: ServerResponse, error: unknown, logger?: Logger, requestId?: string): void {
  const failure = toProxyError(error);
  if (logger !== undefined) {
    const fields = { requestId, code: failure.code, status: failure.status, cause: errorCode(failure.cause) };
    if (failure.status >= 500) logger.warn(fields, failure.message);
    else logger.debug(fields, failure.message);
  }
  if (res.destroyed || res.writableEnded) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const answer = renderError(failure, requestId);
  const req = res.req as ServerResponse['req'] | undefined;
  if (req !== undefined && !req.complete && hasBody(req.headers)) res.setHeader('connection', 'close');
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

/**
 * Writes the answer for `error` on a raw socket, where no `ServerResponse` exists (a `CONNECT`, a
 * request Node could not parse), and ends the socket. Returns the status written.
 */
export function writeRawError(socket: Duplex, error: unknown, requestId?: string): number {
  const answer = renderError(error, requestId);
  let head = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) head += `${name}: ${String(value)}\r\n`;
  socket.end(`${head}connection: close\r\n\r\n${answer.body}`);
  return answer.status;
}

function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
