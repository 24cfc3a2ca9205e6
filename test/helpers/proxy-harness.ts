import http from 'node:http';
import https from 'node:https';
import type { UpstreamConfig } from '../../src/config/types.js';
import { createProxyServer } from '../../src/proxy/server.js';
import type { ProxyMetrics, ProxyServer, ProxyServerOptions } from '../../src/proxy/server.js';
import { call } from './e2e-stack.js';
import type { CallOptions, Reply } from './e2e-stack.js';
import { ManualClock } from './manual-clock.js';
import { makeLogSink } from './log-sink.js';
import type { LogSink } from './log-sink.js';
import type { StaticTokenSource } from './static-token-source.js';

/** A full `UpstreamConfig` for `url`, with defaults for the fields the proxy does not read. */
export function upstreamConfig(name: string, url: string): UpstreamConfig {
  return {
    name, url, clientId: 'client', clientIssuer: 'client', privateKeyFile: undefined, privateKey: 'unused',
    keyId: undefined, tokenUrl: `${url}/oauth2token`, tokenAudience: url, tokenMethod: 'GET', tokenScope: undefined,
    assertionTtl: 60, caFile: undefined, tokenTimeout: 5, tokenDefaultLifetime: 300,
  };
}

/** The proxy's settings: the sidecar's defaults (src/config/schema.ts) except where `overrides` says. */
export function proxyConfig(overrides: Partial<ProxyServerOptions['config']> = {}): ProxyServerOptions['config'] {
  return {
    upstreamTimeout: 10, idleTimeout: 60, headersTimeout: 20, requestTimeout: 0, keepAliveTimeout: 5, maxHeaderCount: 200,
    maxHeaderSize: 16384, maxConnections: 1024, xForwarded: false, retryBodyLimit: 1024 * 1024, retryBodyBudget: 4 * 1024 * 1024,
    ...overrides,
  };
}

/** Records what the proxy reports. */
export class RecordingMetrics implements ProxyMetrics {
  readonly finished: { upstream: string; code: number; seconds: number }[] = [];
  readonly retries: string[] = [];
  requestFinished(upstream: string, code: number, seconds: number): void {
    this.finished.push({ upstream, code, seconds });
  }
  upstreamRetry(upstream: string): void {
    this.retries.push(upstream);
  }
}

/** One route of a harness: the upstream URL (with company) and its token source. */
export interface HarnessRoute {
  name: string;
  url: string;
  tokens: StaticTokenSource;
  /** CA to trust for an https URL. */
  ca?: string;
  /** The upstream agent to use instead of a plain keep-alive one (destroyed by `close()` too). */
  agent?: http.Agent;
}

/** A proxy under test on 127.0.0.1 with a trace-level log sink and recorded metrics. */
export interface Harness {
  readonly proxy: ProxyServer;
  readonly port: number;
  readonly sink: LogSink;
  readonly metrics: RecordingMetrics;
  readonly clock: ManualClock;
  close(): Promise<void>;
}

/** Starts a proxy for `routes` (each with its own keep-alive agent); `settingNames` as the wiring would pass them. */
export async function startHarness(
  routes: readonly HarnessRoute[],
  config: Partial<ProxyServerOptions['config']> = {},
  settingNames?: ProxyServerOptions['settingNames'],
): Promise<Harness> {
  const sink = makeLogSink('trace');
  const metrics = new RecordingMetrics();
  const clock = new ManualClock();
  const agentFor = (r: HarnessRoute, keepAlive: boolean) => (r.url.startsWith('https:')
    ? new https.Agent({ keepAlive, ca: r.ca })
    : new http.Agent({ keepAlive }));
  const agents = routes.map((r) => r.agent ?? agentFor(r, true));
  const freshAgents = routes.map((r) => agentFor(r, false));
  const proxy = createProxyServer({
    config: proxyConfig(config),
    routes: routes.map((r, i) => ({ upstream: upstreamConfig(r.name, r.url), tokens: r.tokens, agent: agents[i]!, freshAgent: freshAgents[i]! })),
    logger: sink.logger,
    metrics,
    clock,
    settingNames,
  });
  const port = await proxy.listen(0, '127.0.0.1');
  return {
    proxy, port, sink, metrics, clock,
    async close() {
      proxy.server.closeAllConnections();
      await proxy.close();
      for (const agent of [...agents, ...freshAgents]) agent.destroy();
    },
  };
}

/** A response read whole (tests only). */
/** A response read whole (the e2e helper's `Reply`). */
export type Answer = Reply;

/** Options of `send` (the e2e helper's `CallOptions`). */
export type SendOptions = CallOptions;

/** Sends one request to the proxy on its own connection; `target` is a path or an absolute URL. */
export function send(port: number, target: string, options: SendOptions = {}): Promise<Answer> {
  return call(port, target, options);
}
