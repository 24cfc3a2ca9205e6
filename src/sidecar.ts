/**
 * The wiring of `serve`: config -> per-upstream token stacks -> proxy listener + admin listener,
 * and the graceful shutdown on signals. Only wires; the behaviour lives in the parts.
 */
import { readFileSync } from 'node:fs';
import { startAdminServer } from './admin/server.js';
import type { AdminServer } from './admin/server.js';
import type { Clock } from './lib/clock.js';
import type { Config } from './config/types.js';
import { installSignalHandlers, Lifecycle } from './lifecycle.js';
import type { Logger } from './lib/logger.js';
import { Metrics } from './lib/metrics.js';
import { tokenFailureReason } from './token/failure-reason.js';
import { createProxyServer } from './proxy/server.js';
import type { ProxyServer } from './proxy/server.js';
import { createUpstreamStack } from './upstream-stack.js';
import type { UpstreamStack } from './upstream-stack.js';

/** A running sidecar. `shutdown()` drains as on SIGTERM and resolves when everything is closed. */
export interface Sidecar {
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly stacks: readonly UpstreamStack[];
  readonly metrics: Metrics;
  readonly proxy: ProxyServer;
  readonly admin: AdminServer;
  shutdown(reason: string): Promise<void>;
}

/** What `startSidecar` needs besides the config. */
export interface SidecarOptions {
  logger: Logger;
  clock: Clock;
  /** Called once a shutdown asked for over the admin port (`POST /shutdown`) has finished. */
  onExitRequest?: () => void;
  /** Collect the default process metrics (default true). */
  processMetrics?: boolean;
  /** The `version` label of `logicnets_proxy_build_info` (default: package.json's version). */
  version?: string;
}

/** The package's version, for `logicnets_proxy_build_info`; `unknown` when package.json cannot be read. */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Opens every upstream's key (a bad key stops start-up with a `KeyError`), starts the token caches
 * (first fetch in the background), then the proxy and admin listeners.
 */
export async function startSidecar(config: Config, options: SidecarOptions): Promise<Sidecar> {
  const { logger, clock } = options;
  const metrics = new Metrics({ collectDefault: options.processMetrics ?? true, version: options.version ?? packageVersion() });
  const stacks: UpstreamStack[] = [];
  try {
    for (const upstream of config.upstreams) {
      stacks.push(await createUpstreamStack(upstream, {
        logger,
        clock,
        forcedRefreshFloorMs: config.tokenForcedRefreshFloor * 1000,
        observer: {
          fetched: () => metrics.tokenSucceeded(upstream.name),
          failed: (error) => metrics.tokenFailed(upstream.name, tokenFailureReason(error)),
          forcedRefresh: () => metrics.tokenForcedRefresh(upstream.name),
        },
      }));
      const { tokens } = stacks[stacks.length - 1] as UpstreamStack;
      metrics.trackTokens(upstream.name, () => {
        const state = tokens.state();
        return { valid: state.valid, expiresAt: state.expiresAt };
      });
    }
  } catch (error) {
    for (const stack of stacks) stack.close();
    throw error;
  }
  for (const stack of stacks) stack.tokens.start();

  const proxy = createProxyServer({
    config,
    routes: stacks.map((s) => ({ upstream: s.upstream, tokens: s.tokens, agent: s.agent, freshAgent: s.freshAgent })),
    logger,
    metrics,
    clock,
    settingNames: config.settingName,
  });
  const lifecycle = new Lifecycle({
    clock,
    logger,
    shutdownDelayMs: config.shutdownDelay * 1000,
    shutdownTimeoutMs: config.shutdownTimeout * 1000,
  });
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      logger.info({ reason }, 'shutting down');
      await lifecycle.shutdown([{ listener: proxy }], reason);
      for (const stack of stacks) stack.close();
      await admin.close();
      logger.info('stopped');
    })();
    return shuttingDown;
  };

  const closeAll = async () => {
    for (const stack of stacks) stack.close();
    await proxy.close();
  };
  let proxyPort: number;
  let admin: AdminServer;
  try {
    proxyPort = await proxy.listen(config.listenPort, config.listenHost);
    admin = await startAdminServer({
      host: config.adminHost,
      port: config.adminPort,
      logger,
      metrics,
      upstreams: stacks.map((s) => ({ name: s.upstream.name, url: s.upstream.url, tokens: s.tokens })),
      readinessRequireToken: config.readinessRequireToken,
      isDraining: () => lifecycle.draining,
      isListening: () => proxy.server.listening,
      onShutdownRequest: () => {
        void shutdown('POST /shutdown').then(() => options.onExitRequest?.());
      },
      clock,
      allowRemote: config.adminAllowRemote,
      shutdownTokenFile: config.adminShutdownTokenFile,
      settingNames: config.settingName,
    });
  } catch (error) {
    // A listener could not start (port taken, address unavailable): close what was opened.
    await closeAll();
    throw error;
  }
  logger.info({
    proxy: `${config.listenHost}:${proxyPort}`,
    admin: `${config.adminHost}:${admin.port}`,
    upstreams: stacks.map((s) => ({ name: s.upstream.name, url: s.upstream.url, tokenMethod: s.upstream.tokenMethod })),
  }, 'listening');
  return { proxyPort, adminPort: admin.port, stacks, metrics, proxy, admin, shutdown };
}

/** Runs the sidecar until SIGTERM, SIGINT or `POST /shutdown`, then drains and resolves. */
export async function serve(config: Config, options: Omit<SidecarOptions, 'onExitRequest'>): Promise<void> {
  let done!: () => void;
  const finished = new Promise<void>((resolve) => { done = resolve; });
  const sidecar = await startSidecar(config, { ...options, onExitRequest: () => done() });
  let signals = 0;
  const uninstall = installSignalHandlers((signal) => {
    signals += 1;
    if (signals > 1) {
      // A second Ctrl+C or SIGTERM: the operator does not want to wait for the drain.
      options.logger.warn({ signal }, 'second signal: exiting without waiting for in-flight requests');
      sidecar.proxy.flushLogs();
      setTimeout(() => process.exit(1), 500);
      options.logger.flush(() => process.exit(1));
      return;
    }
    void sidecar.shutdown(signal).then(() => done());
  });
  await finished;
  uninstall();
}
