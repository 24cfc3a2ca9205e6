/**
 * The proxy's one resend of a request: which bodies can be replayed and how they are kept (a
 * known length up to `retryBodyLimit`, collected while the first attempt streams it), when a
 * failure allows a resend (a 401: with a fresh token; `ECONNRESET` on a reused keep-alive
 * connection before any answer, for idempotent methods: on a new connection), and the
 * bookkeeping of starting one. Sending it again is the caller's (proxy/server.ts).
 */
import http from 'node:http';
import type { Agent, AgentOptions, IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { ServerOptions as HttpProxyOptions } from 'http-proxy-3';
import { EMPTY_BODY, exchangeOf, noop } from './exchange.js';
import type { Exchange } from './exchange.js';
import type { ProxyMetrics } from './types.js';
import type { RouteState } from './route-state.js';
import type { Token } from '../token/token.js';

/**
 * Methods a reset on a reused connection may resend automatically (RFC 9110 9.2.2): the upstream
 * may have acted on the first attempt before the reset, which is harmless only for these.
 */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * Where to keep a request body for a resend: `EMPTY_BODY` when there is none, a new empty array
 * for a known length up to `limit`, undefined when it cannot be replayed (chunked or too long).
 */
export function replayBody(req: IncomingMessage, limit: number): Buffer[] | readonly Buffer[] | undefined {
  if (req.headers['transfer-encoding'] !== undefined) return undefined;
  const length = req.headers['content-length'];
  if (length === undefined || length === '0') return EMPTY_BODY;
  const bytes = Number(length);
  return bytes <= limit ? [] : undefined;
}

/** The request's `'data'` listener while its body is kept for a resend (shared by every request). */
export function keepChunk(this: IncomingMessage, chunk: Buffer): void {
  (exchangeOf(this)?.body as Buffer[] | undefined)?.push(chunk);
}

/**
 * Whether the failure `error` of `attempt` allows a resend on a new connection: the first
 * attempt, a replayable body, no answer and no timeout yet, `ECONNRESET` on a reused socket, and
 * an idempotent method.
 */
export function canResendAfterReset(exchange: Exchange, attempt: number, error: unknown): boolean {
  return attempt === 1 && exchange.body !== undefined && exchange.answeredAttempt !== 1 && exchange.timedOutAttempt !== 1
    && (error as { code?: unknown }).code === 'ECONNRESET' && exchange.proxyReq?.reusedSocket === true
    && IDEMPOTENT_METHODS.has(exchange.req.method ?? '');
}

/**
 * Starts the resend after a 401 for a replayable request: marks attempt 2 (failures of the first
 * are ignored from here on), drains the 401, drops that token from the cache and counts the retry.
 * The caller then takes a fresh token and sends again once `whenBodyKept` says so.
 */
export function beginResendAfter401(exchange: Exchange, unauthorized: IncomingMessage, metrics: ProxyMetrics): void {
  const state = exchange.state as RouteState;
  exchange.attempt = 2; // from here on, failures of the first attempt are ignored
  unauthorized.on('error', noop);
  unauthorized.resume();
  state.route.tokens.invalidate((exchange.token as Token).accessToken);
  metrics.upstreamRetry(state.name);
  state.log.debug({ requestId: exchange.id }, 'the upstream answered 401: resending once with a fresh token');
}

/**
 * Starts the resend after a reset on a reused keep-alive connection (the upstream had closed
 * it): marks attempt 2 and counts the retry. The caller then sends again with the same token on a
 * new connection once `whenBodyKept` says so.
 */
export function beginResendAfterReset(exchange: Exchange, metrics: ProxyMetrics): void {
  const state = exchange.state as RouteState;
  exchange.attempt = 2;
  metrics.upstreamRetry(state.name);
  state.log.debug({ requestId: exchange.id },
    'the reused upstream connection was closed by the upstream before it answered: resending once on a new connection');
}

/** Runs `then` once the whole request body is kept for a resend (at once when it already is). */
export function whenBodyKept(exchange: Exchange, then: () => void): void {
  const { req } = exchange;
  if (req.readableEnded) {
    then();
    return;
  }
  // The body is still arriving: stop sending it to the first attempt, keep collecting it.
  req.unpipe();
  exchange.proxyReq?.destroy();
  req.once('end', then);
  req.resume();
}

/**
 * The `http-proxy-3` options of a resend: the kept body as the request body, and with `fresh` a
 * keep-alive-free twin of the route's agent (made once per route, on first use).
 */
export function resendOptions(exchange: Exchange, state: RouteState, fresh: boolean): HttpProxyOptions {
  const options: HttpProxyOptions = { buffer: Readable.from(exchange.body ?? EMPTY_BODY) };
  if (fresh) options.agent = state.freshAgent ??= freshAgentLike(state.route.agent);
  return options;
}

/** A non-pooling agent with the same options (TLS trust included) as `agent`: every request gets a new connection. */
function freshAgentLike(agent: Agent): Agent {
  const options = { ...(agent as Agent & { options?: AgentOptions }).options, keepAlive: false };
  return agent instanceof https.Agent ? new https.Agent(options) : new http.Agent(options);
}
