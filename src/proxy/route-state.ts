/**
 * The proxy's per-route state, built once when the proxy starts: the route's `http-proxy-3`
 * instance (its target and keep-alive agent are its own options), its child logger and request
 * log, the `Host` sent upstream, and the slots the request flow caches per route (the last
 * token's `Authorization` value, the keep-alive-free agent for a resend after a reset).
 */
import http from 'node:http';
import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { ProxyServer as HttpProxy } from 'http-proxy-3';
import type { ServerOptions as HttpProxyOptions } from 'http-proxy-3';
import { sendError } from './error-response.js';
import { RequestLog } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import type { Route, Router } from './router.js';
import type { Token } from '../token/token.js';

/**
 * Per-route state built once. Mutable slots are touched only from the event loop (one request's
 * callbacks at a time), so sharing it between concurrent requests of the route is safe.
 */
export interface RouteState {
  readonly route: Route;
  /** The route's upstream (what the router matches on). */
  readonly upstream: Route['upstream'];
  readonly name: string;
  readonly log: Logger;
  /** The per-request `info` line, with the route's bindings. */
  readonly requestLog: RequestLog;
  /** `Host` sent upstream. */
  readonly host: string;
  /** The `http-proxy-3` instance of this route: its target and agent are its own options. */
  readonly proxy: HttpProxy;
  /** A keep-alive-free twin of the route's agent (same TLS trust), for a resend after a reset; made on first use. */
  freshAgent: Agent | undefined;
  /** The last token seen and its `Authorization` value, so the string is built once per token. */
  lastToken: Token | undefined;
  lastAuthorization: string;
}

/** http-proxy-3's `'proxyReq'` listener, shared by every route. */
export type ProxyReqListener = (proxyReq: ClientRequest, req: IncomingMessage) => void;
/** http-proxy-3's `'proxyRes'` listener, shared by every route. */
export type ProxyResListener = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => void;

/**
 * Builds the state of one route: an `http-proxy-3` instance that handles responses itself
 * (`selfHandleResponse`), with `onProxyReq` / `onProxyRes` attached and a last-resort error
 * listener that answers through `sendError` on `log`; and a child of `proxyLog` bound to the
 * upstream's name. Call once per route at start-up.
 */
export function createRouteState(route: Route, proxyLog: Logger, onProxyReq: ProxyReqListener, onProxyRes: ProxyResListener): RouteState {
  const url = new URL(route.upstream.url);
  const options: HttpProxyOptions = {
    target: new URL(url.origin), agent: route.agent, prependPath: false, toProxy: true, selfHandleResponse: true, xfwd: false,
  };
  const proxy = new HttpProxy(options);
  proxy.on('proxyReq', onProxyReq);
  proxy.on('proxyRes', onProxyRes);
  // Every web() call passes an error callback; this only catches what slips past it.
  proxy.on('error', (error, _req, res) => {
    if (res instanceof http.ServerResponse) sendError(res, error, proxyLog);
    else res.destroy();
  });
  const log = proxyLog.child({ upstream: route.upstream.name });
  return {
    route,
    upstream: route.upstream,
    name: route.upstream.name,
    log,
    requestLog: new RequestLog(log),
    host: url.host,
    proxy,
    freshAgent: undefined,
    lastToken: undefined,
    lastAuthorization: '',
  };
}

/**
 * Logs, at `info`, each company path that upstreams on different hosts share, and how requests
 * for it are routed. Start-up only.
 */
export function logSharedCompanies(router: Router<RouteState>, states: readonly RouteState[], log: Logger): void {
  for (const company of router.sharedCompanies) {
    const upstreams = states.filter((s) => new URL(s.upstream.url).pathname.replace(/\/+$/, '') === company).map((s) => s.name);
    log.info({ company: company === '' ? '/' : company, upstreams },
      'upstreams on different hosts share a company path: gateway-mode requests for it go to the upstream their Host header names, '
      + 'and are refused (400) when it names none; forward-proxy mode (http://host/...) names the host itself');
  }
}
