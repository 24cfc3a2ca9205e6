/**
 * The token cache: a `CachedTokenSource` per upstream that wraps the token endpoint client. It
 * fetches at start, refreshes ahead of expiry in the background, shares one in-flight fetch among
 * any number of callers, keeps serving the current token while a refresh fails, backs off with
 * jitter (token/refresh-schedule.ts says when), and never hands out a token past `expiresAt - earlyExpiry`.
 * (golang/oauth2 `reuseTokenSource`; panva/jose `src/jwks/remote.ts`; Envoy's oauth2 token provider.)
 */
import type { Clock, Timer } from '../lib/clock.js';
import { ProxyError, TokenEndpointError, TokenUnavailableError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { RefreshSchedule } from './refresh-schedule.js';
import type { RefreshScheduleOptions } from './refresh-schedule.js';
import type { CachedTokenSource, Token, TokenState } from './token.js';

/**
 * Hears about every finished fetch (the wiring turns these into metrics). Called synchronously
 * from the cache; must not throw (a throw is caught and ignored). `fetched` receives the token:
 * never log or export it.
 */
export interface TokenSourceObserver {
  fetched(token: Token): void;
  failed(error: Error): void;
}

/**
 * Options of `CachingTokenSource`. Times are milliseconds. `earlyExpiryMs`, `refreshAheadRatio`,
 * `backoff` and `random` are the `RefreshScheduleOptions`.
 */
export interface CachingTokenSourceOptions extends RefreshScheduleOptions {
  /** The upstream's name, used in logs and error messages. */
  name: string;
  /** Gets a new token (the token endpoint client). Should stop when `signal` aborts. */
  fetch: (signal: AbortSignal) => Promise<Token>;
  clock: Clock;
  logger: Logger;
  observer?: TokenSourceObserver;
  /** How long one caller waits for a fetch before getting `TokenUnavailableError`. Default 15 000. */
  maxWaitMs?: number;
  /**
   * Guard for a fetch that never settles (the endpoint client has its own timeout; this one is
   * the cache's backstop): after this long the fetch is aborted and counted as failed. Default 30 000.
   */
  fetchTimeoutMs?: number;
}

/** One fetch in flight; identity plus `seq` tell a current answer from a late one. */
interface PendingFetch {
  readonly seq: number;
  readonly controller: AbortController;
  readonly guard: Timer;
  readonly promise: Promise<Token>;
  readonly resolve: (token: Token) => void;
  readonly reject: (error: Error) => void;
}

/** One caller waiting for the shared fetch. */
interface Waiter {
  fail(error: unknown): void;
}

/**
 * A caching token source for one upstream. Safe for concurrent use: any number of callers may
 * await `token()` at once and share at most one fetch; a caller's `signal` or `maxWaitMs` stops
 * that caller only, never the shared fetch. A fetch's answer is applied only while that fetch is
 * the current one (a sequence number), so a late answer never overwrites a newer token.
 * `close()` cancels every timer, aborts the fetch in flight and rejects waiting and later callers.
 */
export class CachingTokenSource implements CachedTokenSource {
  readonly #name: string;
  readonly #fetchToken: (signal: AbortSignal) => Promise<Token>;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #observer: TokenSourceObserver | undefined;
  readonly #refreshSchedule: RefreshSchedule;
  readonly #earlyExpiryMs: number;
  readonly #maxWaitMs: number;
  readonly #fetchTimeoutMs: number;

  #token: Token | undefined;
  #tokenSeq = 0;
  #fetchSeq = 0;
  #pending: PendingFetch | undefined;
  #waiters = new Set<Waiter>();
  #timer: Timer | undefined;
  #timerAt: number | undefined;
  /** When the next attempt after a failure is due; undefined after a success. */
  #retryAt: number | undefined;
  #lastRefreshAt: number | undefined;
  #lastError: { code: string; message: string; at: number } | undefined;
  #lastErrorObject: Error | undefined;
  #consecutiveFailures = 0;
  #started = false;
  #closed = false;

  constructor(options: CachingTokenSourceOptions) {
    this.#name = options.name;
    this.#fetchToken = options.fetch;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#observer = options.observer;
    this.#refreshSchedule = new RefreshSchedule(options);
    this.#earlyExpiryMs = this.#refreshSchedule.earlyExpiryMs;
    this.#maxWaitMs = options.maxWaitMs ?? 15_000;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 30_000;
    if (!(this.#maxWaitMs > 0) || !(this.#fetchTimeoutMs > 0)) {
      throw new RangeError('maxWaitMs and fetchTimeoutMs must be positive.');
    }
  }

  /** Starts the first fetch in the background (refreshes then schedule themselves). Idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (this.#pending === undefined) this.#startFetch();
  }

  /** Cancels every timer, aborts the fetch in flight, and rejects waiting and later callers. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTimer();
    const error = this.#closedError();
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      pending.guard.cancel();
      pending.controller.abort(error);
      pending.reject(error);
    }
    for (const waiter of [...this.#waiters]) waiter.fail(error);
  }

  /**
   * A usable token: the cached one, else the shared in-flight fetch's (starting one if none runs).
   * Rejects at once with `TokenUnavailableError` when no token is usable and the retry after a
   * failed fetch is not yet due; rejects this caller only on `signal` abort (with its reason) or
   * after `maxWaitMs`.
   */
  token(signal?: AbortSignal): Promise<Token> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    const cached = this.peek();
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.#pending;
    if (pending === undefined) {
      const now = this.#clock.now();
      if (this.#retryAt !== undefined && now < this.#retryAt) {
        return Promise.reject(this.#unavailable(this.#lastErrorObject, this.#retryAt - now));
      }
      pending = this.#startFetch();
    }
    return this.#wait(pending.promise, signal);
  }

  /** The cached token if it may be handed out now, else `undefined`. Never starts a fetch. */
  peek(): Token | undefined {
    const token = this.#token;
    if (this.#closed || token === undefined) return undefined;
    return this.#clock.now() < token.expiresAt - this.#earlyExpiryMs ? token : undefined;
  }

  /** Drops the cached token only if it is still `accessToken`; the next `token()` fetches (shared). */
  invalidate(accessToken: string): boolean {
    if (this.#token === undefined || this.#token.accessToken !== accessToken) return true;
    this.#token = undefined;
    this.#logger.info({ upstream: this.#name }, 'dropped the cached access token after the upstream rejected it');
    return true;
  }

  /** What the cache knows, for `/status` and `/readyz`. Never contains the token. */
  state(): TokenState {
    return {
      valid: this.peek() !== undefined,
      expiresAt: this.#token?.expiresAt,
      lastRefreshAt: this.#lastRefreshAt,
      nextRefreshAt: this.#timerAt,
      lastError: this.#lastError === undefined ? undefined : { ...this.#lastError },
      consecutiveFailures: this.#consecutiveFailures,
    };
  }

  /** Starts a fetch that becomes the one all callers share. */
  #startFetch(): PendingFetch {
    this.#cancelTimer();
    const seq = ++this.#fetchSeq;
    const controller = new AbortController();
    let resolve!: (token: Token) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<Token>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A background refresh may fail with nobody waiting: that is not an unhandled rejection.
    promise.catch(() => undefined);
    const guard = this.#clock.setTimer(() => {
      const error = new TokenEndpointError(
        'token_endpoint_timeout',
        `The token request for upstream "${this.#name}" did not finish within ${Math.ceil(this.#fetchTimeoutMs / 1000)}s; check that the token endpoint is reachable and answering.`,
        { retryable: true },
      );
      if (this.#pending !== pending) return;
      controller.abort(error);
      this.#settle(pending, undefined, error);
    }, this.#fetchTimeoutMs);
    const pending: PendingFetch = { seq, controller, guard, promise, resolve, reject };
    this.#pending = pending;
    let call: Promise<Token>;
    try {
      call = Promise.resolve(this.#fetchToken(controller.signal));
    } catch (error) {
      call = Promise.reject(error);
    }
    call.then(
      (token) => this.#settle(pending, token, undefined),
      (error: unknown) => this.#settle(pending, undefined, error),
    );
    return pending;
  }

  /** Applies a fetch's outcome if that fetch is still the current one; drops it otherwise. */
  #settle(pending: PendingFetch, token: Token | undefined, failure: unknown): void {
    if (this.#pending !== pending || pending.seq <= this.#tokenSeq) {
      if (token !== undefined) {
        this.#logger.debug({ upstream: this.#name, fetch: pending.seq }, 'ignored a late token answer from a superseded request');
      }
      return;
    }
    this.#pending = undefined;
    pending.guard.cancel();
    const now = this.#clock.now();
    if (token !== undefined && now < token.expiresAt - this.#earlyExpiryMs) {
      this.#succeed(pending, token, now);
      return;
    }
    const error = token !== undefined ? this.#tooShortError(token, now) : asError(failure);
    this.#fail(pending, error, now);
  }

  #succeed(pending: PendingFetch, token: Token, now: number): void {
    this.#token = token;
    this.#tokenSeq = pending.seq;
    this.#lastRefreshAt = now;
    this.#lastError = undefined;
    this.#lastErrorObject = undefined;
    this.#consecutiveFailures = 0;
    this.#retryAt = undefined;
    const refreshAt = this.#refreshSchedule.refreshAt(token, now);
    this.#schedule(refreshAt - now);
    this.#logger.info(
      {
        upstream: this.#name,
        expiresAt: new Date(token.expiresAt).toISOString(),
        lifetimeSeconds: Math.round((token.expiresAt - now) / 1000),
        nextRefreshAt: new Date(refreshAt).toISOString(),
      },
      'obtained a new access token',
    );
    notify(() => this.#observer?.fetched(token));
    pending.resolve(token);
  }

  #fail(pending: PendingFetch, error: Error, now: number): void {
    this.#consecutiveFailures += 1;
    const code = error instanceof ProxyError ? error.code : 'internal_error';
    const message =
      error instanceof ProxyError ? error.message : 'The token request failed unexpectedly; the warning in the sidecar log has the detail.';
    this.#lastError = { code, message, at: now };
    this.#lastErrorObject = error;
    const delay = this.#refreshSchedule.retryDelay(error, this.#consecutiveFailures);
    this.#retryAt = now + delay;
    this.#schedule(delay);
    this.#logger.warn(
      {
        upstream: this.#name,
        code,
        message,
        httpStatus: error instanceof TokenEndpointError ? error.httpStatus : undefined,
        oauthError: error instanceof TokenEndpointError ? error.oauthError : undefined,
        detail: error instanceof ProxyError ? undefined : `${error.name}: ${error.message}`,
        consecutiveFailures: this.#consecutiveFailures,
        retryInSeconds: Math.ceil(delay / 1000),
        servingCachedToken: this.peek() !== undefined,
      },
      'could not get an access token; will retry',
    );
    notify(() => this.#observer?.failed(error));
    pending.reject(this.#unavailable(error, delay));
  }

  /** Waits for the shared fetch on behalf of one caller, bounded by its signal and `maxWaitMs`. */
  #wait(shared: Promise<Token>, signal: AbortSignal | undefined): Promise<Token> {
    return new Promise<Token>((resolve, reject) => {
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        timer.cancel();
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
        return true;
      };
      const waiter: Waiter = {
        fail: (error) => {
          if (finish()) reject(error);
        },
      };
      const onAbort = (): void => waiter.fail(signal?.reason);
      const timer = this.#clock.setTimer(() => {
        waiter.fail(
          new TokenUnavailableError(
            `The token endpoint for upstream "${this.#name}" did not give a token within ${Math.ceil(this.#maxWaitMs / 1000)}s; check that it is reachable and answering.`,
            { retryAfterSeconds: 1 },
          ),
        );
      }, this.#maxWaitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      shared.then(
        (token) => {
          if (finish()) resolve(token);
        },
        (error: unknown) => waiter.fail(error),
      );
    });
  }

  #schedule(delayMs: number): void {
    this.#cancelTimer();
    if (this.#closed) return;
    const delay = Math.max(0, delayMs);
    this.#timerAt = this.#clock.now() + delay;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.#timerAt = undefined;
      if (!this.#closed && this.#pending === undefined) this.#startFetch();
    }, delay);
  }

  #cancelTimer(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = undefined;
  }

  #unavailable(cause: Error | undefined, retryInMs: number): TokenUnavailableError {
    // Clients see this sentence: the code of the last failure, never the token endpoint's own words
    // (those are in the warn log and on the admin port's /status).
    const last = this.#lastErrorObject;
    const oauthError = last instanceof TokenEndpointError && last.oauthError !== undefined && /^[\w.-]{1,64}$/.test(last.oauthError) ? `, ${last.oauthError}` : '';
    const reason = this.#lastError === undefined ? '' : ` The last token request failed (${this.#lastError.code}${oauthError}); the sidecar's log and /status say why.`;
    return new TokenUnavailableError(
      `No access token is available for upstream "${this.#name}"; the next token request is in ${Math.ceil(retryInMs / 1000)}s.${reason}`,
      { retryAfterSeconds: retryInMs / 1000, cause },
    );
  }

  #closedError(): TokenUnavailableError {
    return new TokenUnavailableError(`The token source for upstream "${this.#name}" is closed because the sidecar is shutting down.`);
  }

  #tooShortError(token: Token, now: number): TokenEndpointError {
    return new TokenEndpointError(
      'token_response_invalid',
      `The token endpoint for upstream "${this.#name}" gave a token valid for only ${Math.max(0, Math.round((token.expiresAt - now) / 1000))}s, not more than the ${this.#earlyExpiryMs / 1000}s early-expiry margin; lower the early expiry or have the server issue longer-lived tokens.`,
      { retryable: false },
    );
  }
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/** Runs an observer callback; an observer's failure must not break the cache. */
function notify(call: () => void): void {
  try {
    call();
  } catch {
    // Observers are metrics; ignore their failures.
  }
}
