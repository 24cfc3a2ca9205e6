/**
 * The per-request state of the proxy (`Exchange`), how it is found again from the messages it
 * touches (a symbol-keyed slot on the request, the response and the upstream request), and the
 * listeners shared by every request, which find their exchange that way instead of closing over
 * it (issue 5: no closure per request).
 */
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { RouteState } from './route-state.js';
import type { Token } from '../token/token.js';

/** Longest client-supplied `x-request-id` taken over as the request id. */
const MAX_REQUEST_ID_LENGTH = 200;

/** The kept body of a request that has none: shared and frozen, never pushed to. */
export const EMPTY_BODY: readonly Buffer[] = Object.freeze([]);

/**
 * Everything one request carries through the proxy. Touched only from the event loop by the
 * request's own callbacks; `attempt` tells a live callback from one of an older attempt.
 */
export class Exchange {
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

/** Slot of the `Exchange` on its request, response and upstream request. */
export const EXCHANGE = Symbol('exchange');
/** Slot of the attempt number on an upstream request. */
export const ATTEMPT = Symbol('attempt');
/** Slot marking a request that came through `'checkContinue'`. */
export const EXPECTS_CONTINUE = Symbol('expectsContinue');
/** A message carrying the proxy's slots. */
export type ExchangeCarrier = { [EXCHANGE]?: Exchange; [ATTEMPT]?: number; [EXPECTS_CONTINUE]?: boolean };

/** The exchange a request, response or upstream request belongs to, if any. */
export function exchangeOf(message: object): Exchange | undefined {
  return (message as ExchangeCarrier)[EXCHANGE];
}

/** The request id: the client's `x-request-id` when it is non-empty and not too long, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && given.length > 0 && given.length <= MAX_REQUEST_ID_LENGTH ? given : randomUUID();
}

/** A listener that ignores its event (an `'error'` listener keeps an error from being thrown). */
export function noop(): void {}

/**
 * Node's `'timeout'` listener of an upstream request (the connection was idle for
 * `UPSTREAM_TIMEOUT`): marks the attempt and aborts it, unless the idleness is the client's doing
 * (it stopped reading the response, so back-pressure holds the upstream): then it only looks again
 * after another `UPSTREAM_TIMEOUT`.
 */
export function onUpstreamTimeout(this: ClientRequest): void {
  const carrier = this as ClientRequest & ExchangeCarrier;
  const exchange = carrier[EXCHANGE];
  if (exchange !== undefined && exchange.res.writableNeedDrain && !exchange.res.destroyed) {
    this.setTimeout(exchange.timeoutMs, onUpstreamTimeout);
    return;
  }
  if (exchange !== undefined) exchange.timedOutAttempt = carrier[ATTEMPT] ?? 0;
  this.destroy();
}

/**
 * The upstream response's `'close'` listener: when it closes before it completed (the upstream
 * connection broke mid-body), the client's response is cut too instead of hanging.
 */
export function onUpstreamResponseClose(this: IncomingMessage): void {
  if (this.complete) return;
  const proxyReq = (this as IncomingMessage & { req?: ClientRequest }).req;
  if (proxyReq !== undefined) exchangeOf(proxyReq)?.res.destroy();
}

/** The response's `'close'` listener (shared, so no closure per request): runs the exchange's `finished`. */
export function onResponseClose(this: ServerResponse): void {
  const exchange = exchangeOf(this);
  if (exchange !== undefined) exchange.finished(exchange);
}
