/**
 * Which header fields cross the proxy, and how they change on the way (RFC 9110 7.6). Pure
 * functions over precomputed sets: nothing here allocates per request beyond the header object it
 * returns. (fastify-reply-from `lib/utils.js` `stripHttp1ConnectionHeaders`.)
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** The `received-by` pseudonym the sidecar puts in `Via`; seeing it come back means a loop. */
export const VIA_PSEUDONYM = 'logicnets-token-proxy';

/**
 * Hop-by-hop fields (RFC 9110 7.6.1), never forwarded in either direction. `Trailer` is dropped
 * too: bodies are piped and trailers are not carried, so announcing them would be a lie.
 */
export const HOP_BY_HOP_FIELDS: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'trailer',
]);

/**
 * Request fields the sidecar drops on top of the hop-by-hop ones and sets itself: the framing
 * (`Content-Length`, and `Transfer-Encoding` above: the sidecar frames every request it forwards),
 * the client's own credentials and `Host` (replaced), `Via` (extended), `X-Request-Id` (the
 * sidecar's id), and `Expect` (the sidecar answers `100 Continue` itself; the body is already on
 * its way when the upstream is asked).
 */
const REPLACED_REQUEST_FIELDS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_FIELDS, 'content-length', 'authorization', 'host', 'via', 'expect', 'x-request-id',
]);

/** Response fields the sidecar sets itself. */
const REPLACED_RESPONSE_FIELDS: ReadonlySet<string> = new Set([...HOP_BY_HOP_FIELDS, 'x-request-id']);

/** Methods whose requests are expected to carry a body: without one they are sent with `Content-Length: 0`. */
const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);

const X_FORWARDED_FIELDS: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/** `Connection` values that name no other field; the common case skips parsing. */
const PLAIN_CONNECTION = /^\s*(?:keep-alive|close)\s*$/i;

const VIA_11 = `1.1 ${VIA_PSEUDONYM}`;
const VIA_10 = `1.0 ${VIA_PSEUDONYM}`;

/** What `forwardRequestHeaders` needs to know besides the incoming fields. */
export interface RequestHeaderOptions {
  /** The upstream's `Host` value (`host[:port]`, the port only when not the scheme's default). */
  readonly host: string;
  /** The complete `Authorization` value, e.g. `Bearer <token>`. Never logged. */
  readonly authorization: string;
  /** The client's HTTP version (`1.1`, `1.0`), for `Via`'s received-protocol. */
  readonly httpVersion: string;
  /** Add `X-Forwarded-For/-Proto/-Host` (the `X_FORWARDED` setting). */
  readonly xForwarded: boolean;
  /** The client's address for `X-Forwarded-For`. */
  readonly remoteAddress: string | undefined;
  /** The request method, for the framing of a request without a body. */
  readonly method: string;
  /** The body's framing upstream: its exact length, or -1 for chunked (proxy/admission.ts). */
  readonly bodyLength: number;
  /** The request id sent as `X-Request-Id`. */
  readonly requestId: string;
}

/**
 * The field names listed in a `Connection` value, lower-cased (RFC 9110 7.6.1), or undefined when
 * it names none besides `keep-alive` / `close`.
 */
export function connectionOptions(value: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  const joined = Array.isArray(value) ? value.join(',') : value;
  if (PLAIN_CONNECTION.test(joined)) return undefined;
  const names = new Set<string>();
  for (const part of joined.split(',')) {
    const name = part.trim().toLowerCase();
    if (name !== '') names.add(name);
  }
  return names;
}

/**
 * The header fields to send upstream: everything the client sent except the hop-by-hop fields
 * (and any named in its `Connection`), its framing fields, `Authorization`, `Proxy-Authorization`,
 * `Host`, `Expect` and `X-Request-Id`; then `Host` set to the upstream's, `Authorization` to the
 * sidecar's, `Via` extended with the sidecar, `X-Request-Id` to the request's id, `X-Forwarded-*`
 * only when `xForwarded` is set, and the framing the sidecar decided: `Content-Length: n`,
 * `Transfer-Encoding: chunked`, or nothing for a body-less GET/HEAD/DELETE/OPTIONS (`Content-Length:
 * 0` for a body-less POST/PUT/PATCH). Returns a new object; `incoming` is not changed.
 */
export function forwardRequestHeaders(incoming: IncomingHttpHeaders, options: RequestHeaderOptions): OutgoingHttpHeaders {
  const named = connectionOptions(incoming.connection);
  const outgoing: OutgoingHttpHeaders = {};
  for (const name in incoming) {
    if (REPLACED_REQUEST_FIELDS.has(name) || named?.has(name) === true) continue;
    if (options.xForwarded && X_FORWARDED_FIELDS.has(name)) continue;
    outgoing[name] = incoming[name];
  }
  outgoing.host = options.host;
  outgoing.authorization = options.authorization;
  const hop = options.httpVersion === '1.0' ? VIA_10 : VIA_11;
  outgoing.via = incoming.via === undefined || incoming.via === '' ? hop : `${incoming.via}, ${hop}`;
  outgoing['x-request-id'] = options.requestId;
  const length = options.bodyLength;
  if (length < 0) outgoing['transfer-encoding'] = 'chunked';
  else if (length > 0 || BODY_METHODS.has(options.method)) outgoing['content-length'] = length;
  if (options.xForwarded) {
    const forwardedFor = incoming['x-forwarded-for'];
    const client = options.remoteAddress ?? 'unknown';
    outgoing['x-forwarded-for'] = forwardedFor === undefined ? client
      : `${Array.isArray(forwardedFor) ? forwardedFor.join(', ') : forwardedFor}, ${client}`;
    outgoing['x-forwarded-proto'] = incoming['x-forwarded-proto'] ?? 'http';
    const originalHost = incoming['x-forwarded-host'] ?? incoming.host;
    if (originalHost !== undefined) outgoing['x-forwarded-host'] = originalHost;
  }
  return outgoing;
}

/**
 * The header fields to send back to the client: the upstream's, minus the hop-by-hop fields and
 * any its `Connection` names, with `Via` extended by the sidecar and `X-Request-Id` the request's
 * id. Returns a new object.
 */
export function forwardResponseHeaders(incoming: IncomingHttpHeaders, requestId: string): OutgoingHttpHeaders {
  const named = connectionOptions(incoming.connection);
  const outgoing: OutgoingHttpHeaders = {};
  for (const name in incoming) {
    if (REPLACED_RESPONSE_FIELDS.has(name) || named?.has(name) === true) continue;
    outgoing[name] = incoming[name];
  }
  outgoing['x-request-id'] = requestId;
  outgoing.via = incoming.via === undefined || incoming.via === '' ? VIA_11 : `${incoming.via}, ${VIA_11}`;
  return outgoing;
}

/**
 * Whether a `Via` value shows the request has passed this sidecar already (a forwarding loop):
 * some entry's `received-by` is `VIA_PSEUDONYM` (compared case-insensitively).
 */
export function isLoop(via: string | string[] | undefined): boolean {
  if (via === undefined) return false;
  const joined = (Array.isArray(via) ? via.join(',') : via).toLowerCase();
  if (!joined.includes(VIA_PSEUDONYM)) return false;
  for (const entry of joined.split(',')) {
    const parts = entry.trim().split(/\s+/);
    if (parts[1] === VIA_PSEUDONYM) return true;
  }
  return false;
}
