/**
 * The proxy listener: routes each request to its upstream (proxy/router.ts), adds the upstream's access
 * token, forwards it with `http-proxy-3` over the upstream's keep-alive agent, and streams both
 * bodies with back-pressure. Fails closed: without a token a request is answered 503 and never
 * forwarded. On a 401 the token is invalidated and the request sent once more with a fresh one
 * when it can be replayed (no body, or a body of known length up to `retryBodyLimit`, kept while
 * it is sent the first time).
 *
 * A request that fails on a reused keep-alive connection with `ECONNRESET` before any of the
 * answer arrived (the upstream closed the idle connection as the request went out) is sent once
 * more on a fresh connection when it can be replayed (Node's documented `reusedSocket` pattern).
 *
 * Hot path (issue 5): routes, target URLs, one `http-proxy-3` instance per route with its options
 * and child loggers are built once; a cached token is taken synchronously with `peek()`; the
 * per-request state is one object, and the listeners it needs are shared functions, not closures.
 *
 * This file is the request flow; its parts: proxy/types.ts (the public contract, re-exported
 * here), proxy/route-state.ts (per-route state), proxy/exchange.ts (per-request state and shared
 * listeners), proxy/resend.ts (the one resend), proxy/refusals.ts (CONNECT, loops, unparseable
 * requests), proxy/request-log-path.ts (the logged path).
 */
import http from 'node:http';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.js';
import { ProxyError, TokenUnavailableError } from '../lib/errors.js';
import { sendError, toProxyError } from './error-response.js';
import { forwardRequestHeaders, forwardResponseHeaders, isLoop } from './header-rules.js';
import { REDACTED_PATHS, RequestLog } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import {
  ATTEMPT, EMPTY_BODY, EXCHANGE, EXPECTS_CONTINUE, Exchange, exchangeOf, noop, onResponseClose, onUpstreamResponseClose,
  onUpstreamTimeout, requestIdOf,
} from './exchange.js';
import type { ExchangeCarrier } from './exchange.js';
import { CONNECT_REFUSED, LOOP_DETECTED, refuseConnect, refuseUnparseable } from './refusals.js';
import { NO_UPSTREAM } from './types.js';
import type { ProxyMetrics, ProxyServer, ProxyServerOptions } from './types.js';
import { pathForLog } from './request-log-path.js';
import {
  beginResendAfter401, beginResendAfterReset, canResendAfterReset, keepChunk, replayBody, resendOptions, whenBodyKept,
} from './resend.js';
import { createRouteState, logSharedCompanies } from './route-state.js';
import type { RouteState } from './route-state.js';
import { Router } from './router.js';
import type { Token } from '../token/token.js';

export type { Route } from './router.js';
export { NO_UPSTREAM } from './types.js';
export type { ProxyMetrics, ProxyServer, ProxyServerOptions } from './types.js';

/**
 * Redaction for the proxy's own loggers: the logger's exact paths without its wildcard ones. The
 * proxy logs only fixed, secret-free fields (never a header, token or query), so this changes
 * nothing in what it writes, but a wildcard path costs ~7 us per line, the largest single cost of
 * the per-request log line (issue 5). Other components keep the full list.
 */
const PROXY_REDACT = { paths: REDACTED_PATHS.filter((path) => !path.includes('*')), censor: '[redacted]' };

class TokenProxy implements ProxyServer {
  readonly server: http.Server;
  readonly #router: Router<RouteState>;
  readonly #log: Logger;
  readonly #requestLog: RequestLog;
  readonly #metrics: ProxyMetrics;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #timeoutSeconds: number;
  readonly #xForwarded: boolean;
  readonly #retryBodyLimit: number;
  #inFlight = 0;
  #closing = false;

  constructor(options: ProxyServerOptions) {
    this.#log = options.logger.child({ component: 'proxy' }, { redact: PROXY_REDACT });
    this.#requestLog = new RequestLog(this.#log);
    this.#metrics = options.metrics;
    this.#clock = options.clock;
    this.#timeoutSeconds = options.config.upstreamTimeout;
    this.#timeoutMs = Math.max(1, Math.round(options.config.upstreamTimeout * 1000));
    this.#xForwarded = options.config.xForwarded;
    this.#retryBodyLimit = options.config.retryBodyLimit;
    const states = options.routes.map((route) => createRouteState(route, this.#log, this.#onProxyReq, this.#onProxyRes));
    this.#router = new Router(states);
    logSharedCompanies(this.#router, states, this.#log);

    this.server = http.createServer();
    this.server.on('request', this.#onRequest);
    this.server.on('checkContinue', this.#onCheckContinue);
    this.server.on('connect', this.#onConnect);
    this.server.on('clientError', this.#onClientError);
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  inFlight(): number {
    return this.#inFlight;
  }

  flushLogs(): void {
    this.#requestLog.flush();
    for (const state of this.#router.routes) state.requestLog.flush();
  }

  close(): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  // ---- request flow -------------------------------------------------------------------------

  /**
   * `Expect: 100-continue`: routed like any request (re-emitted as `'request'`, so every listener
   * sees it), but `100 Continue` is only sent once the request is about to be forwarded: a refused
   * request is answered before the client sends its body.
   */
  readonly #onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    (req as ExchangeCarrier)[EXPECTS_CONTINUE] = true;
    this.server.emit('request', req, res);
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.#handle(req, res, (req as ExchangeCarrier)[EXPECTS_CONTINUE] === true);
  };

  #handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    this.#inFlight++;
    const exchange = new Exchange(req, res, requestIdOf(req), this.#clock.now(), this.#finished);
    exchange.expectContinue = expectContinue;
    (req as ExchangeCarrier)[EXCHANGE] = exchange;
    (res as ExchangeCarrier)[EXCHANGE] = exchange;
    res.on('close', onResponseClose);
    if (this.#closing && !res.headersSent) res.setHeader('connection', 'close');
    try {
      this.#route(exchange);
    } catch (error) {
      this.#fail(exchange, error);
    }
  }

  #route(exchange: Exchange): void {
    const { req } = exchange;
    if (req.method === 'CONNECT') return this.#fail(exchange, CONNECT_REFUSED);
    if (req.headers.via !== undefined && isLoop(req.headers.via)) return this.#fail(exchange, LOOP_DETECTED);
    const match = this.#router.match(req.url ?? '', req.headers.host);
    if (match instanceof ProxyError) return this.#fail(exchange, match);
    const state = match.route;
    exchange.state = state;
    exchange.path = match.path;
    exchange.body = replayBody(req, this.#retryBodyLimit);
    this.#withToken(exchange, 1);
  }

  /** Forwards with the cached token when there is one, else once the token source gives one. */
  #withToken(exchange: Exchange, attempt: number): void {
    const tokens = (exchange.state as RouteState).route.tokens;
    const cached = tokens.peek();
    if (cached !== undefined) {
      this.#forward(exchange, cached, attempt);
      return;
    }
    const abort = new AbortController();
    exchange.abort = abort;
    tokens.token(abort.signal).then(
      (token) => {
        exchange.abort = undefined;
        this.#forward(exchange, token, attempt);
      },
      (error: unknown) => {
        exchange.abort = undefined;
        this.#tokenFailed(exchange, error);
      },
    );
  }

  #tokenFailed(exchange: Exchange, error: unknown): void {
    if (exchange.res.destroyed) return;
    const state = exchange.state as RouteState;
    const failure = error instanceof ProxyError
      ? error
      : new TokenUnavailableError(`No access token could be obtained for the upstream ${state.name}; see the sidecar log.`, { cause: error });
    this.#fail(exchange, failure);
  }

  #forward(exchange: Exchange, token: Token, attempt: number, fresh = false): void {
    const { req, res } = exchange;
    if (res.destroyed || res.writableEnded) return;
    const state = exchange.state as RouteState;
    if (state.lastToken !== token) {
      state.lastToken = token;
      state.lastAuthorization = `Bearer ${token.accessToken}`;
    }
    exchange.token = token;
    exchange.attempt = attempt;
    if (exchange.outgoing === undefined) {
      exchange.outgoing = forwardRequestHeaders(req.headers, {
        host: state.host,
        authorization: state.lastAuthorization,
        httpVersion: req.httpVersion,
        xForwarded: this.#xForwarded,
        remoteAddress: req.socket.remoteAddress,
      });
      req.headers = exchange.outgoing as IncomingMessage['headers'];
      req.url = exchange.path;
    } else {
      exchange.outgoing.authorization = state.lastAuthorization;
    }
    if (exchange.expectContinue) {
      exchange.expectContinue = false;
      res.writeContinue();
    }
    state.log.trace({ requestId: exchange.id, attempt }, 'forwarding request');
    if (attempt === 1) {
      if (exchange.body !== undefined && exchange.body !== EMPTY_BODY) req.on('data', keepChunk);
      state.proxy.web(req, res, this.#onFirstAttemptError);
      return;
    }
    state.proxy.web(req, res, resendOptions(exchange, state, fresh), (error) => this.#upstreamFailed(exchange, attempt, error));
  }

  /** The error callback of every first attempt (shared: the exchange is found from the request). */
  readonly #onFirstAttemptError = (error: Error, req: IncomingMessage): void => {
    const exchange = exchangeOf(req);
    if (exchange !== undefined) this.#upstreamFailed(exchange, 1, error);
  };

  readonly #finished = (exchange: Exchange): void => this.#finish(exchange);

  /** http-proxy-3 created the upstream request: start its timeout. */
  readonly #onProxyReq = (proxyReq: ClientRequest, req: IncomingMessage): void => {
    const exchange = exchangeOf(req);
    if (exchange === undefined) return;
    const carrier = proxyReq as ClientRequest & ExchangeCarrier;
    carrier[EXCHANGE] = exchange;
    carrier[ATTEMPT] = exchange.attempt;
    exchange.proxyReq = proxyReq;
    exchange.timeoutMs = this.#timeoutMs;
    proxyReq.setTimeout(this.#timeoutMs, onUpstreamTimeout);
  };

  /** The upstream answered: resend after a 401 when possible, else pass the answer on. */
  readonly #onProxyRes = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void => {
    const exchange = exchangeOf(req);
    if (exchange === undefined) {
      proxyRes.resume();
      return;
    }
    exchange.answeredAttempt = exchange.attempt;
    if (proxyRes.statusCode === 401 && exchange.attempt === 1 && exchange.body !== undefined && !res.destroyed) {
      beginResendAfter401(exchange, proxyRes, this.#metrics);
      whenBodyKept(exchange, () => this.#withToken(exchange, 2));
      return;
    }
    exchange.body = undefined; // no resend any more: stop keeping the request body
    if (res.destroyed) {
      proxyRes.resume();
      return;
    }
    const headers = forwardResponseHeaders(proxyRes.headers);
    if (this.#closing) headers.connection = 'close';
    try {
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
    } catch (error) {
      proxyRes.resume();
      this.#fail(exchange, toProxyError(error, exchange.state?.name));
      return;
    }
    proxyRes.on('close', onUpstreamResponseClose);
    proxyRes.on('error', noop);
    proxyRes.pipe(res);
  };

  #upstreamFailed(exchange: Exchange, attempt: number, error: unknown): void {
    // An older attempt's failure, or the client is gone (the request line in the log says so).
    if (attempt !== exchange.attempt || exchange.res.destroyed) return;
    if (canResendAfterReset(exchange, attempt, error)) {
      // Same token, on a new connection.
      beginResendAfterReset(exchange, this.#metrics);
      whenBodyKept(exchange, () => this.#forward(exchange, exchange.token as Token, 2, true));
      return;
    }
    const state = exchange.state as RouteState;
    const failure = exchange.timedOutAttempt === attempt
      ? new ProxyError('upstream_timeout',
        `The upstream ${state.name} did not answer within ${this.#timeoutSeconds} s (UPSTREAM_TIMEOUT); raise the timeout or check the upstream.`,
        { status: 504, proxyStatus: 'http_response_timeout', cause: error })
      : toProxyError(error, state.name);
    this.#fail(exchange, failure);
  }

  #fail(exchange: Exchange, error: unknown): void {
    sendError(exchange.res, error, exchange.state?.log ?? this.#log);
  }

  #finish(exchange: Exchange): void {
    this.#inFlight--;
    exchange.body = undefined;
    exchange.abort?.abort();
    const { res, state } = exchange;
    const durationMs = this.#clock.now() - exchange.startedAt;
    const completed = res.writableFinished;
    const status = res.headersSent ? res.statusCode : 499;
    (state?.requestLog ?? this.#requestLog).write({
      requestId: exchange.id,
      method: exchange.req.method,
      path: pathForLog(exchange),
      status,
      durationMs,
      aborted: !completed,
    });
    this.#metrics.requestFinished(state?.name ?? NO_UPSTREAM, status, durationMs / 1000);
    if (this.#closing) setImmediate(() => this.server.closeIdleConnections());
  }

  /** `CONNECT host:port`: answered 405 on the raw socket, which is then closed. */
  readonly #onConnect = (req: IncomingMessage, socket: Duplex): void => refuseConnect(req, socket, this.#log, this.#metrics);

  /** A request Node could not parse: answered like every other error (JSON, Proxy-Status), then closed. */
  readonly #onClientError = (error: Error & { code?: string }, socket: Duplex): void => refuseUnparseable(error, socket, this.#log);
}

/**
 * Builds the proxy listener (not yet listening). Throws a `ConfigError` when two routes are
 * ambiguous. The returned server handles any number of concurrent requests.
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  return new TokenProxy(options);
}
