/**
 * What the proxy refuses outright, without routing or a token: `CONNECT` tunnels (answered 405,
 * on the raw socket for `CONNECT host:port`), requests that looped back through the sidecar, and
 * requests Node could not parse (answered on the raw socket, then closed).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../lib/errors.js';
import { writeRawError } from './error-response.js';
import type { Logger } from '../lib/logger.js';
import { noop, requestIdOf } from './exchange.js';
import { NO_UPSTREAM } from './types.js';
import type { ProxyMetrics } from './types.js';

/** The answer to a `CONNECT` request (405, `http_request_denied`). Shared, immutable. */
export const CONNECT_REFUSED = new ProxyError('connect_not_supported',
  'CONNECT tunnels are not supported: the sidecar cannot add the Authorization header inside a TLS tunnel. '
  + 'Send plain http:// URLs through the sidecar; it calls the upstream over https itself.',
  { status: 405, proxyStatus: 'http_request_denied' });

/** The answer to a request whose `Via` header names this sidecar (502, `proxy_loop_detected`). Shared, immutable. */
export const LOOP_DETECTED = new ProxyError('loop_detected',
  'The request has passed through this sidecar already (its Via header names it); check that no upstream URL points back at the sidecar.',
  { status: 502, proxyStatus: 'proxy_loop_detected' });

/**
 * Answers `CONNECT host:port` (the server's `'connect'` event) 405 on the raw socket, which is
 * then closed; writes its request log line on `log` and records it under `NO_UPSTREAM`.
 */
export function refuseConnect(req: IncomingMessage, socket: Duplex, log: Logger, metrics: ProxyMetrics): void {
  socket.on('error', noop);
  const status = writeRawError(socket, CONNECT_REFUSED);
  log.info({ requestId: requestIdOf(req), method: 'CONNECT', status, durationMs: 0 }, 'request');
  metrics.requestFinished(NO_UPSTREAM, status, 0);
}

/**
 * A request Node could not parse (the server's `'clientError'` event): answered like every other
 * error (JSON, Proxy-Status; 431, 408 or 400), then closed. A reset, unwritable or busy socket is
 * only destroyed.
 */
export function refuseUnparseable(error: Error & { code?: string }, socket: Duplex, log: Logger): void {
  socket.on('error', noop);
  if (error.code === 'ECONNRESET' || !socket.writable || (socket as Duplex & { _httpMessage?: unknown })._httpMessage) {
    socket.destroy();
    return;
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const sentence = status === 431 ? 'The request header section is too large.'
    : status === 408 ? 'The request was not received completely in time.'
      : 'The request could not be parsed as HTTP/1.1.';
  writeRawError(socket, new ProxyError('bad_request', sentence, { status, proxyStatus: 'http_request_error' }));
  log.debug({ code: error.code, status }, 'unparseable request');
}
