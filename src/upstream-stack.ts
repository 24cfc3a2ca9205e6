/**
 * Builds the token path for one upstream: key -> client assertion -> token endpoint client ->
 * token cache, plus the keep-alive agent the proxy uses towards it. Both the token endpoint and the
 * upstream are reached directly or through the egress proxy the configuration chose, with TLS
 * from one `TlsSource` (extra CA, client certificate; re-read when the files change). The one
 * place that knows how the parts fit together; `serve`, `token`, `check` and `demo` all use it.
 */
import { readFileSync } from 'node:fs';
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { privateKeyJwt } from './token/assertion.js';
import type { Clock } from './lib/clock.js';
import type { EgressRoute, UpstreamConfig } from './config/types.js';
import { ConfigError } from './lib/errors.js';
import { KeySource } from './token/key-source.js';
import type { Logger } from './lib/logger.js';
import { createOutboundAgent, IDLE_CONNECTION_TIMEOUT_MS } from './lib/outbound-agent.js';
import { fixedTlsContext, TlsSource } from './lib/tls-source.js';
import { trustedSecureContext } from './lib/tls-trust.js';
import { TokenEndpointClient } from './token/endpoint.js';
import { CachingTokenSource } from './token/cache.js';
import type { TokenSourceObserver } from './token/cache.js';

export { IDLE_CONNECTION_TIMEOUT_MS };

/** The route of a configuration built without `loadConfig` (no egress decided): direct. */
const DIRECT: EgressRoute = { proxyUrl: undefined, description: 'direct' };

/** Everything that serves one upstream. `close()` stops timers, watchers and sockets. */
export interface UpstreamStack {
  readonly upstream: UpstreamConfig;
  readonly keys: KeySource;
  readonly endpoint: TokenEndpointClient;
  readonly tokens: CachingTokenSource;
  /** The TLS material in force (extra CA, client certificate); `onChange` tells of a reload. */
  readonly tls: TlsSource;
  /** Keep-alive agent for proxied requests: egress proxy or direct, TLS from `tls`. */
  readonly agent: HttpAgent | HttpsAgent;
  /** The same without pooling (every request a new connection): for a resend after a stale keep-alive reset. */
  readonly freshAgent: HttpAgent | HttpsAgent;
  close(): void;
}

/** Options shared by every upstream stack. */
export interface StackOptions {
  logger: Logger;
  clock: Clock;
  observer?: TokenSourceObserver;
  /** Least time between two forced token refreshes after a 401, in ms (default 30 000). */
  forcedRefreshFloorMs?: number;
  /** Maximum idle sockets kept per upstream (default 256). */
  maxFreeSockets?: number;
}

/** Options of `createUpstreamAgent`. */
export interface UpstreamAgentOptions {
  /** Maximum idle connections kept (default 256). */
  readonly maxFreeSockets?: number;
  /** Idle time after which a pooled connection is closed (default `IDLE_CONNECTION_TIMEOUT_MS`). */
  readonly idleTimeoutMs?: number;
  /** `false`: no pooling, every request gets a new connection (default true). */
  readonly pooled?: boolean;
}

/**
 * A direct keep-alive agent for proxied requests to `url`, trusting the system CAs plus `ca`
 * (for tests and tools that need no egress proxy or client certificate); see `createOutboundAgent`.
 */
export function createUpstreamAgent(url: string, ca: string | undefined, options: UpstreamAgentOptions = {}): HttpAgent | HttpsAgent {
  return createOutboundAgent({
    protocol: url.startsWith('https:') ? 'https:' : 'http:',
    tls: fixedTlsContext(trustedSecureContext(ca)),
    ...options,
  });
}

/** Reads the extra CA file of an upstream, if any. */
export function readCa(upstream: UpstreamConfig): string | undefined {
  return upstream.caFile === undefined ? undefined : readFileSync(upstream.caFile, 'utf8');
}

/**
 * Opens the key (throws `KeyError` when it is unusable) and wires the token path. The token cache
 * is not started: call `tokens.start()` to fetch at once and refresh in the background.
 */
export async function createUpstreamStack(upstream: UpstreamConfig, options: StackOptions): Promise<UpstreamStack> {
  const logger = options.logger.child({ upstream: upstream.name });
  const keys = await KeySource.open({
    file: upstream.privateKeyFile,
    inline: upstream.privateKey,
    origin: upstream.privateKeyFile ?? upstream.settingName?.('privateKey') ?? 'the inline private key',
    logger,
  });
  const ca = readCa(upstream);
  let tls: TlsSource;
  try {
    tls = await TlsSource.open({
      caFile: upstream.caFile, clientCertFile: upstream.clientCertFile, clientKeyFile: upstream.clientKeyFile,
    }, { logger });
  } catch (error) {
    keys.close();
    const names = ['caFile', 'clientCertFile', 'clientKeyFile'].map((key) => upstream.settingName?.(key) ?? key).join(', ');
    throw new ConfigError([`the TLS files of upstream ${upstream.name} (${names}): ${(error as Error).message}`]);
  }
  const egress = upstream.egress ?? { api: DIRECT, token: DIRECT };
  for (const warning of new Set([egress.api.warning, egress.token.warning])) {
    if (warning !== undefined) logger.warn(warning);
  }
  logger.info({ api: egress.api.description, tokenEndpoint: egress.token.description,
    clientCertificate: tls.clientCertificate ?? 'none' }, 'outbound connections');
  // An https:// proxy's own certificate is checked against the system CAs plus caFile, never with the client certificate.
  const proxyTrust = trustedSecureContext(ca);
  const agentFor = (url: string, route: EgressRoute, pooled: boolean, maxFreeSockets?: number): HttpAgent => createOutboundAgent({
    protocol: url.startsWith('https:') ? 'https:' : 'http:',
    tls,
    proxy: route.proxyUrl === undefined ? undefined : new URL(route.proxyUrl),
    proxyTrust,
    pooled,
    maxFreeSockets,
  });
  const clientAuth = privateKeyJwt(keys, {
    issuer: upstream.clientIssuer,
    subject: upstream.clientId,
    audience: upstream.tokenAudience,
    ttlSeconds: upstream.assertionTtl,
    keyId: upstream.keyId,
    type: upstream.assertionType,
  }, options.clock);
  const endpoint = new TokenEndpointClient({
    tokenUrl: upstream.tokenUrl,
    method: upstream.tokenMethod,
    scope: upstream.tokenScope,
    extraParams: upstream.tokenParams,
    clientAuth,
    clock: options.clock,
    logger,
    timeoutMs: upstream.tokenTimeout * 1000,
    agent: agentFor(upstream.tokenUrl, egress.token, true),
    defaultLifetimeSeconds: upstream.tokenDefaultLifetime,
    settingNames: upstream.settingName,
  });
  const tokens = new CachingTokenSource({
    name: upstream.name,
    fetch: (signal) => endpoint.fetchToken(signal),
    clock: options.clock,
    // Not the child: the cache puts `upstream` on its lines itself (twice would repeat the JSON key).
    logger: options.logger,
    observer: options.observer,
    // Time limits follow LOGICNETS_TOKEN_TIMEOUT: a caller waits for one token request (plus a
    // little for the stale-connection retry), and the backstop for a fetch that never settles
    // lies beyond it, so the endpoint client's own timeout is what an operator sees.
    maxWaitMs: upstream.tokenTimeout * 1000 + 1000,
    fetchTimeoutMs: upstream.tokenTimeout * 2000 + 1000,
    forcedRefreshFloorMs: options.forcedRefreshFloorMs,
  });
  // A new key can end an invalid_client outage: the cache tries again at once instead of waiting.
  const stopListening = keys.onReload(() => tokens.credentialsChanged('private key'));
  const agent = agentFor(upstream.url, egress.api, true, options.maxFreeSockets);
  const freshAgent = agentFor(upstream.url, egress.api, false);
  // A reloaded client certificate or CA may fix what made token requests fail (an expired
  // certificate, an untrusted server): the cache tries again at once; new connections use it.
  const stopListeningTls = tls.onChange(() => tokens.credentialsChanged('TLS files'));
  return {
    upstream,
    keys,
    endpoint,
    tokens,
    tls,
    agent,
    freshAgent,
    close() {
      stopListening();
      stopListeningTls();
      tokens.close();
      keys.close();
      tls.close();
      endpoint.close();
      agent.destroy();
      freshAgent.destroy();
    },
  };
}
