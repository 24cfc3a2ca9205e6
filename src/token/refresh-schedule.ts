/**
 * When the token cache fetches next and how long a token may be handed out: the early-expiry
 * line (`earlyExpiryMs` before expiry, at most a fifth of the token's lifetime, so a token of a
 * few seconds is still usable), the refresh time ahead of a token's expiry (a share of its
 * lifetime, with jitter, at least 30 s ahead, or a third of the lifetime when that is shorter,
 * always before the early-expiry line) and the retry delay after a
 * failed fetch (exponential backoff with equal jitter, capped; the cap for what cannot succeed;
 * never before the server's `Retry-After`). Arithmetic only: the cache owns the timers.
 * (Envoy's oauth2 token provider; golang/oauth2 `expiryDelta`.)
 */
import { ProxyError, TokenEndpointError } from '../lib/errors.js';
import type { Token } from './token.js';

/** The options that shape the refresh schedule (part of `CachingTokenSourceOptions`). Times are milliseconds. */
export interface RefreshScheduleOptions {
  /**
   * A token is handed out only while `now < expiresAt - margin`, the margin being this or a fifth
   * of the token's lifetime, whichever is shorter. Default 10 000.
   */
  earlyExpiryMs?: number;
  /**
   * Share of a token's lifetime after which it is refreshed, in (0, 1). Default: a random share
   * between 0.75 and 0.85. Either way the refresh comes at least 30 s before expiry when the
   * lifetime allows, and always before the token stops being usable.
   */
  refreshAheadRatio?: number;
  /** Retry backoff after a failed fetch: exponential from `baseMs` (1000), capped at `maxMs` (60 000). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Random numbers in [0, 1) for jitter; injectable for tests. Default `Math.random`. */
  random?: () => number;
}

/** The refresh comes at least this long before expiry when the lifetime allows (else a third of it). */
const REFRESH_MARGIN_MS = 30_000;
/** The early-expiry margin is at most this share of a token's lifetime. */
const EARLY_EXPIRY_SHARE = 0.2;
/** The refresh margin is at most this share of a token's lifetime; more than `EARLY_EXPIRY_SHARE`. */
const REFRESH_MARGIN_SHARE = 1 / 3;
/** A `Retry-After` longer than this is shortened to it. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * The refresh and retry times of one token cache. Immutable after construction apart from the
 * injected `random`, so it is safe to share; every call that jitters draws one random number.
 */
export class RefreshSchedule {
  /** The longest early-expiry margin (see `usableUntil`). */
  readonly earlyExpiryMs: number;
  readonly #refreshAheadRatio: number | undefined;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;

  /** Applies the defaults; throws `RangeError` for an option out of range. */
  constructor(options: RefreshScheduleOptions) {
    this.earlyExpiryMs = options.earlyExpiryMs ?? 10_000;
    this.#refreshAheadRatio = options.refreshAheadRatio;
    this.#baseMs = options.backoff?.baseMs ?? 1000;
    this.#maxMs = options.backoff?.maxMs ?? 60_000;
    this.#random = options.random ?? Math.random;
    if (!(this.earlyExpiryMs >= 0)) throw new RangeError('earlyExpiryMs must be zero or more.');
    const ratio = this.#refreshAheadRatio;
    if (ratio !== undefined && !(ratio > 0 && ratio < 1)) {
      throw new RangeError('refreshAheadRatio must be between 0 and 1 (exclusive).');
    }
    if (!(this.#baseMs > 0) || !(this.#maxMs >= this.#baseMs)) {
      throw new RangeError('backoff.baseMs must be positive and backoff.maxMs at least baseMs.');
    }
  }

  /**
   * Until when (epoch ms, exclusive) `token` may be handed out: `expiresAt` less `earlyExpiryMs`
   * or less a fifth of its lifetime (`expiresAt - obtainedAt`), whichever margin is shorter. Pure.
   */
  usableUntil(token: Token): number {
    const lifetime = Math.max(0, token.expiresAt - token.obtainedAt);
    return token.expiresAt - Math.min(this.earlyExpiryMs, lifetime * EARLY_EXPIRY_SHARE);
  }

  /**
   * When to refresh `token` obtained at `now` (epoch ms): at the ratio of the lifetime, at least
   * 30 s ahead (or a third of the lifetime ahead when that is shorter), before the token stops
   * being usable.
   */
  refreshAt(token: Token, now: number): number {
    const lifetime = token.expiresAt - now;
    const ratio = this.#refreshAheadRatio ?? 0.75 + 0.1 * this.#random();
    let at = now + lifetime * ratio;
    at = Math.min(at, token.expiresAt - Math.min(REFRESH_MARGIN_MS, lifetime * REFRESH_MARGIN_SHARE));
    return Math.floor(Math.min(at, this.usableUntil(token)));
  }

  /**
   * How long to wait (ms) before the next fetch after `consecutiveFailures` (1 or more) failed in a
   * row, the last with `error`: exponential backoff with equal jitter, capped; the cap for what
   * cannot succeed; never before `Retry-After` (itself capped at an hour).
   */
  retryDelay(error: Error, consecutiveFailures: number): number {
    let delay: number;
    if (isRetryable(error)) {
      const exponential = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(consecutiveFailures - 1, 40));
      delay = exponential / 2 + (this.#random() * exponential) / 2;
    } else {
      delay = this.#maxMs;
    }
    const retryAfter = error instanceof TokenEndpointError ? error.retryAfterMs : undefined;
    if (retryAfter !== undefined && retryAfter > delay) delay = Math.min(retryAfter, MAX_RETRY_AFTER_MS);
    return Math.ceil(delay);
  }
}

/** Whether trying again may help: not for answers marked non-retryable, nor for a broken key. */
function isRetryable(error: Error): boolean {
  if (error instanceof TokenEndpointError) return error.retryable;
  if (error instanceof ProxyError) return error.code !== 'key_invalid' && error.code !== 'config_invalid';
  return true;
}
