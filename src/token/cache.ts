/**
 * The token cache: a `CachedTokenSource` per upstream that wraps the token endpoint client. It
 * fetches at start, refreshes ahead of expiry in the background, shares one in-flight fetch among
 * any number of callers, keeps serving the current token while a refresh fails, backs off with
 * jitter (token/refresh-schedule.ts says when), and never hands out a token past its early-expiry
 * line. A 401 may force one refresh per token, not more often than a floor; a reload of the
 * credentials (`credentialsChanged`) ends the wait after a failure at once.
 * (golang/oauth2 `reuseTokenSource`; panva/jose `src/jwks/remote.ts`; Envoy's oauth2 token provider.)
 *
 * Invariant (tested with a table and a seeded generator of hostile answers, test/unit/token/
 * hostile-answers.test.ts): whatever `fetch` resolves or rejects with, every promise the cache
 * makes settles or is handled, callers get a token or a `TokenUnavailableError`, and what is cached
 * is a token with a finite expiry that may be handed out, never a malformed one.
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
  /** A 401 dropped the cached token (a forced refresh); not called when the floor kept it. */
  forcedRefresh?(): void;
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
   * Least time between two forced refreshes (after a 401): a token that draws a 401 sooner after
   * the last forced refresh is kept, and `invalidate` returns `false`. Default 30 000.
   */
  forcedRefreshFloorMs?: number;
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
  readonly #maxWaitMs: number;
  readonly #fetchTimeoutMs: number;
  readonly #forcedRefreshFloorMs: number;

  #token: Token | undefined;
  /** `refreshSchedule.usableUntil(#token)`, kept so `peek()` is one comparison. */
  #usableUntil = 0;
  /** When the last forced refresh (a 401 dropping the token) happened. */
  #lastForcedAt: number | undefined;
  /** The credentials changed while a fetch was in flight: if it fails, retry at once. */
  #changedDuringFetch = false;
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
    this.#maxWaitMs = options.maxWaitMs ?? 15_000;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 30_000;
    this.#forcedRefreshFloorMs = options.forcedRefreshFloorMs ?? 30_000;
    if (!(this.#maxWaitMs > 0) || !(this.#fetchTimeoutMs > 0)) {
      throw new RangeError('maxWaitMs and fetchTimeoutMs must be positive.');
    }
    if (!(this.#forcedRefreshFloorMs >= 0)) throw new RangeError('forcedRefreshFloorMs must be zero or more.');
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

  /** The cached token if it may be handed out now, else `undefined`. Never starts a fetch. Synchronous and cheap. */
  peek(): Token | undefined {
    const token = this.#token;
    if (this.#closed || token === undefined) return undefined;
    return this.#clock.now() < this.#usableUntil ? token : undefined;
  }

  /**
   * The upstream answered 401 to a request sent with `accessToken`. Returns whether a resend with
   * a new token is worthwhile:
   * - `accessToken` is the cached token and no forced refresh happened within the floor: the
   *   token is dropped, a fetch starts now (a forced refresh, counted), `true`;
   * - it is the cached token but a forced refresh happened less than the floor ago: the token is
   *   kept, `false` (the caller passes the 401 on);
   * - the cache holds a different usable token or a fetch is in flight: `true`, nothing changes;
   * - otherwise (nothing usable cached, no fetch): `true` when `token()` would fetch now, `false`
   *   while a retry after a failure is not due yet (a resend would only get a 503).
   * Synchronous; never throws.
   */
  invalidate(accessToken: string): boolean {
    if (this.#closed) return false;
    const now = this.#clock.now();
    const token = this.#token;
    if (token !== undefined && token.accessToken === accessToken) {
      if (this.#lastForcedAt !== undefined && now - this.#lastForcedAt < this.#forcedRefreshFloorMs) {
        this.#logger.debug({ upstream: this.#name, floorSeconds: this.#forcedRefreshFloorMs / 1000 },
          'kept the cached access token after a 401: the last forced refresh was less than the floor ago');
        return false;
      }
      this.#token = undefined;
      this.#usableUntil = 0;
      this.#lastForcedAt = now;
      this.#logger.info({ upstream: this.#name }, 'dropped the cached access token after the upstream rejected it; fetching a new one');
      notify(() => this.#observer?.forcedRefresh?.());
      if (this.#pending === undefined) this.#startFetch();
      return true;
    }
    if (this.#pending !== undefined || this.peek() !== undefined) return true;
    return this.#retryAt === undefined || now >= this.#retryAt;
  }

  /**
   * Something the token request depends on changed (the private key was reloaded). When the last
   * fetch failed, the backoff is reset and a fetch starts at once; a fetch in flight that fails is
   * retried at once. Does nothing else while all is well: the next refresh uses the new
   * credentials. Never throws.
   */
  credentialsChanged(what: string): void {
    if (this.#closed) return;
    // A fetch in flight may have been signed with the old credentials: if it fails, retry at once.
    if (this.#pending !== undefined) this.#changedDuringFetch = true;
    if (this.#lastError === undefined) return;
    this.#consecutiveFailures = 0;
    this.#retryAt = undefined;
    this.#logger.info({ upstream: this.#name, changed: what }, 'the credentials changed after a failed token request: trying again now');
    if (this.#pending === undefined) this.#startFetch();
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
    this.#changedDuringFetch = false;
    let call: Promise<Token>;
    try {
      call = Promise.resolve(this.#fetchToken(controller.signal));
    } catch (error) {
      call = Promise.reject(error);
    }
    call.then(
      (token) => this.#settle(pending, token, undefined),
      (error: unknown) => this.#settle(pending, undefined, error),
    ).catch((error: unknown) => {
      // #settle never throws by design; should it ever, the callers still get an answer.
      this.#logger.error({ upstream: this.#name, err: describe(error) }, 'unexpected failure while handling a token answer');
      if (this.#pending === pending) {
        this.#pending = undefined;
        pending.guard.cancel();
        this.#retryAt = this.#clock.now() + 1000;
        this.#schedule(1000);
      }
      pending.reject(this.#unavailable(asError(error), 1000));
    });
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
    if (token !== undefined) {
      const problem = tokenProblem(token);
      if (problem !== undefined) {
        this.#fail(pending, this.#malformedError(problem), now);
        return;
      }
      const usableUntil = this.#refreshSchedule.usableUntil(token);
      if (now < usableUntil) {
        this.#succeed(pending, token, usableUntil, now);
        return;
      }
      this.#fail(pending, this.#expiredError(token, now), now);
      return;
    }
    this.#fail(pending, asError(failure), now);
  }

  #succeed(pending: PendingFetch, token: Token, usableUntil: number, now: number): void {
    this.#token = token;
    this.#usableUntil = usableUntil;
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
        expiresAt: isoTime(token.expiresAt),
        lifetimeSeconds: Math.round((token.expiresAt - now) / 1000),
        nextRefreshAt: isoTime(refreshAt),
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
    // A reload during the fetch may have fixed what made it fail: try again at once.
    const delay = this.#changedDuringFetch ? 0 : this.#refreshSchedule.retryDelay(error, this.#consecutiveFailures);
    this.#changedDuringFetch = false;
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

  #expiredError(token: Token, now: number): TokenEndpointError {
    const ago = Math.max(0, Math.round((now - token.expiresAt) / 1000));
    return new TokenEndpointError(
      'token_response_invalid',
      `The token endpoint for upstream "${this.#name}" gave a token that had already expired (${ago}s ago) when it arrived; check that this machine's clock and the token endpoint's agree (NTP).`,
      { retryable: false },
    );
  }

  #malformedError(problem: string): TokenEndpointError {
    return new TokenEndpointError(
      'token_response_invalid',
      `The token endpoint client for upstream "${this.#name}" produced an unusable token (${problem}); it was not cached.`,
      { retryable: false },
    );
  }
}

/** What is wrong with a token the fetch produced, or `undefined` when it can be cached. */
function tokenProblem(token: unknown): string | undefined {
  if (typeof token !== 'object' || token === null) return 'not a token';
  const { accessToken, expiresAt, obtainedAt } = token as Partial<Token>;
  if (typeof accessToken !== 'string' || !B64TOKEN.test(accessToken)) return 'the access token is not RFC 6750 b64token syntax';
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || Math.abs(expiresAt) > MAX_TIME_MS) return 'the expiry is not a time';
  if (typeof obtainedAt !== 'number' || !Number.isFinite(obtainedAt) || Math.abs(obtainedAt) > MAX_TIME_MS) return 'the time it was obtained is not a time';
  return undefined;
}

/** RFC 6750 2.1 `b64token`: what may follow `Bearer ` in an `Authorization` field. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** The largest time `Date` can represent (epoch ms). */
const MAX_TIME_MS = 8.64e15;

function isoTime(epochMs: number): string {
  return Number.isFinite(epochMs) && Math.abs(epochMs) <= MAX_TIME_MS ? new Date(epochMs).toISOString() : String(epochMs);
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : typeof error;
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
