/**
 * The proxy listener: Node's HTTP server with every limit chosen on purpose, the cap on client
 * connections, and the dispatch of each request to its `Exchange` (proxy/exchange.ts), which owns
 * everything that happens to it: admission and framing, routing, the token, forwarding, the one
 * resend, timeouts and the answer. Fails closed: without a token a request is answered 503 and
 * never forwarded.
 *
 * The server's own limits (all settings, README table):
 * - `MAX_HEADER_SIZE` (Node `maxHeaderSize`) and `MAX_HEADER_COUNT` (Node keeps one more field so
 *   that a longer header block is seen and refused with 431, never forwarded);
 * - `HEADERS_TIMEOUT` for the request head and `REQUEST_TIMEOUT` for the whole request (0: none,
 *   so uploads longer than Node's default five minutes are not cut; `IDLE_TIMEOUT` still cuts a
 *   stalled one), checked every second;
 * - `KEEP_ALIVE_TIMEOUT` between requests; `IDLE_TIMEOUT` as the client connection's idle timeout
 *   while bytes should move;
 * - `MAX_CONNECTIONS`: a connection beyond it is answered 503 (JSON, Proxy-Status) and closed.
 *
 * Requests are forwarded with Node's own `http.request` (proxy/upstream-target.ts): the outgoing
 * request is built explicitly, and the client's `IncomingMessage` is never changed.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.js';
import { REDACTED_PATHS, RequestLog } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import type { ProxyError } from '../lib/errors.js';
import { cannotListen, listenOn } from '../lib/listen.js';
import type { SettingNames } from '../lib/setting-names.js';
import { Exchange, noop } from './exchange.js';
import type { ExchangeContext } from './exchange.js';
import { overCapacity, refuseConnect, refuseOverCapacity, refuseUnparseable, refuseUpgrade } from './refusals.js';
import { pathForLog } from './request-log-path.js';
import { RetainedBodyBudget } from './retained-body.js';
import { Router } from './router.js';
import { NO_UPSTREAM, PROXY_SETTING_WORDS } from './types.js';
import type { ProxyMetrics, ProxyServer, ProxyServerOptions, ProxySetting } from './types.js';
import { logSharedCompanies, UpstreamTarget } from './upstream-target.js';

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

/** Slot marking a client connection refused for capacity, and one marking a request that came through `'checkContinue'`. */
const OVER_CAPACITY = Symbol('overCapacity');
const EXPECTS_CONTINUE = Symbol('expectsContinue');
/**
 * Slots of a client connection: the exchange in progress on it (`BUSY`), the rarely used `QUEUE`
 * of requests pipelined behind it (each started when the one before is done), and "close it once
 * they are answered".
 */
const BUSY = Symbol('busy');
const QUEUE = Symbol('queue');
const CLOSE_AFTER = Symbol('closeAfter');
type ClientSocket = Socket & { [OVER_CAPACITY]?: boolean; [BUSY]?: Exchange; [QUEUE]?: Exchange[]; [CLOSE_AFTER]?: boolean };

/**
 * A client connection was idle for IDLE_TIMEOUT (Node's socket timeout, `server.timeout`): it is
 * cut, unless its request is waiting on the sidecar (a token, the upstream's response head),
 * which has bounds of its own. The timer starts again with the next byte either way.
 */
function onClientIdle(socket: Socket): void {
  if ((socket as ClientSocket)[BUSY]?.waitingOnSidecar === true) return;
  socket.destroy();
}

/**
 * A client connection closed: every exchange still on it is done. (Node emits `'close'` on the
 * response being written, but not on responses queued behind it for pipelined requests.)
 */
function onClientSocketClose(this: ClientSocket): void {
  const queued = this[QUEUE];
  this[QUEUE] = undefined;
  this[BUSY]?.closed();
  if (queued !== undefined) for (const exchange of queued) exchange.closed();
}

/** A warning about refused connections is logged at most this often. */
const CAPACITY_WARNING_INTERVAL_MS = 10_000;

class TokenProxy implements ProxyServer, ExchangeContext {
  readonly server: http.Server;
  readonly router: Router<UpstreamTarget>;
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  readonly clock: Clock;
  readonly budget: RetainedBodyBudget;
  readonly upstreamTimeoutMs: number;
  readonly upstreamTimeoutSeconds: number;
  readonly settingNames: SettingNames<ProxySetting>;
  readonly idleTimeoutMs: number;
  readonly maxHeaderCount: number;
  readonly xForwarded: boolean;
  closing = false;
  readonly #requestLog: RequestLog;
  readonly #maxConnections: number;
  readonly #overCapacity: ProxyError;
  #connections = 0;
  #inFlight = 0;
  #lastCapacityWarning = -Infinity;

  constructor(options: ProxyServerOptions) {
    const { config } = options;
    this.log = options.logger.child({ component: 'proxy' }, { redact: PROXY_REDACT });
    this.#requestLog = new RequestLog(this.log);
    this.metrics = options.metrics;
    this.clock = options.clock;
    this.upstreamTimeoutSeconds = config.upstreamTimeout;
    this.settingNames = options.settingNames ?? PROXY_SETTING_WORDS;
    this.upstreamTimeoutMs = toMs(config.upstreamTimeout);
    this.idleTimeoutMs = toMs(config.idleTimeout);
    this.maxHeaderCount = config.maxHeaderCount;
    this.xForwarded = config.xForwarded;
    this.budget = new RetainedBodyBudget(config.retryBodyBudget, config.retryBodyLimit);
    this.#maxConnections = config.maxConnections;
    this.#overCapacity = overCapacity(this.settingNames('maxConnections'));
    const targets = options.routes.map((route) => new UpstreamTarget(route, this.log));
    this.router = new Router(targets);
    logSharedCompanies(this.router, targets, this.log);

    const headersTimeout = toMs(config.headersTimeout);
    // Node refuses a head timeout above the request timeout; 0 means none.
    const requestTimeout = config.requestTimeout > 0 ? Math.max(toMs(config.requestTimeout), headersTimeout) : 0;
    this.server = http.createServer({
      maxHeaderSize: config.maxHeaderSize,
      headersTimeout,
      requestTimeout,
      // Checks the two timeouts above; Node's default (30 s) would make a 20 s limit up to 50 s.
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(headersTimeout / 4))),
      // A missing Host on HTTP/1.1 is refused by admission with the usual JSON answer.
      requireHostHeader: false,
    });
    this.server.keepAliveTimeout = toMs(config.keepAliveTimeout);
    this.server.maxHeadersCount = config.maxHeaderCount + 1;
    this.server.timeout = this.idleTimeoutMs;
    this.server.prependListener('connection', this.#onConnection);
    this.server.on('request', this.#onRequest);
    this.server.on('checkContinue', this.#onCheckContinue);
    this.server.on('connect', this.#onConnect);
    this.server.on('upgrade', this.#onUpgrade);
    this.server.on('clientError', this.#onClientError);
    this.server.on('timeout', onClientIdle);
  }

  listen(port: number, host: string): Promise<number> {
    return listenOn(this.server, port, host).catch((error: unknown) => {
      throw cannotListen('The proxy', host, port, `${this.settingNames('listenHost')} and ${this.settingNames('listenPort')}`, error);
    });
  }

  inFlight(): number {
    return this.#inFlight;
  }

  retainedBodyBytes(): { reserved: number; peak: number } {
    return { reserved: this.budget.reserved, peak: this.budget.peak };
  }

  flushLogs(): void {
    this.#requestLog.flush();
    for (const target of this.router.routes) target.requestLog.flush();
  }

  close(): Promise<void> {
    this.closing = true;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  /** Called by each exchange once: its log line and metrics. */
  finished(exchange: Exchange): void {
    this.#inFlight--;
    const { res, target } = exchange;
    const socket = exchange.req.socket as ClientSocket;
    if (socket[BUSY] === exchange) {
      // The next pipelined request on this connection starts only now: one upstream request per
      // client connection at a time, so MAX_CONNECTIONS also bounds the upstream requests.
      const next = socket[QUEUE]?.shift();
      socket[BUSY] = next;
      next?.start();
    } else {
      const queue = socket[QUEUE];
      const index = queue?.indexOf(exchange) ?? -1;
      if (index >= 0) queue?.splice(index, 1);
    }
    if (socket[CLOSE_AFTER] === true && socket[BUSY] === undefined) socket.destroySoon();
    const durationMs = this.clock.now() - exchange.startedAt;
    const status = res.headersSent ? res.statusCode : 499;
    (exchange.requestLog ?? this.#requestLog).write({
      requestId: exchange.id,
      method: exchange.req.method,
      path: pathForLog(exchange),
      status,
      durationMs,
      aborted: !res.writableFinished,
    });
    this.metrics.requestFinished(target?.name ?? NO_UPSTREAM, status, durationMs / 1000);
    if (this.closing) setImmediate(() => this.server.closeIdleConnections());
  }

  // ---- events ----------------------------------------------------------------------------------

  /** Counts client connections; one beyond the limit (`maxConnections`) is answered 503 and closed. */
  readonly #onConnection = (socket: Socket): void => {
    if (this.#connections >= this.#maxConnections) {
      (socket as ClientSocket)[OVER_CAPACITY] = true;
      refuseOverCapacity(socket, this.#overCapacity);
      this.metrics.requestFinished(NO_UPSTREAM, 503, 0);
      const now = this.clock.now();
      if (now - this.#lastCapacityWarning >= CAPACITY_WARNING_INTERVAL_MS) {
        this.#lastCapacityWarning = now;
        this.log.warn({ maxConnections: this.#maxConnections }, 'refusing client connections: the limit is reached (answered 503); ' +
          `raise ${this.settingNames('maxConnections')} or find the client that holds them`);
      }
      return;
    }
    this.#connections++;
    socket.once('close', this.#onConnectionClose);
    socket.once('close', onClientSocketClose);
  };

  readonly #onConnectionClose = (): void => {
    this.#connections--;
  };

  /**
   * `Expect: 100-continue`: handled like any request, but `100 Continue` is only sent once the
   * request is about to be forwarded: a refused request is answered before the client sends its body.
   */
  readonly #onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    (req as IncomingMessage & { [EXPECTS_CONTINUE]?: boolean })[EXPECTS_CONTINUE] = true;
    this.server.emit('request', req, res);
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket as ClientSocket;
    if (socket[OVER_CAPACITY] === true) {
      socket.destroy();
      return;
    }
    this.#inFlight++;
    const expectContinue = (req as IncomingMessage & { [EXPECTS_CONTINUE]?: boolean })[EXPECTS_CONTINUE] === true;
    if (this.closing) res.setHeader('connection', 'close');
    const exchange = new Exchange(this, req, res, expectContinue);
    if (socket[BUSY] === undefined) {
      socket[BUSY] = exchange;
      exchange.start();
    } else {
      (socket[QUEUE] ??= []).push(exchange); // pipelined: started when the one before it is done
    }
  };

  /**
   * `CONNECT host:port`: answered 405 on the raw socket, which is then closed; behind a request
   * still in flight on the connection (pipelined), that one is answered first and the
   * connection then closed, so no answer lands out of order.
   */
  readonly #onConnect = (req: IncomingMessage, socket: Duplex): void => {
    if (!this.#closeAfterBusy(socket)) refuseConnect(req, socket, this.log, this.metrics);
  };

  /** `Upgrade` (WebSocket, h2c): answered 501 on the raw socket like `CONNECT`. */
  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex): void => {
    if (!this.#closeAfterBusy(socket)) refuseUpgrade(req, socket, this.log, this.metrics);
  };

  /** When a request is in flight on `socket`: close it after that one is answered, and say so. */
  #closeAfterBusy(socket: Duplex): boolean {
    const client = socket as ClientSocket;
    if (client[BUSY] === undefined) return false;
    socket.on('error', noop);
    client[CLOSE_AFTER] = true;
    return true;
  }

  /**
   * A request Node could not parse: answered like every other error (JSON, Proxy-Status), then
   * closed; on a connection with a response in flight (bytes pipelined after it, also after
   * `Connection: close`) that response is finished first, then the connection is closed.
   */
  readonly #onClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    if ((socket as ClientSocket)[BUSY] !== undefined) {
      // Bytes after the request in flight that are not a request: finish that one, then close.
      // (An unfinished message at the end of the stream means the client is gone: cut.)
      if (error.code?.startsWith('HPE_') === true && error.code !== 'HPE_INVALID_EOF_STATE' && socket.writable) this.#closeAfterBusy(socket);
      else socket.destroy();
      return;
    }
    refuseUnparseable(error, socket, this.log);
  };
}

function toMs(seconds: number): number {
  return Math.max(1, Math.round(seconds * 1000));
}

/**
 * Builds the proxy listener (not yet listening). Throws a `ConfigError` when two routes are
 * ambiguous. The returned server handles any number of concurrent requests.
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  return new TokenProxy(options);
}
