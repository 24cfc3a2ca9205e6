/**
 * One upstream as the proxy sends to it, built once at start-up: where requests go (module,
 * host name, port, the `Host` value), the agents, the child logger and request log, and the
 * `Authorization` value of the last token (built once per token, not per request).
 */
import http from 'node:http';
import type { Agent, ClientRequest, RequestOptions } from 'node:http';
import https from 'node:https';
import { RequestLog } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import type { Route, Router } from './router.js';
import type { Token } from '../token/token.js';

export class UpstreamTarget {
  readonly route: Route;
  /** The upstream's configuration (what the router matches on). */
  readonly upstream: Route['upstream'];
  readonly name: string;
  readonly log: Logger;
  /** The per-request `info` line, with the route's bindings. */
  readonly requestLog: RequestLog;
  /** `Host` sent upstream (`host[:port]`, the port only when not the scheme's default). */
  readonly host: string;
  readonly #request: (options: RequestOptions) => ClientRequest;
  /** Host name for the connection (IPv6 without brackets) and port. */
  readonly #hostname: string;
  readonly #port: number;
  #lastToken: Token | undefined = undefined;
  #lastAuthorization = '';

  constructor(route: Route, proxyLog: Logger) {
    const url = new URL(route.upstream.url);
    const secure = url.protocol === 'https:';
    this.route = route;
    this.upstream = route.upstream;
    this.name = route.upstream.name;
    this.log = proxyLog.child({ upstream: route.upstream.name });
    this.requestLog = new RequestLog(this.log);
    this.host = url.host;
    this.#request = secure ? https.request : http.request;
    this.#hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.#port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  }

  /** `Bearer <token>`: the value is built once per token. Never logged. */
  authorization(token: Token): string {
    if (this.#lastToken !== token) {
      this.#lastToken = token;
      this.#lastAuthorization = `Bearer ${token.accessToken}`;
    }
    return this.#lastAuthorization;
  }

  /**
   * Starts a request to this upstream with exactly `headers` (nothing added but what Node's
   * agent adds for the connection: `Connection: keep-alive`). `fresh`: on a new connection. Throws
   * synchronously when a header value is not valid HTTP (Node checks every value).
   */
  request(method: string, path: string, headers: http.OutgoingHttpHeaders, fresh: boolean): ClientRequest {
    const agent: Agent = fresh ? this.route.freshAgent : this.route.agent;
    return this.#request({ method, path, headers, agent, hostname: this.#hostname, port: this.#port, setHost: false });
  }
}

/**
 * Logs, at `info`, each company path that upstreams on different hosts share, and how requests
 * for it are routed. Start-up only.
 */
export function logSharedCompanies(router: Router<UpstreamTarget>, targets: readonly UpstreamTarget[], log: Logger): void {
  for (const company of router.sharedCompanies) {
    const upstreams = targets.filter((t) => new URL(t.route.upstream.url).pathname.replace(/\/+$/, '') === company).map((t) => t.name);
    log.info({ company: company === '' ? '/' : company, upstreams },
      'upstreams on different hosts share a company path: gateway-mode requests for it go to the upstream their Host header names, '
      + 'and are refused (400) when it names none; forward-proxy mode (http://host/...) names the host itself');
  }
}
