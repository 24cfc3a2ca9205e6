/**
 * One request through the proxy, from the client's request to the end of its response: the one
 * owner of that request's state. It moves through explicit phases:
 *
 *   received -> [waiting_for_token] -> sending -> awaiting_answer -> answered -> done
 *                         ^                |            |
 *                         +--- resending <-+------------+   (at most once per request)
 *
 * - received: admitted (proxy/admission.ts), routed (proxy/router.ts); a body of known length up
 *   to RETRY_BODY_LIMIT gets a reservation from the shared budget (proxy/retained-body.ts).
 * - waiting_for_token: no usable token is cached; the token source is awaited (the client's idle
 *   timer does not cut this wait: the token source bounds it).
 * - sending: the upstream request is out; the client's body streams to it (and into the kept
 *   copy). IDLE_TIMEOUT cuts a body that stalls in either direction (the client connection's idle
 *   timer: a stall upstream stalls the client connection too, through back-pressure).
 * - awaiting_answer: the whole request is sent; UPSTREAM_TIMEOUT bounds the wait for the
 *   response head (a deadline, not an idle timer: a dripping upstream cannot hold it open).
 * - answered: the response head is passed on and its body streams to the client (IDLE_TIMEOUT
 *   again); or the sidecar answered itself (an error).
 * - resending: why a request is resent, and the only two reasons it ever is:
 *     `unauthorized`: the upstream answered 401 and the token source says a new token is worth a
 *       try (`invalidate()` returned true), and the body was kept: sent again with a fresh token;
 *     `stale_connection`: the request failed with ECONNRESET on a reused keep-alive connection
 *       before any answer, the method is idempotent and the body was kept: sent again with the
 *       same token on a new connection.
 *   A 401 always drops the token that drew it (`invalidate()`), resent or not.
 * - done: the client's response closed (completed or not); everything is released and the
 *   request's log line written.
 *
 * Events reach the exchange through shared listener functions (no closure per request on the hot
 * path) that find it in a symbol slot of the message they fire on; events of an earlier attempt
 * are recognised by their upstream request not being the current one, and ignored. Every entry
 * point catches what it throws and answers the request with a 500, so no input can take the
 * process down.
 */
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.js';
import { errorCode, ProxyError, TokenUnavailableError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { RequestLog } from '../lib/logger.js';
import type { SettingNames } from '../lib/setting-names.js';
import { admit } from './admission.js';
import type { BodyLength } from './admission.js';
import { sendError, toProxyError } from './error-response.js';
import { forwardRequestHeaders, forwardResponseHeaders, isLoop } from './header-rules.js';
import { CONNECT_REFUSED, LOOP_DETECTED } from './refusals.js';
import type { RetainedBody, RetainedBodyBudget } from './retained-body.js';
import type { Router } from './router.js';
import type { ProxyMetrics, ProxySetting } from './types.js';
import type { UpstreamTarget } from './upstream-target.js';
import type { Token } from '../token/token.js';

/** Where a request stands; see the file comment. */
export type Phase = 'received' | 'waiting_for_token' | 'sending' | 'awaiting_answer' | 'answered' | 'resending' | 'done';

/** Why a request was sent a second time. */
export type ResendReason = 'unauthorized' | 'stale_connection';

/**
 * Methods a reset on a reused connection may resend automatically (RFC 9110 9.2.2): the upstream
 * may have acted on the first attempt before the reset, which is harmless only for these.
 */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** A client's own `X-Request-Id` is taken over when it is 1 to 128 of these characters. */
const REQUEST_ID = /^[A-Za-z0-9._~:@/+=-]{1,128}$/;

/** What every exchange of one proxy shares: its parts and settings. */
export interface ExchangeContext {
  readonly router: Router<UpstreamTarget>;
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  readonly clock: Clock;
  readonly budget: RetainedBodyBudget;
  readonly upstreamTimeoutMs: number;
  readonly upstreamTimeoutSeconds: number;
  /** Names the proxy's settings in messages. */
  readonly settingNames: SettingNames<ProxySetting>;
  readonly idleTimeoutMs: number;
  readonly maxHeaderCount: number;
  readonly xForwarded: boolean;
  /** True once the proxy is draining: answers carry `Connection: close`. */
  readonly closing: boolean;
  /** Called once when the exchange is done: the log line and the metrics. */
  finished(exchange: Exchange): void;
}

/** Slot of the exchange on its request, response and upstream requests. */
const EXCHANGE = Symbol('exchange');
type Carrier = { [EXCHANGE]?: Exchange };

/** The exchange a request, response or upstream request belongs to, if any. */
function exchangeOf(message: object): Exchange | undefined {
  return (message as Carrier)[EXCHANGE];
}

/** The request id: the client's `X-Request-Id` when it is short and plain, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/** A listener that ignores its event (an `'error'` listener keeps an error from being thrown). */
export function noop(): void {}

// ---- shared listeners: each only finds its exchange and dispatches ---------------------------

function onClientData(this: IncomingMessage, chunk: Buffer): void {
  exchangeOf(this)?.keepChunk(chunk);
}
function onUpstreamResponse(this: ClientRequest, answer: IncomingMessage): void {
  const exchange = exchangeOf(this);
  if (exchange === undefined) answer.resume();
  else exchange.upstreamAnswered(this, answer);
}
function onUpstreamError(this: ClientRequest, error: Error): void {
  exchangeOf(this)?.upstreamFailed(this, error);
}
function onUpstreamFinish(this: ClientRequest): void {
  exchangeOf(this)?.requestSent(this);
}
/** A `101 Switching Protocols` the sidecar never asked for: a malformed answer. */
function onUpstreamUpgrade(this: ClientRequest, _answer: IncomingMessage, socket: Duplex): void {
  socket.destroy();
  exchangeOf(this)?.upstreamFailed(this, Object.assign(new Error('unsolicited 101'), { code: 'HPE_UNEXPECTED_UPGRADE' }));
}
function onAnswerClose(this: IncomingMessage): void {
  if (this.complete) return;
  const upstream = (this as IncomingMessage & { req?: ClientRequest }).req;
  if (upstream !== undefined) exchangeOf(upstream)?.answerBroken(upstream);
}
function onHeadersTimeout(exchange: Exchange): void {
  exchange.headersTimedOut();
}
function onResponseClose(this: ServerResponse): void {
  exchangeOf(this)?.closed();
}

export class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly id: string;
  readonly startedAt: number;
  readonly #ctx: ExchangeContext;
  #phase: Phase = 'received';
  /** The upstream, once routed. */
  #target: UpstreamTarget | undefined = undefined;
  /** Normalised path and query sent upstream, once routed. */
  #path = '';
  /** The body's framing upstream (proxy/admission.ts). */
  #bodyLength: BodyLength = 0;
  /** The copy of the body kept for a resend; undefined when none may be kept (or no longer). */
  #kept: RetainedBody | undefined = undefined;
  #expectContinue: boolean;
  /** The token of the current attempt. */
  #token: Token | undefined = undefined;
  /** The current attempt's upstream request; events of any other one are ignored. */
  #upstream: ClientRequest | undefined = undefined;
  #resendReason: ResendReason | undefined = undefined;
  #headersTimer: NodeJS.Timeout | undefined = undefined;
  /** Stops waiting for a token when the client leaves. */
  #abort: AbortController | undefined = undefined;

  constructor(ctx: ExchangeContext, req: IncomingMessage, res: ServerResponse, expectContinue: boolean) {
    this.#ctx = ctx;
    this.req = req;
    this.res = res;
    this.id = requestIdOf(req);
    this.startedAt = ctx.clock.now();
    this.#expectContinue = expectContinue;
    (req as Carrier)[EXCHANGE] = this;
    (res as Carrier)[EXCHANGE] = this;
    res.on('close', onResponseClose);
  }

  get phase(): Phase {
    return this.#phase;
  }

  /** The upstream the request was routed to, if it was. */
  get target(): UpstreamTarget | undefined {
    return this.#target;
  }

  /** The path sent upstream (normalised, with the query), once routed. */
  get path(): string {
    return this.#path;
  }

  /** Why the request was resent, if it was. */
  get resendReason(): ResendReason | undefined {
    return this.#resendReason;
  }

  /** The log of the request's upstream, or the proxy's. */
  get requestLog(): RequestLog | undefined {
    return this.#target?.requestLog;
  }

  // ---- received ------------------------------------------------------------------------------

  /** Admits and routes the request, then sends it (or answers it). */
  start(): void {
    try {
      const { req } = this;
      if (req.method === 'CONNECT') return this.#fail(CONNECT_REFUSED);
      const framing = admit(req, this.#ctx.maxHeaderCount);
      if (framing instanceof ProxyError) return this.#fail(framing);
      if (req.headers.via !== undefined && isLoop(req.headers.via)) return this.#fail(LOOP_DETECTED);
      const match = this.#ctx.router.match(req.url ?? '', req.headers.host);
      if (match instanceof ProxyError) return this.#fail(match);
      this.#target = match.route;
      this.#path = match.path;
      this.#bodyLength = framing;
      if (framing >= 0) this.#kept = this.#ctx.budget.reserve(framing);
      this.#sendWithToken();
    } catch (error) {
      this.#internalError(error);
    }
  }

  // ---- waiting_for_token -----------------------------------------------------------------------

  /** Sends with the cached token when there is one, else once the token source gives one. */
  #sendWithToken(): void {
    const tokens = (this.#target as UpstreamTarget).route.tokens;
    const cached = tokens.peek();
    if (cached !== undefined) {
      this.#send(cached, false);
      return;
    }
    this.#phase = 'waiting_for_token';
    const abort = new AbortController();
    this.#abort = abort;
    tokens.token(abort.signal)
      .then((token) => this.#tokenArrived(token), (error: unknown) => this.#tokenFailed(error))
      .catch((error: unknown) => this.#internalError(error));
  }

  #tokenArrived(token: Token): void {
    this.#abort = undefined;
    if (this.#phase !== 'waiting_for_token') return;
    try {
      this.#send(token, false);
    } catch (error) {
      this.#internalError(error);
    }
  }

  #tokenFailed(error: unknown): void {
    this.#abort = undefined;
    if (this.#phase !== 'waiting_for_token') return;
    const failure = error instanceof ProxyError
      ? error
      : new TokenUnavailableError(`No access token could be obtained for the upstream ${(this.#target as UpstreamTarget).name}; see the sidecar log.`,
        { cause: error });
    this.#fail(failure);
  }

  // ---- sending ---------------------------------------------------------------------------------

  /** Sends the current attempt with `token`; `fresh`: on a new connection. */
  #send(token: Token, fresh: boolean): void {
    const { req, res } = this;
    if (res.destroyed || res.writableEnded) return;
    const target = this.#target as UpstreamTarget;
    const resend = this.#resendReason !== undefined;
    let upstream: ClientRequest;
    try {
      const headers = forwardRequestHeaders(req.headers, {
        host: target.host,
        authorization: target.authorization(token),
        httpVersion: req.httpVersion,
        xForwarded: this.#ctx.xForwarded,
        remoteAddress: req.socket.remoteAddress,
        method: req.method as string,
        bodyLength: this.#bodyLength,
        requestId: this.id,
      });
      upstream = target.request(req.method as string, this.#path, headers, fresh);
    } catch (error) {
      // Node refused a header value. The client's passed Node's parser, so it is the token's
      // (the token source should have refused it): drop it, never send it.
      target.route.tokens.invalidate(token.accessToken);
      this.#fail(new TokenUnavailableError(
        `The access token for the upstream ${target.name} cannot be sent in an HTTP header; it was dropped. See the sidecar log.`,
        { cause: error, retryAfterSeconds: 1 }));
      return;
    }
    this.#token = token;
    this.#upstream = upstream;
    this.#phase = 'sending';
    (upstream as Carrier)[EXCHANGE] = this;
    upstream.on('response', onUpstreamResponse);
    upstream.on('error', onUpstreamError);
    upstream.on('finish', onUpstreamFinish);
    upstream.on('upgrade', onUpstreamUpgrade);
    target.log.trace({ requestId: this.id, resend: this.#resendReason }, 'forwarding request');
    if (this.#expectContinue) {
      this.#expectContinue = false;
      res.writeContinue();
    }
    if (resend) {
      const kept = this.#kept as RetainedBody;
      for (const chunk of kept.chunks) upstream.write(chunk);
      upstream.end();
      this.#dropKeptBody();
    } else if (this.#bodyLength === 0) {
      upstream.end();
    } else {
      if (this.#kept !== undefined) req.on('data', onClientData);
      req.pipe(upstream);
    }
  }

  /** A chunk of the client's body, kept for a resend. */
  keepChunk(chunk: Buffer): void {
    this.#kept?.keep(chunk);
  }

  // ---- awaiting_answer -------------------------------------------------------------------------

  /** The whole request reached the upstream connection: the wait for the answer starts. */
  requestSent(upstream: ClientRequest): void {
    if (upstream !== this.#upstream || this.#phase !== 'sending') return;
    this.#phase = 'awaiting_answer';
    this.#headersTimer = setTimeout(onHeadersTimeout, this.#ctx.upstreamTimeoutMs, this);
  }

  headersTimedOut(): void {
    this.#headersTimer = undefined;
    if (this.#phase !== 'awaiting_answer') return;
    const name = (this.#target as UpstreamTarget).name;
    this.#fail(new ProxyError('upstream_timeout',
      `The upstream ${name} did not answer within ${this.#ctx.upstreamTimeoutSeconds} s; check the upstream, or raise ${this.#ctx.settingNames('upstreamTimeout')}.`,
      { status: 504, proxyStatus: 'http_response_timeout' }));
  }

  /** The current attempt failed before or while sending, or while waiting for the answer. */
  upstreamFailed(upstream: ClientRequest, error: Error): void {
    if (upstream !== this.#upstream) return;
    // After the answer, a failure on the request side (the upstream closed without reading the
    // rest of the body) changes nothing: the answer is passed on whole; a broken answer body is
    // `answerBroken`'s.
    if (this.#phase === 'answered' || this.#phase === 'done') return;
    try {
      if (this.#mayResendAfterReset(upstream, error)) {
        this.#resend('stale_connection');
        return;
      }
      this.#fail(toProxyError(error, (this.#target as UpstreamTarget).name));
    } catch (failure) {
      this.#internalError(failure);
    }
  }

  #mayResendAfterReset(upstream: ClientRequest, error: Error): boolean {
    return this.#resendReason === undefined && this.#kept !== undefined && upstream.reusedSocket
      && (error as { code?: unknown }).code === 'ECONNRESET' && IDEMPOTENT_METHODS.has(this.req.method as string);
  }

  // ---- answered --------------------------------------------------------------------------------

  /** The upstream's response head arrived (possibly before the whole request was sent). */
  upstreamAnswered(upstream: ClientRequest, answer: IncomingMessage): void {
    if (upstream !== this.#upstream || this.#phase === 'done' || this.#phase === 'answered') {
      answer.on('error', noop);
      answer.resume();
      return;
    }
    try {
      this.#clearHeadersTimer();
      const status = answer.statusCode ?? 502;
      if (status === 401) {
        const target = this.#target as UpstreamTarget;
        const worthAnotherToken = target.route.tokens.invalidate((this.#token as Token).accessToken);
        if (worthAnotherToken && this.#resendReason === undefined && this.#kept !== undefined && !this.res.destroyed) {
          answer.on('error', noop);
          this.#resend('unauthorized');
          return;
        }
      }
      this.#phase = 'answered';
      this.#dropKeptBody();
      const { res } = this;
      if (res.destroyed) {
        answer.resume();
        return;
      }
      const headers = forwardResponseHeaders(answer.headers, this.id);
      // A body the client is still sending (the upstream answered early), or a drain: the client
      // connection ends with this answer.
      if (this.#ctx.closing || !this.req.complete) headers.connection = 'close';
      // The standard reason phrase, not the upstream's (Node refuses some that its parser accepts).
      try {
        res.writeHead(status, headers);
      } catch (error) {
        // A status or header value Node will not write: the upstream's answer is malformed.
        answer.on('error', noop);
        this.#fail(new ProxyError('upstream_reset',
          `The upstream ${(this.#target as UpstreamTarget).name} sent a response the sidecar cannot pass on (${errorCode(error) ?? 'error'}).`,
          { status: 502, proxyStatus: 'http_protocol_error', cause: error }));
        return;
      }
      answer.on('close', onAnswerClose);
      answer.on('error', noop);
      answer.pipe(res);
    } catch (error) {
      answer.resume();
      this.#internalError(error);
    }
  }

  /** The answer's body broke off (the upstream connection failed mid-body): cut the client's too. */
  answerBroken(upstream: ClientRequest): void {
    if (upstream !== this.#upstream) return;
    this.res.destroy();
  }

  // ---- resending -------------------------------------------------------------------------------

  /** Sends the request once more (see the file comment for when), once its whole body is kept. */
  #resend(reason: ResendReason): void {
    const target = this.#target as UpstreamTarget;
    this.#resendReason = reason;
    this.#phase = 'resending';
    this.#clearHeadersTimer();
    this.#ctx.metrics.upstreamRetry(target.name);
    target.log.debug({ requestId: this.id, reason }, reason === 'unauthorized'
      ? 'the upstream answered 401: resending once with a fresh token'
      : 'the reused upstream connection was closed by the upstream before it answered: resending once on a new connection');
    const previous = this.#upstream as ClientRequest;
    this.#upstream = undefined; // its events are ignored from here on
    // Never drain the first answer: an upstream could send a 401 whose body never ends. Its
    // connection is given up (the resend takes another).
    const { req } = this;
    req.unpipe(previous);
    previous.destroy();
    if (req.readableEnded) {
      this.#resendNow();
      return;
    }
    // The body is still arriving: keep collecting it.
    req.once('end', () => this.#resendNow());
    req.resume();
  }

  #resendNow(): void {
    if (this.#phase !== 'resending' || this.res.destroyed) return;
    try {
      if (this.#resendReason === 'unauthorized') this.#sendWithToken();
      else this.#send(this.#token as Token, true);
    } catch (error) {
      this.#internalError(error);
    }
  }

  // ---- done ------------------------------------------------------------------------------------

  /** The client's response closed (completed, failed or abandoned): release everything, log. */
  closed(): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    this.#clearHeadersTimer();
    this.#abort?.abort();
    this.#abort = undefined;
    const upstream = this.#upstream;
    // An unfinished exchange, or an upload the upstream no longer reads: that connection cannot be reused.
    if (upstream !== undefined && (!this.res.writableFinished || !upstream.writableFinished)) upstream.destroy();
    this.#dropKeptBody();
    this.#ctx.finished(this);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Answers with `error` (JSON, Proxy-Status); the current attempt, if any, is abandoned. */
  #fail(error: unknown): void {
    if (this.#phase === 'done') return;
    this.#phase = 'answered';
    this.#clearHeadersTimer();
    const upstream = this.#upstream;
    this.#upstream = undefined;
    upstream?.destroy();
    this.#dropKeptBody();
    sendError(this.res, error, this.#target?.log ?? this.#ctx.log, this.id);
  }

  /** An exception of the sidecar's own: the request gets a 500 (or is cut), the process goes on. */
  #internalError(error: unknown): void {
    this.#ctx.log.error({ requestId: this.id, err: error }, 'unexpected failure while handling a request');
    try {
      this.#fail(new ProxyError('internal_error', 'The sidecar failed while handling the request; see its log.',
        { status: 500, proxyStatus: 'proxy_internal_error', cause: error }));
    } catch {
      this.res.destroy();
    }
  }

  #dropKeptBody(): void {
    const kept = this.#kept;
    if (kept === undefined) return;
    this.#kept = undefined;
    this.req.off('data', onClientData);
    kept.release();
  }

  #clearHeadersTimer(): void {
    if (this.#headersTimer !== undefined) {
      clearTimeout(this.#headersTimer);
      this.#headersTimer = undefined;
    }
  }

  /**
   * Whether the sidecar itself is waiting (for a token, or for the upstream's response head):
   * then the client connection's idle timer (IDLE_TIMEOUT) does not cut it, the token source and
   * UPSTREAM_TIMEOUT bound the wait.
   */
  get waitingOnSidecar(): boolean {
    return this.#phase === 'waiting_for_token' || this.#phase === 'awaiting_answer';
  }
}
