/**
 * What the proxy refuses on the raw socket, where no `ServerResponse` exists: `CONNECT` tunnels
 * (405), protocol upgrades (501), connections beyond the connection limit (503), and requests Node
 * could not parse (400, 408, 431). Each answer is the usual JSON with `Proxy-Status` and an
 * `X-Request-Id`, and the socket is closed after it. Also the shared `ProxyError`s for CONNECT
 * and loops, which the exchange answers like any other error.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../lib/errors.js';
import { writeRawError } from './error-response.js';
import type { Logger } from '../lib/logger.js';
import { REFUSALS } from './admission.js';
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

/** The answer on a connection beyond the connection limit (503), naming the setting with `limitName`. */
export function overCapacity(limitName: string): ProxyError {
  return new ProxyError('too_many_connections',
    `The sidecar has as many client connections open as it accepts (${limitName}); retry shortly.`,
    { status: 503, proxyStatus: 'connection_limit_reached' });
}

/** Answers a request on its raw socket, logs its line on `log` and records it under `NO_UPSTREAM`. */
function refuseOnSocket(req: IncomingMessage, socket: Duplex, error: ProxyError, log: Logger, metrics: ProxyMetrics): void {
  socket.on('error', noop);
  const requestId = requestIdOf(req);
  const status = writeRawError(socket, error, requestId);
  log.info({ requestId, method: req.method, status, durationMs: 0 }, 'request');
  metrics.requestFinished(NO_UPSTREAM, status, 0);
}

/** `CONNECT host:port` (the server's `'connect'` event): 405. */
export function refuseConnect(req: IncomingMessage, socket: Duplex, log: Logger, metrics: ProxyMetrics): void {
  refuseOnSocket(req, socket, CONNECT_REFUSED, log, metrics);
}

/** An upgrade request (the server's `'upgrade'` event: `Connection: upgrade` with `Upgrade`): 501. */
export function refuseUpgrade(req: IncomingMessage, socket: Duplex, log: Logger, metrics: ProxyMetrics): void {
  refuseOnSocket(req, socket, REFUSALS.upgrade, log, metrics);
}

/** A connection beyond the connection limit: `answer` (503, `overCapacity`) at once, before its request is read, then closed. */
export function refuseOverCapacity(socket: Duplex, answer: ProxyError): void {
  socket.on('error', noop);
  writeRawError(socket, answer, randomUUID());
}

/**
 * A request Node could not parse (the server's `'clientError'` event): answered like every other
 * error (JSON, Proxy-Status; 431, 408 or 400), then closed. A reset or unwritable socket is only
 * destroyed. Not for a connection with a response in flight (the server waits for it to end).
 */
export function refuseUnparseable(error: Error & { code?: string }, socket: Duplex, log: Logger): void {
  socket.on('error', noop);
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const sentence = status === 431 ? 'The request header section is too large.'
    : status === 408 ? 'The request was not received completely in time.'
      : 'The request could not be parsed as HTTP/1.1.';
  writeRawError(socket, new ProxyError(status === 431 ? 'request_header_too_large' : 'bad_request', sentence,
    { status, proxyStatus: 'http_request_error' }), randomUUID());
  log.debug({ code: error.code, status }, 'unparseable request');
}
