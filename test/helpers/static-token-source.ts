import { TokenUnavailableError } from '../../src/lib/errors.js';
import type { CachedTokenSource, Token, TokenState } from '../../src/token/token.js';

/** Options of `StaticTokenSource`. */
export interface StaticTokenSourceOptions {
  /** Whether `peek()` returns the cached token (default true); false makes every request await `token()`. */
  peekable?: boolean;
  /** `invalidate()` of the cached token keeps it and answers false (the real cache's forced-refresh floor). */
  keepOnInvalidate?: boolean;
  /** Token lifetime in ms from `Date.now()` (default one hour). */
  lifetimeMs?: number;
}

/**
 * A real, tiny `CachedTokenSource` for proxy tests: hands out `tokens[0]`, and after
 * `invalidate()` of the current one, the next in the list (rotating). Counts every call so tests
 * can assert that a request was never given a token. `fail(error)` makes `token()` reject (and
 * `peek()` return nothing) until `fail(undefined)`.
 */
export class StaticTokenSource implements CachedTokenSource {
  tokenCalls = 0;
  peekCalls = 0;
  readonly invalidations: string[] = [];
  readonly #tokens: readonly string[];
  readonly #options: StaticTokenSourceOptions;
  #index = 0;
  #cached: Token | undefined;
  #failure: Error | undefined;

  constructor(tokens: string | readonly string[], options: StaticTokenSourceOptions = {}) {
    this.#tokens = typeof tokens === 'string' ? [tokens] : tokens;
    this.#options = options;
  }

  /** The access token handed out now. */
  get current(): string {
    return this.#tokens[this.#index % this.#tokens.length] as string;
  }

  fail(error: Error | undefined): void {
    this.#failure = error;
    if (error !== undefined) this.#cached = undefined;
  }

  peek(): Token | undefined {
    this.peekCalls++;
    return this.#options.peekable === false || this.#failure !== undefined ? undefined : this.#cached;
  }

  token(signal?: AbortSignal): Promise<Token> {
    this.tokenCalls++;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    this.#cached ??= {
      accessToken: this.current,
      tokenType: 'Bearer',
      expiresAt: Date.now() + (this.#options.lifetimeMs ?? 3_600_000),
      obtainedAt: Date.now(),
    };
    return Promise.resolve(this.#cached);
  }

  /** Answers `keep` (default: nothing kept) for a token still cached: false keeps it, as the real cache's refresh floor does. */
  invalidate(accessToken: string): boolean {
    this.invalidations.push(accessToken);
    if (this.#cached?.accessToken !== accessToken) return true;
    if (this.#options.keepOnInvalidate === true) return false;
    this.#cached = undefined;
    this.#index++;
    return true;
  }

  state(): TokenState {
    return {
      valid: this.#cached !== undefined,
      expiresAt: this.#cached?.expiresAt,
      lastRefreshAt: this.#cached?.obtainedAt,
      nextRefreshAt: undefined,
      lastError: this.#failure === undefined ? undefined : { code: 'token_unavailable', message: this.#failure.message, at: Date.now() },
      consecutiveFailures: this.#failure === undefined ? 0 : 1,
    };
  }
}

/** A `TokenUnavailableError` as the real cache throws it. */
export function unavailable(retryAfterSeconds = 7): TokenUnavailableError {
  return new TokenUnavailableError('No valid access token is available for the upstream test; the token endpoint is failing.', { retryAfterSeconds });
}
