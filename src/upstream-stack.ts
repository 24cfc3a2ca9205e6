/**
 * Builds the token path for one upstream: key -> client assertion -> token endpoint client ->
 * token cache, plus the keep-alive agent the proxy uses towards it. The one place that knows
 * how the parts fit together; `serve`, `token`, `check` and `demo` all use it.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { privateKeyJwt } from './token/assertion.js';
import type { Clock } from './lib/clock.js';
import type { UpstreamConfig } from './config/types.js';
import { KeySource } from './token/key-source.js';
import type { Logger } from './lib/logger.js';
import { trustedSecureContext } from './lib/tls-trust.js';
import { TokenEndpointClient } from './token/endpoint.js';
import { CachingTokenSource } from './token/cache.js';
import type { TokenSourceObserver } from './token/cache.js';

/** Everything that serves one upstream. `close()` stops timers, watchers and sockets. */
export interface UpstreamStack {
  readonly upstream: UpstreamConfig;
  readonly keys: KeySource;
  readonly endpoint: TokenEndpointClient;
  readonly tokens: CachingTokenSource;
  /** Keep-alive agent for proxied requests, trusting the system CAs plus `caFile`. */
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

/**
 * How long an idle pooled upstream connection is kept: shorter than common server keep-alive
 * timeouts (Node 5 s, nginx 75 s, IIS 120 s), so that the sidecar closes an idle connection before
 * the server does and rarely sends a request on one the server is closing. A shorter
 * `Keep-Alive: timeout=N` hint from the server wins (Node's agent reads it). It never applies to a
 * connection with a request in flight: `UPSTREAM_TIMEOUT` governs those.
 */
export const IDLE_CONNECTION_TIMEOUT_MS = 4000;

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
 * The keep-alive agent for proxied requests to `url`: an `https.Agent` trusting the system CAs plus
 * `ca` for `https:` URLs, else an `http.Agent`; LIFO reuse (the warmest connection first), idle
 * connections closed after `idleTimeoutMs`. Safe for any number of concurrent requests.
 */
export function createUpstreamAgent(url: string, ca: string | undefined, options: UpstreamAgentOptions = {}): HttpAgent | HttpsAgent {
  const pooled = options.pooled ?? true;
  const agentOptions = { keepAlive: pooled, maxFreeSockets: options.maxFreeSockets ?? 256, scheduling: 'lifo' as const };
  const agent = url.startsWith('https:')
    ? new HttpsAgent({ ...agentOptions, secureContext: trustedSecureContext(ca) })
    : new HttpAgent(agentOptions);
  if (!pooled) return agent;
  const idleMs = options.idleTimeoutMs ?? IDLE_CONNECTION_TIMEOUT_MS;
  // Node's agent has no idle timeout of its own for free sockets (its `timeout` option also applies
  // while a connection is still being made); keepSocketAlive is its documented hook for the moment a
  // socket turns idle. Node's version sets the socket timeout from the agent option and the
  // server's Keep-Alive hint; a timeout on a free socket makes the agent destroy it.
  const keepSocketAlive = agent.keepSocketAlive.bind(agent) as (socket: Socket) => boolean;
  agent.keepSocketAlive = (socket: Socket): boolean => {
    if (!keepSocketAlive(socket)) return false;
    // Node applies the server's `Keep-Alive: timeout=N` hint only below its own agent timeout,
    // which is unset here, so read the hint itself: close a second before the server would.
    const hint = keepAliveHintMs(socket);
    const limit = hint === undefined ? idleMs : Math.min(idleMs, hint - 1000);
    if (limit <= 0) return false;
    socket.setTimeout(limit);
    return true;
  };
  return agent;
}

/** The server's `Keep-Alive: timeout=N` hint of the response that just ended on `socket`, in ms. */
function keepAliveHintMs(socket: Socket): number | undefined {
  const message = (socket as Socket & { _httpMessage?: { res?: { headers?: Record<string, unknown> } } })._httpMessage;
  const header = message?.res?.headers?.['keep-alive'];
  const seconds = typeof header === 'string' ? /(?:^|,)\s*timeout=(\d+)/i.exec(header)?.[1] : undefined;
  return seconds === undefined ? undefined : Number(seconds) * 1000;
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
    // Time limits follow LOGICNETS_TOKEN_TIMEOUT: a caller waits for one token request (plus a
    // little for the stale-connection retry), and the backstop for a fetch that never settles
    // lies beyond it, so the endpoint client's own timeout is what an operator sees.
    maxWaitMs: upstream.tokenTimeout * 1000 + 1000,
    fetchTimeoutMs: upstream.tokenTimeout * 2000 + 1000,
    forcedRefreshFloorMs: options.forcedRefreshFloorMs,
  });
  // A new key can end an invalid_client outage: the cache tries again at once instead of waiting.
  const stopListening = keys.onReload(() => tokens.credentialsChanged('private key'));
  const agent = createUpstreamAgent(upstream.url, ca, { maxFreeSockets: options.maxFreeSockets });
  const freshAgent = createUpstreamAgent(upstream.url, ca, { pooled: false });
  return {
    upstream,
    keys,
    endpoint,
    tokens,
    agent,
    freshAgent,
    close() {
      stopListening();
      tokens.close();
      keys.close();
      endpoint.close();
      agent.destroy();
      freshAgent.destroy();
    },
  };
}
