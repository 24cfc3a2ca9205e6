/**
 * The proxy listener's public contract: its options, the metrics it records, the server handle
 * it returns, the metrics label of unrouted requests and the proxy's own words for its settings.
 * Types and constants only, so the proxy's parts can share them without importing
 * proxy/server.ts (which re-exports them).
 */
import type http from 'node:http';
import type { Clock } from '../lib/clock.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../lib/logger.js';
import { ownTerms } from '../lib/setting-names.js';
import type { SettingNames } from '../lib/setting-names.js';
import type { Route } from './router.js';

/** What the proxy records per request; `Metrics` (lib/metrics.ts) fits. Calls must be cheap and synchronous. */
export interface ProxyMetrics {
  requestFinished(upstream: string, code: number, seconds: number): void;
  upstreamRetry(upstream: string): void;
}

/** Options of `createProxyServer`. */
export interface ProxyServerOptions {
  readonly config: Pick<Config, 'upstreamTimeout' | 'idleTimeout' | 'headersTimeout' | 'requestTimeout' | 'keepAliveTimeout'
    | 'maxHeaderCount' | 'maxHeaderSize' | 'maxConnections' | 'xForwarded' | 'retryBodyLimit' | 'retryBodyBudget'>;
  /** The upstreams; must not be ambiguous (the constructor throws a `ConfigError` otherwise). */
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  /** Measures request durations. */
  readonly clock: Clock;
  /**
   * Names the settings the proxy's messages point at, as the operator wrote them (the wiring
   * knows: `upstreamTimeout (UPSTREAM_TIMEOUT)`); default: the proxy's own words.
   */
  readonly settingNames?: SettingNames<ProxySetting>;
}

/** The settings the proxy's messages (to clients and in the log) point at. */
export type ProxySetting = 'upstreamTimeout' | 'maxConnections' | 'listenHost' | 'listenPort';

/** The proxy's own words for its settings, for callers that do not know where an option came from. */
export const PROXY_SETTING_WORDS: SettingNames<ProxySetting> = ownTerms({
  upstreamTimeout: 'the upstream timeout',
  maxConnections: 'the client connection limit',
  listenHost: 'the listen host',
  listenPort: 'the listen port',
});

/** A proxy listener. */
export interface ProxyServer {
  /** The underlying server (for the lifecycle: connection tracking, `closeAllConnections`). */
  readonly server: http.Server;
  /**
   * Listens on `host:port` (port 0: any free port); resolves with the bound port, or rejects with a
   * `ProxyError` (`config_invalid`) naming the address and the settings when it cannot.
   */
  listen(port: number, host: string): Promise<number>;
  /** Requests received whose response has not closed yet. */
  inFlight(): number;
  /** Bytes of request bodies kept for a resend now, and the most ever kept at once (never above `RETRY_BODY_BUDGET`). */
  retainedBodyBytes(): { reserved: number; peak: number };
  /**
   * Stops accepting connections, closes idle keep-alive connections (and each one as its last
   * response ends; responses whose head is not sent yet say `Connection: close`) and resolves once
   * every connection is gone. The proxy is the drain's only request tracker: the lifecycle calls
   * this and reads `inFlight()`. Does not cut requests in flight
   * (`server.closeAllConnections()` does) and does not destroy the routes' agents (their owner does).
   */
  close(): Promise<void>;
  /** Writes the request log lines queued in this event-loop turn now (before a hard exit). */
  flushLogs(): void;
}

/** The metrics label used for requests that matched no upstream. */
export const NO_UPSTREAM = 'none';
