/**
 * The proxy listener: routes each request to its upstream (router.ts), adds the upstream's access
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
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { Agent, AgentOptions, ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { ProxyServer as HttpProxy } from 'http-proxy-3';
import type { ServerOptions as HttpProxyOptions } from 'http-proxy-3';
import type { Clock } from './clock.js';
import type { Config } from './config-types.js';
import { ProxyError, TokenUnavailableError } from './errors.js';
import { sendError, toProxyError, writeRawError } from './error-response.js';
import { forwardRequestHeaders, forwardResponseHeaders, isLoop } from './header-rules.js';
import { REDACTED_PATHS, RequestLog } from './logger.js';
import type { Logger } from './logger.js';
import { Router } from './router.js';
import type { Route } from './router.js';
import type { Token } from './token.js';

export type { Route } from './router.js';

/** What the proxy records per request; `Metrics` (metrics.ts) fits. Calls must be cheap and synchronous. */
export interface ProxyMetrics {
  requestFinished(upstream: string, code: number, seconds: number): void;
  upstreamRetry(upstream: string): void;
}

/** Options of `createProxyServer`. */
export interface ProxyServerOptions {
  readonly config: Pick<Config, 'upstreamTimeout' | 'xForwarded' | 'retryBodyLimit'>;
  /** The upstreams; must not be ambiguous (the constructor throws a `ConfigError` otherwise). */
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  /** Measures request durations. */
  readonly clock: Clock;
}

/** A proxy listener. */
export interface ProxyServer {
  /** The underlying server (for the lifecycle: connection tracking, `closeAllConnections`). */
  readonly server: http.Server;
  /** Listens on `host:port` (port 0: any free port); resolves with the bound port. */
  listen(port: number, host: string): Promise<number>;
  /** Requests received whose response has not closed yet. */
  inFlight(): number;
  /**
   * Stops accepting connections, closes idle keep-alive connections (and each one as its last
   * response ends) and resolves once every connection is gone. Does not cut requests in flight
   * (`server.closeAllConnections()` does) and does not destroy the routes' agents (their owner does).
   */
  close(): Promise<void>;
  /** Writes the request log lines queued in this event-loop turn now (before a hard exit). */
  flushLogs(): void;
}

/** The metrics label used for requests that matched no upstream. */
export const NO_UPSTREAM = 'none';

const CONNECT_REFUSED = new ProxyError('connect_not_supported',
  'CONNECT tunnels are not supported: the sidecar cannot add the Authorization header inside a TLS tunnel. '
  + 'Send plain http:// URLs through the sidecar; it calls the upstream over https itself.',
  { status: 405, proxyStatus: 'http_request_denied' });

const LOOP_DETECTED = new ProxyError('loop_detected',
  'The request has passed through this sidecar already (its Via header names it); check that no upstream URL points back at the sidecar.',
  { status: 502, proxyStatus: 'proxy_loop_detected' });

/**
 * Redaction for the proxy's own loggers: the logger's exact paths without its wildcard ones. The
 * proxy logs only fixed, secret-free fields (never a header, token or query), so this changes
 * nothing in what it writes, but a wildcard path costs ~7 us per line, the largest single cost of
 * the per-request log line (issue 5). Other components keep the full list.
 */
const PROXY_REDACT = { paths: REDACTED_PATHS.filter((path) => !path.includes('*')), censor: '[redacted]' };

/** Longest client-supplied `x-request-id` taken over as the request id. */
const MAX_REQUEST_ID_LENGTH = 200;

const EMPTY_BODY: readonly Buffer[] = Object.freeze([]);

/** Per-route state built once. */
interface RouteState {
  readonly route: Route;
  /** The route's upstream (what the router matches on). */
  readonly upstream: Route['upstream'];
  readonly name: string;
  readonly log: Logger;
  /** The per-request `info` line, with the route's bindings. */
  readonly requestLog: RequestLog;
  /** `Host` sent upstream. */
  readonly host: string;
  /** The `http-proxy-3` instance of this route: its target and agent are its own options. */
  readonly proxy: HttpProxy;
  /** A keep-alive-free twin of the route's agent (same TLS trust), for a resend after a reset; made on first use. */
  freshAgent: Agent | undefined;
  /** The last token seen and its `Authorization` value, so the string is built once per token. */
  lastToken: Token | undefined;
  lastAuthorization: string;
}

/** Everything one request carries through the proxy. */
class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly id: string;
  readonly startedAt: number;
  /** Called once when the response closes (the owning proxy's bookkeeping). */
  readonly finished: (exchange: Exchange) => void;
  state: RouteState | undefined = undefined;
  /** Normalised path and query sent upstream. */
  path = '';
  /** The headers sent upstream (also installed as `req.headers` for http-proxy-3). */
  outgoing: OutgoingHttpHeaders | undefined = undefined;
  /** The token of the current attempt. */
  token: Token | undefined = undefined;
  /** Number of the live attempt (1, then 2 after a 401 or a reset); callbacks of older attempts are ignored. */
  attempt = 0;
  /**
   * The body kept for a resend (`EMPTY_BODY` when there is none), or undefined when the request
   * cannot be replayed or the first answer was not a 401 (then nothing more is kept).
   */
  body: Buffer[] | readonly Buffer[] | undefined = undefined;
  /** The client asked `Expect: 100-continue`; answered just before forwarding. */
  expectContinue = false;
  /** The attempt whose upstream call timed out. */
  timedOutAttempt = 0;
  /** Aborts a token wait when the client leaves. */
  abort: AbortController | undefined = undefined;
  /** The upstream request of the live attempt, once http-proxy-3 made it. */
  proxyReq: ClientRequest | undefined = undefined;
  /** The attempt whose upstream answer (status line and headers) has arrived. */
  answeredAttempt = 0;
  /** `UPSTREAM_TIMEOUT` in milliseconds. */
  timeoutMs = 0;

  constructor(req: IncomingMessage, res: ServerResponse, id: string, startedAt: number, finished: (exchange: Exchange) => void) {
    this.req = req;
    this.res = res;
    this.id = id;
    this.startedAt = startedAt;
    this.finished = finished;
  }
}

const EXCHANGE = Symbol('exchange');
const ATTEMPT = Symbol('attempt');
const EXPECTS_CONTINUE = Symbol('expectsContinue');
type ExchangeCarrier = { [EXCHANGE]?: Exchange; [ATTEMPT]?: number; [EXPECTS_CONTINUE]?: boolean };

function exchangeOf(message: object): Exchange | undefined {
  return (message as ExchangeCarrier)[EXCHANGE];
}

/**
 * Node's `'timeout'` listener of an upstream request (the connection was idle for
 * `UPSTREAM_TIMEOUT`): marks the attempt and aborts it, unless the idleness is the client's doing
 * (it stopped reading the response, so back-pressure holds the upstream): then it only looks again
 * after another `UPSTREAM_TIMEOUT`.
 */
function onUpstreamTimeout(this: ClientRequest): void {
  const carrier = this as ClientRequest & ExchangeCarrier;
  const exchange = carrier[EXCHANGE];
  if (exchange !== undefined && exchange.res.writableNeedDrain && !exchange.res.destroyed) {
    this.setTimeout(exchange.timeoutMs, onUpstreamTimeout);
    return;
  }
  if (exchange !== undefined) exchange.timedOutAttempt = carrier[ATTEMPT] ?? 0;
  this.destroy();
}

function noop(): void {}

/** The request's `'data'` listener while its body is kept for a resend. */
function keepChunk(this: IncomingMessage, chunk: Buffer): void {
  (exchangeOf(this)?.body as Buffer[] | undefined)?.push(chunk);
}

/**
 * The upstream response's `'close'` listener: when it closes before it completed (the upstream
 * connection broke mid-body), the client's response is cut too instead of hanging.
 */
function onUpstreamResponseClose(this: IncomingMessage): void {
  if (this.complete) return;
  const proxyReq = (this as IncomingMessage & { req?: ClientRequest }).req;
  if (proxyReq !== undefined) exchangeOf(proxyReq)?.res.destroy();
}

/** The response's `'close'` listener (shared, so no closure per request). */
function onResponseClose(this: ServerResponse): void {
  const exchange = exchangeOf(this);
  if (exchange !== undefined) exchange.finished(exchange);
}

/** A non-pooling agent with the same options (TLS trust included) as `agent`: every request gets a new connection. */
function freshAgentLike(agent: Agent): Agent {
  const options = { ...(agent as Agent & { options?: AgentOptions }).options, keepAlive: false };
  return agent instanceof https.Agent ? new https.Agent(options) : new http.Agent(options);
}

function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && given.length > 0 && given.length <= MAX_REQUEST_ID_LENGTH ? given : randomUUID();
}

/** A request body that can be kept for a resend: none, or a known length up to `limit`. */
function replayBody(req: IncomingMessage, limit: number): Buffer[] | readonly Buffer[] | undefined {
  if (req.headers['transfer-encoding'] !== undefined) return undefined;
  const length = req.headers['content-length'];
  if (length === undefined || length === '0') return EMPTY_BODY;
  const bytes = Number(length);
  return bytes <= limit ? [] : undefined;
}

/**
 * Methods a reset on a reused connection may resend automatically (RFC 9110 9.2.2): the upstream
 * may have acted on the first attempt before the reset, which is harmless only for these.
 */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** The path without its query, for logs (the query may carry anything). */
function pathForLog(exchange: Exchange): string {
  if (exchange.state !== undefined) {
    const q = exchange.path.indexOf('?');
    return q === -1 ? exchange.path : exchange.path.slice(0, q);
  }
  const url = exchange.req.url ?? '';
  const q = url.indexOf('?');
  // An absolute-form target may carry user credentials: keep only scheme, host and path.
  const hash = url.indexOf('#');
  const end = q === -1 ? (hash === -1 ? url.length : hash) : hash === -1 ? q : Math.min(q, hash);
  return url.slice(0, end).replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}

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
    const states = options.routes.map((route) => this.#routeState(route));
    this.#router = new Router(states);
    this.#noteSharedCompanies(states);

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

  #routeState(route: Route): RouteState {
    const url = new URL(route.upstream.url);
    const options: HttpProxyOptions = {
      target: new URL(url.origin), agent: route.agent, prependPath: false, toProxy: true, selfHandleResponse: true, xfwd: false,
    };
    const proxy = new HttpProxy(options);
    proxy.on('proxyReq', this.#onProxyReq);
    proxy.on('proxyRes', this.#onProxyRes);
    // Every web() call passes an error callback; this only catches what slips past it.
    proxy.on('error', (error, _req, res) => {
      if (res instanceof http.ServerResponse) sendError(res, error, this.#log);
      else res.destroy();
    });
    const log = this.#log.child({ upstream: route.upstream.name });
    return {
      route,
      upstream: route.upstream,
      name: route.upstream.name,
      log,
      requestLog: new RequestLog(log),
      host: url.host,
      proxy,
      freshAgent: undefined,
      lastToken: undefined,
      lastAuthorization: '',
    };
  }

  #noteSharedCompanies(states: readonly RouteState[]): void {
    for (const company of this.#router.sharedCompanies) {
      const upstreams = states.filter((s) => new URL(s.upstream.url).pathname.replace(/\/+$/, '') === company).map((s) => s.name);
      this.#log.info({ company: company === '' ? '/' : company, upstreams },
        'upstreams on different hosts share a company path: gateway-mode requests for it go to the upstream their Host header names, '
        + 'and are refused (400) when it names none; forward-proxy mode (http://host/...) names the host itself');
    }
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
    const options: HttpProxyOptions = { buffer: Readable.from(exchange.body ?? EMPTY_BODY) };
    if (fresh) options.agent = state.freshAgent ??= freshAgentLike(state.route.agent);
    state.proxy.web(req, res, options, (error) => this.#upstreamFailed(exchange, attempt, error));
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
      this.#resend(exchange, proxyRes);
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

  /** A 401 for a replayable request: drop that token, take a fresh one, send once more. */
  #resend(exchange: Exchange, unauthorized: IncomingMessage): void {
    const state = exchange.state as RouteState;
    exchange.attempt = 2; // from here on, failures of the first attempt are ignored
    unauthorized.on('error', noop);
    unauthorized.resume();
    state.route.tokens.invalidate((exchange.token as Token).accessToken);
    this.#metrics.upstreamRetry(state.name);
    state.log.debug({ requestId: exchange.id }, 'the upstream answered 401: resending once with a fresh token');
    this.#whenBodyKept(exchange, () => this.#withToken(exchange, 2));
  }

  /**
   * The first attempt went out on a reused keep-alive connection that the upstream had closed
   * (ECONNRESET before any answer): send it once more, with the same token, on a new connection.
   */
  #resendAfterReset(exchange: Exchange): void {
    const state = exchange.state as RouteState;
    exchange.attempt = 2;
    this.#metrics.upstreamRetry(state.name);
    state.log.debug({ requestId: exchange.id },
      'the reused upstream connection was closed by the upstream before it answered: resending once on a new connection');
    this.#whenBodyKept(exchange, () => this.#forward(exchange, exchange.token as Token, 2, true));
  }

  /** Runs `then` once the whole request body is kept for a resend (at once when it already is). */
  #whenBodyKept(exchange: Exchange, then: () => void): void {
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

  #upstreamFailed(exchange: Exchange, attempt: number, error: unknown): void {
    // An older attempt's failure, or the client is gone (the request line in the log says so).
    if (attempt !== exchange.attempt || exchange.res.destroyed) return;
    if (attempt === 1 && exchange.body !== undefined && exchange.answeredAttempt !== 1 && exchange.timedOutAttempt !== 1
      && (error as { code?: unknown }).code === 'ECONNRESET' && exchange.proxyReq?.reusedSocket === true
      && IDEMPOTENT_METHODS.has(exchange.req.method ?? '')) {
      this.#resendAfterReset(exchange);
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
  readonly #onConnect = (req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', noop);
    const status = writeRawError(socket, CONNECT_REFUSED);
    this.#log.info({ requestId: requestIdOf(req), method: 'CONNECT', status, durationMs: 0 }, 'request');
    this.#metrics.requestFinished(NO_UPSTREAM, status, 0);
  };

  /** A request Node could not parse: answered like every other error (JSON, Proxy-Status), then closed. */
  readonly #onClientError = (error: Error & { code?: string }, socket: Duplex): void => {
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
    this.#log.debug({ code: error.code, status }, 'unparseable request');
  };
}

/**
 * Builds the proxy listener (not yet listening). Throws a `ConfigError` when two routes are
 * ambiguous. The returned server handles any number of concurrent requests.
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  return new TokenProxy(options);
}
