/**
 * The `http.Agent`s the sidecar's own connections go out on (token endpoint and upstream): direct,
 * or through an egress proxy's `CONNECT` tunnel (npm `https-proxy-agent`), with TLS verified end to
 * end against the destination's host name. Each new TLS connection takes the secure context in
 * force at that moment from a `TlsContextProvider` (extra CA, client certificate), so a reloaded
 * certificate is used from the next connection on; connections made with an older context are
 * never pooled with newer ones, nor do they share TLS sessions. Pooled agents keep connections
 * alive, reuse the warmest first (LIFO) and close idle ones after a timeout.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { checkServerIdentity } from 'node:tls';
import type { PeerCertificate, SecureContext } from 'node:tls';
import type { AgentConnectOpts } from 'agent-base';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { redactProxyUrl } from './egress-proxy.js';
import { setIdleTimeout } from './keep-alive-hint.js';
import { EGRESS_PROXY_ERROR } from './network-errors.js';
import type { TlsContextProvider } from './tls-source.js';

/**
 * How long an idle pooled connection is kept: shorter than common server keep-alive timeouts
 * (Node 5 s, nginx 75 s, IIS 120 s), so that the sidecar closes an idle connection before the
 * server does and rarely sends a request on one the server is closing. A shorter
 * `Keep-Alive: timeout=N` hint from the server wins. It never applies to a connection with a
 * request in flight.
 */
export const IDLE_CONNECTION_TIMEOUT_MS = 4000;

/** Options of `createOutboundAgent`. */
export interface OutboundAgentOptions {
  /** `https:` destinations get TLS with `tls`'s context; `http:` ones plain TCP. */
  readonly protocol: 'http:' | 'https:';
  /** The secure context for new TLS connections to the destination. */
  readonly tls: TlsContextProvider;
  /** An `http://` or `https://` egress proxy to tunnel through (`CONNECT`); direct when absent. */
  readonly proxy?: URL;
  /** Trust for an `https://` proxy's own certificate (system CAs when absent). Never a client certificate. */
  readonly proxyTrust?: SecureContext;
  /** `false`: no pooling, every request a new connection (default true). */
  readonly pooled?: boolean;
  /** Maximum idle connections kept (default 256). */
  readonly maxFreeSockets?: number;
  /** Idle time after which a pooled connection is closed (default `IDLE_CONNECTION_TIMEOUT_MS`). */
  readonly idleTimeoutMs?: number;
}

/**
 * An agent for one destination scheme as `options` describe. Safe for any number of concurrent
 * requests; `destroy()` closes its sockets.
 */
export function createOutboundAgent(options: OutboundAgentOptions): http.Agent {
  const pooled = options.pooled ?? true;
  const agentOptions = { keepAlive: pooled, maxFreeSockets: options.maxFreeSockets ?? 256, scheduling: 'lifo' as const };
  const idleMs = options.idleTimeoutMs ?? IDLE_CONNECTION_TIMEOUT_MS;
  if (options.proxy !== undefined) {
    return new TunnelAgent(options.proxy, agentOptions, options.tls, idleMs, options.proxyTrust, options.protocol);
  }
  return options.protocol === 'https:'
    ? new DirectHttpsAgent(agentOptions, options.tls, idleMs)
    : new DirectHttpAgent(agentOptions, idleMs);
}

/** `keepSocketAlive` of a pooled agent: Node's own decision, then the idle timeout. */
function keepIdle(keep: boolean | void, socket: Duplex, idleMs: number): boolean {
  return keep !== false && setIdleTimeout(socket, idleMs);
}

class DirectHttpAgent extends http.Agent {
  readonly #idleMs: number;

  constructor(options: http.AgentOptions, idleMs: number) {
    super(options);
    this.#idleMs = idleMs;
  }

  override keepSocketAlive(socket: Duplex): void {
    return keepIdle(super.keepSocketAlive(socket), socket, this.#idleMs) as unknown as void;
  }
}

class DirectHttpsAgent extends https.Agent {
  readonly #tls: TlsContextProvider;
  readonly #idleMs: number;

  constructor(options: https.AgentOptions, tls: TlsContextProvider, idleMs: number) {
    super(options);
    this.#tls = tls;
    this.#idleMs = idleMs;
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    return super.createConnection({ ...options, secureContext: this.#tls.current().context } as https.RequestOptions, callback);
  }

  override getName(options?: https.RequestOptions): string {
    return `${super.getName(options)}:tls${this.#tls.current().generation}`;
  }

  override keepSocketAlive(socket: Duplex): void {
    return keepIdle(super.keepSocketAlive(socket), socket, this.#idleMs) as unknown as void;
  }
}

/** A status line of the proxy's answer to `CONNECT`, as https-proxy-agent emits it. */
interface ConnectAnswer {
  readonly statusCode: number;
  readonly statusText?: string;
}

class TunnelAgent extends HttpsProxyAgent<string> {
  readonly #tls: TlsContextProvider;
  readonly #idleMs: number;
  readonly #redacted: string;

  constructor(proxy: URL, options: http.AgentOptions, tls: TlsContextProvider, idleMs: number,
    proxyTrust: SecureContext | undefined, protocol: 'http:' | 'https:') {
    // The library gets the URL without credentials (its DEBUG output prints the URL) and the
    // credentials only as the header it would have made of them.
    const bare = new URL(proxy.href);
    bare.username = '';
    bare.password = '';
    const credentials = proxy.username !== '' || proxy.password !== ''
      ? { 'Proxy-Authorization': `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}` }
      : {};
    super(bare, { ...options, headers: credentials, ...(proxyTrust === undefined ? {} : { secureContext: proxyTrust }) });
    this.#tls = tls;
    this.#idleMs = idleMs;
    this.#redacted = redactProxyUrl(proxy);
    this.protocol = protocol;
  }

  /**
   * Opens the tunnel, then TLS to the destination: SNI and certificate check against the
   * destination's host (never the proxy's), with the current context. A proxy that cannot be
   * reached or answers `CONNECT` with anything but 200 fails the request with `ERR_EGRESS_PROXY`
   * (https-proxy-agent would otherwise hand the proxy's answer to the caller as the destination's).
   */
  override async connect(req: http.ClientRequest, opts: AgentConnectOpts): Promise<Socket> {
    const host = opts.host ?? '';
    const target = `${isIP(host) === 6 ? `[${host}]` : host}:${opts.port}`;
    let answer: ConnectAnswer | undefined;
    const onAnswer = (connect: ConnectAnswer): void => { answer = connect; };
    req.once('proxyConnect', onAnswer);
    let socket: Socket;
    try {
      socket = await super.connect(req, opts.secureEndpoint ? {
        ...opts,
        secureContext: this.#tls.current().context,
        rejectUnauthorized: true,
        servername: isIP(host) === 0 ? host : undefined,
        checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(host, cert),
      } : opts);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw egressError(`the egress proxy ${this.#redacted} could not open a tunnel to ${target} (${code})`, error);
    } finally {
      req.off('proxyConnect', onAnswer);
    }
    if (answer !== undefined && answer.statusCode !== 200) {
      socket.destroy();
      throw egressError(answer.statusCode === 407
        ? `the egress proxy ${this.#redacted} refused its credentials for ${target} (407 Proxy Authentication Required): check the user and password in the proxy URL`
        : `the egress proxy ${this.#redacted} answered CONNECT ${target} with HTTP ${answer.statusCode}: it refuses or cannot reach that destination`);
    }
    return socket;
  }

  override getName(options?: AgentConnectOpts): string {
    return `${super.getName(options)}:tls${this.#tls.current().generation}`;
  }

  override keepSocketAlive(socket: Duplex): void {
    return keepIdle(super.keepSocketAlive(socket), socket, this.#idleMs) as unknown as void;
  }
}

function egressError(message: string, cause?: unknown): Error & { code: string } {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code: EGRESS_PROXY_ERROR });
}
