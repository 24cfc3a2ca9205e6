/**
 * The sidecar's Prometheus metrics (prom-client), kept in a registry of their own so that two
 * instances (tests, or a library user with its own metrics) never collide in the global one.
 * Label values are upstream names from the configuration, HTTP status codes and the fixed set of
 * token failure reasons, so the number of series stays bounded. The exposition passes
 * `promtool check metrics` (test/unit/lib/metrics.test.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Histogram buckets for request durations, in seconds: 1 ms to 60 s (the default upstream timeout). */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60,
];

/**
 * Why a token request failed, as the `reason` label of `logicnets_proxy_token_request_failures_total`:
 * the RFC 6749 errors an operator acts on, then classes of transport and answer trouble.
 */
export const TOKEN_FAILURE_REASONS = [
  'invalid_client', 'invalid_grant', 'unauthorized_client', 'invalid_scope', 'rejected', 'rate_limited',
  'server_error', 'unreachable', 'timeout', 'tls', 'invalid_response', 'key_invalid', 'other',
] as const;
/** One of `TOKEN_FAILURE_REASONS`. */
export type TokenFailureReason = (typeof TOKEN_FAILURE_REASONS)[number];

/** What the token gauges read at each scrape: the cache's state, asked for then (cheap, synchronous). */
export interface TokenGaugeSource {
  /** Whether a token that may be handed out now is cached. */
  readonly valid: boolean;
  /** Expiry of the cached token (epoch ms), if any. */
  readonly expiresAt: number | undefined;
}

/** prom-client default metrics that `promtool check metrics` refuses (gauges named `_total`): dropped. */
const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Options for `Metrics`. */
export interface MetricsOptions {
  /** Also collect prom-client's default process and Node.js metrics. Default `true`. */
  readonly collectDefault?: boolean;
  /** The `version` label of `logicnets_proxy_build_info`. Default `unknown`. */
  readonly version?: string;
}

type CounterChild = ReturnType<Counter<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

/** The label children of one upstream, created on first use and then reused on the hot path. */
interface UpstreamChildren {
  readonly duration: HistogramChild;
  readonly retries: CounterChild;
  readonly tokenSuccess: CounterChild;
  readonly tokenFailure: CounterChild;
  readonly forcedRefreshes: CounterChild;
  readonly byCode: Map<number, CounterChild>;
  readonly byReason: Map<TokenFailureReason, CounterChild>;
}

/**
 * The metrics of one sidecar:
 * - `logicnets_proxy_requests_total{upstream,code}`
 * - `logicnets_proxy_request_duration_seconds{upstream}` (histogram)
 * - `logicnets_proxy_token_requests_total{upstream,result}` (`success` | `failure`)
 * - `logicnets_proxy_token_request_failures_total{upstream,reason}` (`TOKEN_FAILURE_REASONS`)
 * - `logicnets_proxy_token_valid{upstream}` (1 while a usable token is cached, else 0)
 * - `logicnets_proxy_token_expiry_timestamp_seconds{upstream}` (0 while no token is cached)
 * - `logicnets_proxy_token_forced_refreshes_total{upstream}` (a 401 dropped the token)
 * - `logicnets_proxy_upstream_retries_total{upstream}`
 * - `logicnets_proxy_build_info{version,node}` (always 1)
 * plus, unless disabled, prom-client's default process metrics (without the `nodejs_active_*_total`
 * gauges, whose names promtool refuses). The two token gauges read each upstream's state at scrape
 * time (`trackTokens`), so they exist from start-up and never go stale.
 *
 * The recording methods are synchronous and cheap (two map look-ups after the first call for an
 * upstream and code); they may be called from any request handler at any time. `render()` may run
 * concurrently with them.
 */
export class Metrics {
  /** The registry holding every metric of this instance (never prom-client's global registry). */
  readonly registry: Registry;
  readonly #requests: Counter<'upstream' | 'code'>;
  readonly #duration: Histogram<'upstream'>;
  readonly #tokenRequests: Counter<'upstream' | 'result'>;
  readonly #tokenFailures: Counter<'upstream' | 'reason'>;
  readonly #forcedRefreshes: Counter<'upstream'>;
  readonly #retries: Counter<'upstream'>;
  readonly #children = new Map<string, UpstreamChildren>();
  readonly #tokenSources = new Map<string, () => TokenGaugeSource>();

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.#requests = new Counter({
      name: 'logicnets_proxy_requests_total',
      help: 'Requests handled by the proxy, by upstream and HTTP status code sent to the client.',
      labelNames: ['upstream', 'code'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'logicnets_proxy_request_duration_seconds',
      help: 'Time from receiving a request to finishing its response, in seconds.',
      labelNames: ['upstream'],
      buckets: [...REQUEST_DURATION_BUCKETS],
      registers,
    });
    this.#tokenRequests = new Counter({
      name: 'logicnets_proxy_token_requests_total',
      help: 'Requests to the token endpoint, by upstream and result (success or failure).',
      labelNames: ['upstream', 'result'],
      registers,
    });
    this.#tokenFailures = new Counter({
      name: 'logicnets_proxy_token_request_failures_total',
      help: 'Token requests that gave no token, by upstream and reason (an RFC 6749 error or a class of transport or answer trouble).',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.#forcedRefreshes = new Counter({
      name: 'logicnets_proxy_token_forced_refreshes_total',
      help: 'Cached access tokens dropped because an upstream answered 401 (forced refreshes; at most one per floor).',
      labelNames: ['upstream'],
      registers,
    });
    const sources = this.#tokenSources;
    new Gauge({
      name: 'logicnets_proxy_token_valid',
      help: '1 while the upstream has a cached access token that may be handed out, else 0.',
      labelNames: ['upstream'],
      registers,
      collect() {
        for (const [upstream, read] of sources) this.labels(upstream).set(safeRead(read).valid ? 1 : 0);
      },
    });
    new Gauge({
      name: 'logicnets_proxy_token_expiry_timestamp_seconds',
      help: 'When the cached access token expires, as a Unix timestamp in seconds; 0 while none is cached.',
      labelNames: ['upstream'],
      registers,
      collect() {
        for (const [upstream, read] of sources) {
          const expiresAt = safeRead(read).expiresAt;
          this.labels(upstream).set(expiresAt !== undefined && Number.isFinite(expiresAt) ? expiresAt / 1000 : 0);
        }
      },
    });
    new Gauge({
      name: 'logicnets_proxy_build_info',
      help: 'Always 1; the labels say which version of the sidecar runs on which Node.js.',
      labelNames: ['version', 'node'],
      registers,
    }).labels(options.version ?? 'unknown', process.versions.node).set(1);
    this.#retries = new Counter({
      name: 'logicnets_proxy_upstream_retries_total',
      help: 'Requests resent to the upstream: with a fresh token after a 401, or on a new connection after a reused one was reset.',
      labelNames: ['upstream'],
      registers,
    });
    if (options.collectDefault ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    }
  }

  /**
   * Makes the token gauges of `upstream` read `read()` at every scrape, from now on (so they are
   * present from start-up). `read` must be cheap and synchronous; if it throws, the upstream reads
   * as having no token.
   */
  trackTokens(upstream: string, read: () => TokenGaugeSource): void {
    this.#tokenSources.set(upstream, read);
    const children = this.#for(upstream);
    // Counters at 0 from the start, so rate() and alerts see the series before the first event.
    children.tokenSuccess.inc(0);
    children.tokenFailure.inc(0);
    children.forcedRefreshes.inc(0);
  }

  /** Records one finished proxied request: its status code and duration in seconds. */
  requestFinished(upstream: string, code: number, seconds: number): void {
    const children = this.#for(upstream);
    let counter = children.byCode.get(code);
    if (counter === undefined) {
      counter = this.#requests.labels(upstream, String(code));
      children.byCode.set(code, counter);
    }
    counter.inc();
    children.duration.observe(seconds);
  }

  /** Records that a request was resent to `upstream` (after a 401 with a fresh token, or after a reset on a reused connection). */
  upstreamRetry(upstream: string): void {
    this.#for(upstream).retries.inc();
  }

  /** Records one call to the token endpoint of `upstream` that gave a token. */
  tokenSucceeded(upstream: string): void {
    this.#for(upstream).tokenSuccess.inc();
  }

  /** Records one call to the token endpoint of `upstream` that gave no token, and why. */
  tokenFailed(upstream: string, reason: TokenFailureReason): void {
    const children = this.#for(upstream);
    children.tokenFailure.inc();
    let counter = children.byReason.get(reason);
    if (counter === undefined) {
      counter = this.#tokenFailures.labels(upstream, TOKEN_FAILURE_REASONS.includes(reason) ? reason : 'other');
      children.byReason.set(reason, counter);
    }
    counter.inc();
  }

  /** Records that a 401 from `upstream` dropped its cached token (a forced refresh). */
  tokenForcedRefresh(upstream: string): void {
    this.#for(upstream).forcedRefreshes.inc();
  }

  /** The Prometheus text exposition of every metric, with the content type to send it with. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #for(upstream: string): UpstreamChildren {
    let children = this.#children.get(upstream);
    if (children === undefined) {
      children = {
        duration: this.#duration.labels(upstream),
        retries: this.#retries.labels(upstream),
        tokenSuccess: this.#tokenRequests.labels(upstream, 'success'),
        tokenFailure: this.#tokenRequests.labels(upstream, 'failure'),
        forcedRefreshes: this.#forcedRefreshes.labels(upstream),
        byCode: new Map(),
        byReason: new Map(),
      };
      this.#children.set(upstream, children);
    }
    return children;
  }
}

function safeRead(read: () => TokenGaugeSource): TokenGaugeSource {
  try {
    return read();
  } catch {
    return { valid: false, expiresAt: undefined };
  }
}
