/**
 * The validated configuration model, as `loadConfig` (config/load.ts) returns it. Every default is
 * already applied: consumers never see a missing required value. Durations are in seconds (a
 * setting written as `500ms` or `1m` arrives here as 0.5 or 60), sizes in bytes.
 */
import type { LevelWithSilent } from 'pino';
import type { GlobalKey } from './schema.js';

/** One LogicNets installation (one company) and the server user the sidecar signs in as. */
export interface UpstreamConfig {
  /** Labels metrics and logs; unique. Defaults to the URL's host and company, e.g. `lua5.logicnets.local/logicnets`. */
  readonly name: string;
  /** Base URL including the company, without a trailing slash: `https://lua5.logicnets.local/logicnets`. */
  readonly url: string;
  /** The server user's client id: the assertion's `sub`. */
  readonly clientId: string;
  /** The assertion's `iss`; defaults to `clientId`. */
  readonly clientIssuer: string;
  /** Path of the private key (PEM PKCS#8, PEM PKCS#1 or JWK JSON). Exactly one of file and inline is set. */
  readonly privateKeyFile: string | undefined;
  /** The private key inline (PEM or JWK JSON). */
  readonly privateKey: string | undefined;
  /** Optional `kid` header of the assertion. */
  readonly keyId: string | undefined;
  /** Token endpoint; defaults to `${url}/oauth2token`. */
  readonly tokenUrl: string;
  /**
   * Names one of this upstream's settings (`tokenUrl`, `caFile`, ...) as the operator wrote it, for
   * messages: `tokenUrl (LOGICNETS_TOKEN_URL)` or `upstreams[1].tokenUrl (config file)`. Set by
   * the loader, which knows the source; lower layers use their own words without it.
   */
  readonly settingName?: (key: string) => string;
  /** The assertion's `aud`; defaults to `url`. */
  readonly tokenAudience: string;
  /** `GET` (query parameters, as LogicNets documents) or `POST` (form body, RFC 6749). */
  readonly tokenMethod: 'GET' | 'POST';
  /** Optional `scope` parameter. */
  readonly tokenScope: string | undefined;
  /** Assertion lifetime in seconds (1..3600). */
  readonly assertionTtl: number;
  /** Extra CA certificates (PEM file) trusted for the token endpoint and this upstream. */
  readonly caFile: string | undefined;
  /** Client certificate (PEM file) for mTLS; set together with `clientKeyFile` (`loadConfig` checks both). */
  readonly clientCertFile?: string | undefined;
  /** Private key (PEM file) of `clientCertFile`. */
  readonly clientKeyFile?: string | undefined;
  /**
   * How the API (`url`) and the token endpoint (`tokenUrl`) are reached: directly or through an
   * egress proxy. `loadConfig` always sets it; absent (a config built by hand) means direct.
   */
  readonly egress?: { readonly api: EgressRoute; readonly token: EgressRoute };
  /** Time limit of one token request, in seconds. */
  readonly tokenTimeout: number;
  /** Lifetime assumed for a token that has neither `expires_in` nor a JWT `exp`, in seconds. */
  readonly tokenDefaultLifetime: number;
  /** The assertion's `typ` header (`loadConfig` always sets it; absent means `JWT`). */
  readonly assertionType?: 'JWT' | 'client-authentication+jwt';
  /** Extra token request parameters, name and value, in order (`loadConfig` always sets it; absent means none). Secret: never log. */
  readonly tokenParams?: readonly (readonly [string, string])[];
}

/** How one destination is reached: directly, or through an egress proxy's CONNECT tunnel. */
export interface EgressRoute {
  /** The proxy URL, which may hold credentials (never log or show it), or undefined: direct. */
  readonly proxyUrl: string | undefined;
  /** For logs and `check`, never with credentials: `via http://***@proxy:3128 (https_proxy)` or `direct (...)`. */
  readonly description: string;
  /** Set when a proxy setting was ignored because it names the sidecar's own listener; log it as a warning. */
  readonly warning?: string;
}

/** The whole sidecar's configuration. */
export interface Config {
  readonly upstreams: readonly UpstreamConfig[];
  /**
   * Names one of the sidecar-wide settings (`upstreamTimeout`, `adminPort`, ...) as the operator
   * wrote it, for messages: `upstreamTimeout (UPSTREAM_TIMEOUT)` or `upstreamTimeout (config file)`.
   * Set by the loader, which knows the source; lower layers use their own words without it.
   */
  readonly settingName?: (key: GlobalKey) => string;
  readonly logLevel: LevelWithSilent;
  /** Proxy listener; defaults to 127.0.0.1:8080 so the sidecar is not an open proxy for the cluster. */
  readonly listenHost: string;
  readonly listenPort: number;
  /** A `listenHost` that is not loopback was explicitly allowed (the sidecar warns at start). */
  readonly allowRemoteClients: boolean;
  /** Admin listener (probes, metrics, status); defaults to 0.0.0.0:9090. */
  readonly adminHost: string;
  readonly adminPort: number;
  /** `/status` and `POST /shutdown` also answer clients that are not on loopback. */
  readonly adminAllowRemote: boolean;
  /** Where the sidecar writes the token `POST /shutdown` requires; `undefined`: shutdown over the admin port is off. */
  readonly adminShutdownTokenFile: string | undefined;
  /** Time limit for the upstream's response headers once the request is sent, in seconds. */
  readonly upstreamTimeout: number;
  /** Time a request or response body may stall in either direction, in seconds. */
  readonly idleTimeout: number;
  /** Time a client may take for its request header section (Node `headersTimeout`), in seconds. */
  readonly headersTimeout: number;
  /** Time a client may take for its whole request (Node `requestTimeout`), in seconds; 0: none. */
  readonly requestTimeout: number;
  /** Time an idle client connection is kept, in seconds. */
  readonly keepAliveTimeout: number;
  /** Most header fields a request may carry; more are refused (431). */
  readonly maxHeaderCount: number;
  /** Largest request header section in bytes (Node `maxHeaderSize`). */
  readonly maxHeaderSize: number;
  /** Most client connections open at once. */
  readonly maxConnections: number;
  /** Seconds to keep serving after SIGTERM before closing the listener. */
  readonly shutdownDelay: number;
  /** Seconds in-flight requests get to finish once the listener is closed. */
  readonly shutdownTimeout: number;
  /** `/readyz` also requires a valid token for every upstream. */
  readonly readinessRequireToken: boolean;
  /** Add `X-Forwarded-For/-Proto/-Host` to forwarded requests. */
  readonly xForwarded: boolean;
  /** Largest request body (bytes) kept while sending so a request can be resent after a 401. */
  readonly retryBodyLimit: number;
  /** Most bytes of request bodies kept for resends at once, over all requests. */
  readonly retryBodyBudget: number;
  /** Least time between two forced token refreshes (after a 401) of one upstream, in seconds. */
  readonly tokenForcedRefreshFloor: number;
}
