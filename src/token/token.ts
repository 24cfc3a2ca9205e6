/**
 * The token types shared by the token endpoint client, the cache and the proxy
 * (golang/oauth2 `token.go`, `oauth2.go`).
 */

/** An access token as the token endpoint gave it. Treat `accessToken` as a secret: never log it. */
export interface Token {
  readonly accessToken: string;
  /** Always `Bearer` (the endpoint client refuses other types). */
  readonly tokenType: 'Bearer';
  /** When the token stops being valid, in epoch milliseconds. */
  readonly expiresAt: number;
  /** When the token was received, in epoch milliseconds. */
  readonly obtainedAt: number;
  /** The granted scope, when the server said it. */
  readonly scope?: string;
}

/**
 * Something that hands out access tokens. Implementations must be safe for concurrent use: any
 * number of callers may await `token()` at once. `signal` lets a caller stop waiting; it does not
 * cancel a fetch other callers share.
 */
export interface TokenSource {
  token(signal?: AbortSignal): Promise<Token>;
}

/**
 * A client authentication method (RFC 6749 2.3): adds its parameters to the token request body or
 * query and its headers. Called once per token request. (panva/oauth4webapi `ClientAuth`.)
 */
export type ClientAuth = (params: URLSearchParams, headers: Record<string, string>) => Promise<void>;

/** What the cache knows about its token, for `/status` and `/readyz`. Never holds the token itself. */
export interface TokenState {
  /** Whether a token that may be handed out now is cached. */
  readonly valid: boolean;
  /** Expiry of the cached token (epoch ms), if any. */
  readonly expiresAt: number | undefined;
  /** When the last successful fetch finished (epoch ms), if any. */
  readonly lastRefreshAt: number | undefined;
  /** When the next background refresh or retry is due (epoch ms), if one is scheduled. */
  readonly nextRefreshAt: number | undefined;
  /** The last failure, cleared by the next success. `message` is safe to show an operator. */
  readonly lastError: { readonly code: string; readonly message: string; readonly at: number } | undefined;
  /** Consecutive failed fetches since the last success. */
  readonly consecutiveFailures: number;
}

/**
 * A token source that caches: the proxy's view of the token cache. Safe for concurrent use.
 * - `peek()` returns the cached token synchronously when it may be handed out now (the hot path
 *   uses it to avoid awaiting a promise), else `undefined`.
 * - `invalidate(accessToken)` is called whenever an upstream answers 401 to a request sent with
 *   `accessToken`, whether or not that request can be resent. It drops the cached token only if it
 *   is still that one (so a late 401 for an old token never throws away a newer one), and at most
 *   once per forced-refresh floor. It returns `true` when a resend with a new token is worthwhile
 *   (the token was dropped now and a fetch begins, or the cache holds or is fetching a different
 *   token), `false` when the floor keeps the token (or no other token can be had now): then the
 *   caller passes the 401 to its client. Synchronous, never throws.
 */
export interface CachedTokenSource extends TokenSource {
  peek(): Token | undefined;
  invalidate(accessToken: string): boolean;
  state(): TokenState;
}
