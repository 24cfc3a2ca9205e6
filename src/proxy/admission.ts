/**
 * Whether a parsed request may be forwarded at all, and how its body is framed upstream.
 *
 * The invariant this file guards: the upstream parses exactly the request the client sent, with
 * the same body, and nothing else. So the sidecar decides the framing of every forwarded request
 * itself, from what Node's parser framed (never by copying or filtering the client's framing
 * fields), and refuses every request whose framing or header block it cannot see whole or
 * unambiguously:
 * - more header fields than `maxHeaderCount` (Node keeps only so many; later ones, a
 *   `Content-Length` among them, would vanish while the parser still frames the body by them): 431;
 * - two `Host` fields, or none on HTTP/1.1 (RFC 9112 3.2): 400;
 * - two `Content-Length` fields (even equal ones), or `Content-Length` with `Transfer-Encoding`
 *   (RFC 9112 6.3): 400;
 * - a transfer coding other than exactly `chunked` (`gzip, chunked`, `chunked, chunked`): 501;
 * - `TRACE` (it would echo the injected `Authorization` back to the client, RFC 9110 9.3.8): 405;
 * - any request carrying `Upgrade` (WebSocket, h2c): the sidecar cannot add a token to what
 *   follows an upgrade, so it says so: 501.
 * Methods with a body (also GET, DELETE, OPTIONS) are forwarded with exact framing. A `Connection`
 * option naming a field the sidecar sets itself (`Content-Length`, `Transfer-Encoding`, `Host`,
 * `Authorization`, `Via`, `X-Request-Id`) changes nothing: those are never copied from the client
 * (proxy/header-rules.ts), so the option cannot remove them.
 */
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../lib/errors.js';

/** The body framing of a forwarded request: a byte count, or `CHUNKED` for a body of unknown length. */
export type BodyLength = number;
/** `BodyLength` of a body sent with `Transfer-Encoding: chunked`. */
export const CHUNKED = -1;

function refused(code: ProxyError['code'], status: number, message: string): ProxyError {
  return new ProxyError(code, message, { status, proxyStatus: status === 405 || status === 501 ? 'http_request_denied' : 'http_request_error' });
}

/** Shared, immutable refusals. */
export const REFUSALS = {
  trace: refused('method_not_allowed', 405,
    'TRACE is not forwarded: the upstream would echo the request, and with it the access token the sidecar adds.'),
  upgrade: refused('upgrade_not_supported', 501,
    'Protocol upgrades (WebSocket, h2c) are not supported: the sidecar forwards plain HTTP/1.1 requests only.'),
  tooManyFields: refused('request_header_too_large', 431, 'The request has too many header fields.'),
  twoHosts: refused('bad_request', 400, 'The request has more than one Host field.'),
  noHost: refused('bad_request', 400, 'An HTTP/1.1 request needs a Host field.'),
  twoLengths: refused('bad_request', 400, 'The request has more than one Content-Length field.'),
  lengthAndChunked: refused('bad_request', 400, 'The request has both Content-Length and Transfer-Encoding.'),
  coding: refused('transfer_coding_not_supported', 501,
    'The only transfer coding the sidecar accepts on a request is chunked (Transfer-Encoding: chunked).'),
} as const;

/**
 * The framing of `req`'s body upstream (`CHUNKED`, or its exact length; 0 for none), or the
 * refusal to answer instead. `maxHeaderCount` is the most fields a request may have; the server's
 * `maxHeadersCount` must be at least one more, so that a truncated header block is seen here.
 */
export function admit(req: IncomingMessage, maxHeaderCount: number): BodyLength | ProxyError {
  const method = req.method;
  if (method === 'TRACE') return REFUSALS.trace;
  const raw = req.rawHeaders;
  if (raw.length > maxHeaderCount * 2) return REFUSALS.tooManyFields;
  let hosts = 0;
  let lengths = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // Compare only names of the right length: no lower-casing of every field.
    if (name.length === 4) {
      if (name.toLowerCase() === 'host') hosts++;
    } else if (name.length === 14) {
      if (name.toLowerCase() === 'content-length') lengths++;
    }
  }
  if (hosts > 1) return REFUSALS.twoHosts;
  if (hosts === 0 && req.httpVersion !== '1.0') return REFUSALS.noHost;
  if (lengths > 1) return REFUSALS.twoLengths;
  const headers = req.headers;
  if (headers.upgrade !== undefined) return REFUSALS.upgrade;
  const coding = headers['transfer-encoding'];
  if (coding !== undefined) {
    if (lengths > 0) return REFUSALS.lengthAndChunked;
    return coding.trim().toLowerCase() === 'chunked' ? CHUNKED : REFUSALS.coding;
  }
  const length = headers['content-length'];
  if (length === undefined) return 0;
  // Node's parser has checked that it is digits only; it framed the body by it.
  return Number(length);
}
