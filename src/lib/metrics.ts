/**
 * The sidecar's Prometheus metrics (prom-client), kept in a registry of their own so that two
 * instances (tests, or a library user with its own metrics) never collide in the global one.
 * Label values are upstream names from the configuration and HTTP status codes, so the number of
 * series stays bounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Histogram buckets for request durations, in seconds: 1 ms to 60 s (the default upstream timeout). */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60,
];

/** Options for `Metrics`. */
export interface MetricsOptions {
  /** Also collect prom-client's default process and Node.js metrics. Default `true`. */
  readonly collectDefault?: boolean;
}

type CounterChild = ReturnType<Counter<string>['labels']>;
type GaugeChild = ReturnType<Gauge<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

/** The label children of one upstream, created on first use and then reused on the hot path. */
interface UpstreamChildren {
  readonly duration: HistogramChild;
  readonly retries: CounterChild;
  readonly tokenSuccess: CounterChild;
  readonly tokenFailure: CounterChild;
  readonly tokenExpiry: GaugeChild;
  readonly byCode: Map<number, CounterChild>;
}

/**
 * The metrics of one sidecar:
 * - `logicnets_proxy_requests_total{upstream,code}`
 * - `logicnets_proxy_request_duration_seconds{upstream}` (histogram)
 * - `logicnets_proxy_token_requests_total{upstream,result}` (`success` | `failure`)
 * - `logicnets_proxy_token_expiry_timestamp_seconds{upstream}`
 * - `logicnets_proxy_upstream_retries_total{upstream}`
 * plus, unless disabled, prom-client's default process metrics.
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
  readonly #tokenExpiry: Gauge<'upstream'>;
  readonly #retries: Counter<'upstream'>;
  readonly #children = new Map<string, UpstreamChildren>();

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
    this.#tokenExpiry = new Gauge({
      name: 'logicnets_proxy_token_expiry_timestamp_seconds',
      help: 'When the cached access token expires, as a Unix timestamp in seconds.',
      labelNames: ['upstream'],
      registers,
    });
    this.#retries = new Counter({
      name: 'logicnets_proxy_upstream_retries_total',
      help: 'Requests resent to the upstream: with a fresh token after a 401, or on a new connection after a reused one was reset.',
      labelNames: ['upstream'],
      registers,
    });
    if (options.collectDefault ?? true) collectDefaultMetrics({ register: this.registry });
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

  /** Records one call to the token endpoint of `upstream` and whether it gave a token. */
  tokenRequest(upstream: string, result: 'success' | 'failure'): void {
    const children = this.#for(upstream);
    (result === 'success' ? children.tokenSuccess : children.tokenFailure).inc();
  }

  /** Records when the token now cached for `upstream` expires (epoch milliseconds). */
  tokenExpiry(upstream: string, expiresAtMs: number): void {
    this.#for(upstream).tokenExpiry.set(expiresAtMs / 1000);
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
        tokenExpiry: this.#tokenExpiry.labels(upstream),
        byCode: new Map(),
      };
      this.#children.set(upstream, children);
    }
    return children;
  }
}
