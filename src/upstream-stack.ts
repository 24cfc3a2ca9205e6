/**
 * Builds the token path for one upstream: key -> client assertion -> token endpoint client ->
 * token cache, plus the keep-alive agent the proxy uses towards it. The one place that knows
 * how the parts fit together; `serve`, `token`, `check` and `demo` all use it.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { privateKeyJwt } from './assertion.js';
import type { Clock } from './clock.js';
import type { UpstreamConfig } from './config-types.js';
import { KeySource } from './key-source.js';
import type { Logger } from './logger.js';
import { TokenEndpointClient } from './token-endpoint.js';
import { CachingTokenSource } from './token-source.js';
import type { TokenSourceObserver } from './token-source.js';

/** Everything that serves one upstream. `close()` stops timers, watchers and sockets. */
export interface UpstreamStack {
  readonly upstream: UpstreamConfig;
  readonly keys: KeySource;
  readonly endpoint: TokenEndpointClient;
  readonly tokens: CachingTokenSource;
  /** Keep-alive agent for proxied requests, trusting the system CAs plus `caFile`. */
  readonly agent: HttpAgent | HttpsAgent;
  close(): void;
}

/** Options shared by every upstream stack. */
export interface StackOptions {
  logger: Logger;
  clock: Clock;
  observer?: TokenSourceObserver;
  /** Maximum idle sockets kept per upstream (default 256). */
  maxFreeSockets?: number;
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
    origin: upstream.privateKeyFile ?? 'LOGICNETS_PRIVATE_KEY',
    logger,
  });
  const ca = readCa(upstream);
  const clientAuth = privateKeyJwt(keys, {
    issuer: upstream.clientIssuer,
    subject: upstream.clientId,
    audience: upstream.tokenAudience,
    ttlSeconds: upstream.assertionTtl,
    keyId: upstream.keyId,
  }, options.clock);
  const endpoint = new TokenEndpointClient({
    tokenUrl: upstream.tokenUrl,
    method: upstream.tokenMethod,
    scope: upstream.tokenScope,
    clientAuth,
    clock: options.clock,
    logger,
    timeoutMs: upstream.tokenTimeout * 1000,
    ca,
    defaultLifetimeSeconds: upstream.tokenDefaultLifetime,
  });
  const tokens = new CachingTokenSource({
    name: upstream.name,
    fetch: (signal) => endpoint.fetchToken(signal),
    clock: options.clock,
    // Not the child: the cache puts `upstream` on its lines itself (twice would repeat the JSON key).
    logger: options.logger,
    observer: options.observer,
  });
  const agentOptions = { keepAlive: true, maxFreeSockets: options.maxFreeSockets ?? 256, scheduling: 'lifo' as const };
  const agent = upstream.url.startsWith('https:')
    ? new HttpsAgent({ ...agentOptions, ca: ca === undefined ? undefined : [...rootCertificates, ca] })
    : new HttpAgent(agentOptions);
  return {
    upstream,
    keys,
    endpoint,
    tokens,
    agent,
    close() {
      tokens.close();
      keys.close();
      endpoint.close();
      agent.destroy();
    },
  };
}
