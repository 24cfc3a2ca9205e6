/**
 * Which upstream a request goes to, and the path it is sent with. Requests come two ways:
 * - gateway mode, origin-form (`GET /logicnets/WebAPIExample/function_1`): the upstream whose
 *   company path prefixes the path (also with a single upstream: a token never leaves its company
 *   path, so `/elsewhere` is refused like `/logicnets/../elsewhere`). When the company is served
 *   by several upstreams on different hosts, the request's `Host` header picks the one whose host
 *   it names (a legacy app pointed at the sidecar through /etc/hosts sends the installation's
 *   name); when it names none of them the request is refused (400), never guessed;
 * - forward-proxy mode, absolute-form (`GET http://lua5.logicnets.local/logicnets/...`, as clients
 *   using `HTTP_PROXY` send it): the upstream with that host (and port, when the request names
 *   one) whose company path prefixes the path. The scheme becomes the upstream's.
 * Paths are judged after normalisation, so dot-segments and encoded slashes cannot lift a request
 * out of a company path: what is matched is exactly what is sent.
 */
import type { Agent } from 'node:http';
import { overlappingUpstreams } from '../config/ambiguity.js';
import type { UpstreamConfig } from '../config/types.js';
import { ConfigError, ProxyError } from '../lib/errors.js';
import type { CachedTokenSource } from '../token/token.js';

/** One configured upstream as the proxy serves it. */
export interface Route {
  readonly upstream: UpstreamConfig;
  readonly tokens: CachedTokenSource;
  /** Keep-alive agent towards the upstream (an `https.Agent` for `https:` URLs). */
  readonly agent: Agent;
  /** The same trust without pooling: a resend after a stale keep-alive reset goes out on a new connection. */
  readonly freshAgent: Agent;
}

/** The least a route must carry for the router: its upstream's configuration. */
export interface RouteTarget {
  readonly upstream: Pick<UpstreamConfig, 'name' | 'url'>;
}

/** A matched request. */
export interface RouteMatch<T> {
  /** `gateway` for origin-form requests, `forward` for absolute-form ones. */
  readonly kind: 'gateway' | 'forward';
  readonly route: T;
  /** The normalised path and the unchanged query (`/company/x?y=1`) to send upstream. */
  readonly path: string;
}

/** A route with its URL taken apart once. */
interface CompiledRoute<T> {
  readonly route: T;
  /** Lower-cased host name as the URL spells it (IPv6 in brackets). */
  readonly hostname: string;
  /** Explicit or default port. */
  readonly port: number;
  /** Company path without a trailing slash; `''` when the upstream URL has none. */
  readonly company: string;
  readonly companySlash: string;
  /** Another upstream (on another host) serves the same company: gateway mode looks at `Host`. */
  shared: boolean;
}

const ABSOLUTE_FORM = /^(https?):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?$/i;
const AUTHORITY = /^(\[[0-9a-f:.]+\]|[^:[\]@]+)(?::(\d{0,5}))?$/i;
const FORBIDDEN_ESCAPE = /%(?:2f|5c|00)/i;
const ESCAPE = /%([0-9a-fA-F]{2})/g;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const BAD_ESCAPE = /%(?![0-9a-fA-F]{2})/;
const DOT_SEGMENT_WITH_PARAMETERS = /^\.\.?;/;

/** 400 with a sentence about what is wrong with the request. */
function badRequest(message: string): ProxyError {
  return new ProxyError('bad_request', message, { status: 400, proxyStatus: 'http_request_error' });
}

function notConfigured(message: string): ProxyError {
  return new ProxyError('destination_not_configured', message, { status: 403, proxyStatus: 'destination_not_found' });
}

/** `/a/b/` -> `/a/b`, `/` -> `''`. */
function companyOf(url: URL): string {
  return url.pathname.replace(/\/+$/, '');
}

function defaultPort(scheme: string): number {
  return scheme === 'https' || scheme === 'https:' ? 443 : 80;
}

function compile<T extends RouteTarget>(route: T): CompiledRoute<T> {
  const url = new URL(route.upstream.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('not an http(s) URL');
  const company = companyOf(url);
  return {
    route,
    hostname: url.hostname.toLowerCase(),
    port: url.port === '' ? defaultPort(url.protocol) : Number(url.port),
    company,
    companySlash: `${company}/`,
    shared: false,
  };
}

function within(path: string, route: CompiledRoute<unknown>): boolean {
  return route.company === '' || path === route.company || path.startsWith(route.companySlash);
}

/**
 * Normalises an origin-form path (no query): decodes percent-encoded unreserved characters
 * (RFC 3986 6.2.2.2), resolves `.` and `..` segments (RFC 3986 5.2.4). Refuses (400) encoded
 * slashes, backslashes and NULs, malformed escapes, encoded dots that would form a dot-segment,
 * and `..` that climbs above the root. Returns the path or the error.
 */
export function normalisePath(path: string): string | ProxyError {
  if (path.charCodeAt(0) !== 47 /* / */) return badRequest('The request path must start with "/".');
  const hasEscape = path.includes('%');
  if (path.includes('\\')) return badRequest('The request path contains a backslash; send "/" as the path separator.');
  if (!hasEscape && !path.includes('/.')) return path;
  if (hasEscape) {
    if (FORBIDDEN_ESCAPE.test(path)) {
      return badRequest('The request path contains an encoded slash, backslash or NUL (%2F, %5C, %00); these are refused so a path cannot leave its company.');
    }
    if (BAD_ESCAPE.test(path)) return badRequest('The request path contains a malformed percent-escape.');
  }
  const segments = path.slice(1).split('/');
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    let segment = segments[i] as string;
    const last = i === segments.length - 1;
    if (hasEscape && segment.includes('%')) {
      const decoded = segment.replace(ESCAPE, (escape, hex: string) => {
        const char = String.fromCharCode(Number.parseInt(hex, 16));
        return UNRESERVED.test(char) ? char : escape;
      });
      if (decoded === '.' || decoded === '..') {
        return badRequest('The request path contains an encoded dot-segment (%2E); send "." and ".." unencoded or resolve them first.');
      }
      segment = decoded;
    }
    if (DOT_SEGMENT_WITH_PARAMETERS.test(segment)) {
      // Servlet containers (Tomcat and others) read `..;x` as `..`: a way out of the company.
      return badRequest('The request path contains a dot-segment with path parameters ("..;" or ".;"); these are refused.');
    }
    if (segment === '.') {
      if (last) out.push('');
      continue;
    }
    if (segment === '..') {
      if (out.length === 0) return badRequest('The request path climbs above the root with "..".');
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(segment);
  }
  return `/${out.join('/')}`;
}

/**
 * Refuses configurations in which two upstreams could match the same request (the rule is
 * `overlappingUpstreams` of the config loader, so start-up and routing cannot disagree), and URLs
 * that do not parse. Throws a `ConfigError` naming the upstreams.
 */
export function checkRoutesUnambiguous(upstreams: readonly Pick<UpstreamConfig, 'name' | 'url'>[]): void {
  const problems: string[] = [];
  for (const upstream of upstreams) {
    try {
      compile({ upstream });
    } catch {
      problems.push(`upstream "${upstream.name}": url ${JSON.stringify(upstream.url)} is not a valid http(s) URL`);
    }
  }
  for (const [i, j] of overlappingUpstreams(upstreams.map((u) => u.url))) {
    const ua = upstreams[i] as Pick<UpstreamConfig, 'name' | 'url'>;
    const ub = upstreams[j] as Pick<UpstreamConfig, 'name' | 'url'>;
    problems.push(`upstreams "${ua.name}" (${ua.url}) and "${ub.name}" (${ub.url}) are ambiguous: `
      + 'a request for the same host and company path would match both; give each upstream its own host or company path');
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Matches requests to routes. Built once from the configured routes (every URL is parsed then,
 * never per request); `match` is synchronous, allocation-light and safe to call from any number
 * of concurrent requests. The constructor throws a `ConfigError` for an ambiguous configuration.
 */
export class Router<T extends RouteTarget = Route> {
  readonly #routes: readonly CompiledRoute<T>[];
  readonly #sharedCompanies = new Set<string>();

  constructor(routes: readonly T[]) {
    checkRoutesUnambiguous(routes.map((r) => r.upstream));
    // Longest company first, so the most specific upstream wins (stable for equal lengths).
    this.#routes = routes.map((r) => compile(r)).sort((a, b) => b.company.length - a.company.length);
    const companies = new Set<string>();
    for (const r of this.#routes) {
      if (companies.has(r.company)) this.#sharedCompanies.add(r.company);
      companies.add(r.company);
    }
    for (const r of this.#routes) r.shared = this.#sharedCompanies.has(r.company);
  }

  /**
   * Company paths (`''` for the root) served by more than one upstream, on different hosts: in
   * gateway mode such a request is routed by its `Host` header.
   */
  get sharedCompanies(): readonly string[] {
    return [...this.#sharedCompanies];
  }

  /** The routes, longest company path first. */
  get routes(): readonly T[] {
    return this.#routes.map((r) => r.route);
  }

  /**
   * Routes the request-target of a request line (`req.url`): returns the match, or a
   * `ProxyError`: 400 `bad_request` for a target that cannot be understood, a path that would
   * leave its company, or a gateway-mode path whose company several upstreams serve while `host`
   * (the request's `Host` header) names none of them; 403 `destination_not_configured` when no
   * upstream matches. `host` is only read in that shared-company case.
   */
  match(target: string, host?: string): RouteMatch<T> | ProxyError {
    if (target.charCodeAt(0) === 47 /* / */) return this.#matchGateway(target, host);
    const absolute = ABSOLUTE_FORM.exec(target);
    if (absolute === null) {
      return badRequest('The request target is neither a path ("/company/...") nor an absolute http:// URL.');
    }
    return this.#matchForward(absolute);
  }

  #matchGateway(target: string, host: string | undefined): RouteMatch<T> | ProxyError {
    if (target.includes('#')) return badRequest('The request target contains a fragment ("#").');
    const q = target.indexOf('?');
    const rawPath = q === -1 ? target : target.slice(0, q);
    const path = normalisePath(rawPath);
    if (path instanceof ProxyError) return path;
    let route = this.#pick(this.#routes, rawPath, path);
    if (route instanceof ProxyError) return route;
    if (route?.shared === true) route = this.#byHost(route, path, host);
    if (route instanceof ProxyError) return route;
    if (route !== undefined) return { kind: 'gateway', route: route.route, path: path === rawPath ? target : path + target.slice(rawPath.length) };
    return notConfigured(`No upstream is configured for the path ${path}; configured company paths are ${this.#companies()}.`);
  }

  #matchForward(absolute: RegExpExecArray): RouteMatch<T> | ProxyError {
    const scheme = (absolute[1] as string).toLowerCase();
    const authority = absolute[2] as string;
    if (authority.includes('@')) {
      return badRequest('The request URL carries user credentials ("user@host"); the sidecar adds the credentials itself, remove them.');
    }
    const hostPort = AUTHORITY.exec(authority);
    if (hostPort === null) return badRequest('The request URL has no valid host.');
    const hostname = (hostPort[1] as string).toLowerCase();
    const portText = hostPort[2];
    let port: number | undefined;
    if (portText !== undefined && portText !== '') {
      port = Number(portText);
      if (port < 1 || port > 65535) return badRequest('The request URL has an invalid port.');
      if (port === defaultPort(scheme)) port = undefined; // http://host:80/ is http://host/ (RFC 3986 6.2.3)
    }
    const rawPath = absolute[3] === '' ? '/' : absolute[3] as string;
    const query = absolute[4] ?? '';
    const path = normalisePath(rawPath);
    if (path instanceof ProxyError) return path;
    const candidates = this.#routes.filter((r) => r.hostname === hostname && (port === undefined || r.port === port));
    const where = `${hostname}${port === undefined ? '' : `:${port}`}${path}`;
    if (candidates.length === 0) {
      return notConfigured(`The destination ${where} is not a configured upstream; the sidecar only forwards to its configured upstreams.`);
    }
    const route = this.#pick(candidates, rawPath, path);
    if (route instanceof ProxyError) return route;
    if (route === undefined) {
      return notConfigured(`The destination ${where} is outside the company paths configured for that host.`);
    }
    return { kind: 'forward', route: route.route, path: path + query };
  }

  /**
   * Among the upstreams that serve `first`'s company (on different hosts), the one whose host
   * name the `Host` header names (its port is ignored: it is the sidecar's, not the upstream's);
   * a 400 naming them all when it names none.
   */
  #byHost(first: CompiledRoute<T>, path: string, host: string | undefined): CompiledRoute<T> | ProxyError {
    const hostname = host === undefined ? undefined : AUTHORITY.exec(host)?.[1]?.toLowerCase();
    const sharing = this.#routes.filter((r) => r.company === first.company);
    const named = hostname === undefined ? undefined : sharing.find((r) => r.hostname === hostname);
    if (named !== undefined) return named;
    const names = sharing.map((r) => `"${r.route.upstream.name}" (${r.hostname})`).join(', ');
    return badRequest(`The path ${path} matches the company path ${first.company === '' ? '/' : first.company} of several upstreams: ${names}. `
      + 'Send the request in forward-proxy mode (http://<host>/... with the sidecar as HTTP proxy), or with a Host header naming the installation\'s host.');
  }

  /**
   * The route among `routes` whose company prefixes `path`; a 400 when the raw path started in
   * one company and its dot-segments lead out of it.
   */
  #pick(routes: readonly CompiledRoute<T>[], rawPath: string, path: string): CompiledRoute<T> | ProxyError | undefined {
    if (rawPath !== path) {
      const start = routes.find((r) => r.company !== '' && within(rawPath, r));
      if (start !== undefined && !within(path, start)) {
        return badRequest(`The request path leaves the company path ${start.company} through "..".`);
      }
    }
    return routes.find((r) => within(path, r));
  }

  #companies(): string {
    return this.#routes.map((r) => r.company === '' ? '/' : r.company).join(', ');
  }
}
