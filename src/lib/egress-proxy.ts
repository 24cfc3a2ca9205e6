/**
 * Which egress proxy, if any, the sidecar's own connections (token endpoint, upstream) go
 * through: the `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` conventions, an explicit per-upstream
 * setting that overrides them, and the guard against a proxy setting that names the sidecar's own
 * listener. Pure: the caller passes the environment and the listener, and names the settings in
 * its messages. Proxy URLs may carry credentials; `redactProxyUrl` is the only form to show.
 *
 * The rules, as curl and most tools apply them:
 * - `https:` destinations use `https_proxy`, else `HTTPS_PROXY`; `http:` ones `http_proxy`, else
 *   `HTTP_PROXY`. The lower-case name wins when both are set (curl's order); an empty value counts
 *   as unset. `HTTP_PROXY` is never used for an `https:` destination.
 * - `no_proxy` (else `NO_PROXY`) lists destinations reached directly, separated by commas or
 *   spaces: `*` (everything), a host name that also covers its subdomains (`corp.example`,
 *   `.corp.example` and `*.corp.example` all match `corp.example` and `api.corp.example`), an IP
 *   address or CIDR range (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port`.
 * - Loopback destinations (`localhost`, 127.0.0.0/8, `::1`) are always reached directly, as Go's
 *   net/http does: a proxy elsewhere cannot reach this machine's loopback.
 */
import { BlockList, isIP } from 'node:net';
import { isLoopbackHost } from './loopback.js';

/** A proxy setting as read: its value and where it came from (e.g. `https_proxy`). */
export interface ProxyVariable {
  readonly value: string;
  readonly origin: string;
}

/** The proxy variables of the environment, the lower-case spelling preferred. */
export interface ProxyEnvironment {
  readonly httpsProxy?: ProxyVariable;
  readonly httpProxy?: ProxyVariable;
  readonly noProxy?: ProxyVariable;
}

/** Reads `https_proxy`/`HTTPS_PROXY`, `http_proxy`/`HTTP_PROXY` and `no_proxy`/`NO_PROXY` from `env`. Pure. */
export function readProxyEnvironment(env: Readonly<Record<string, string | undefined>>): ProxyEnvironment {
  const pick = (name: string): ProxyVariable | undefined => {
    for (const origin of [name.toLowerCase(), name.toUpperCase()]) {
      const value = env[origin]?.trim();
      if (value !== undefined && value !== '') return { value, origin };
    }
    return undefined;
  };
  return { httpsProxy: pick('https_proxy'), httpProxy: pick('http_proxy'), noProxy: pick('no_proxy') };
}

/**
 * Parses a proxy URL: `http://` or `https://`, optionally with `user:password@` and a port; a
 * bare `host:port` means `http://host:port` (as curl reads it). Throws an `Error` whose message
 * says what is wrong and never contains the value (it may hold a password). Pure.
 */
export function parseProxyUrl(value: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('is not a proxy URL; expected e.g. http://proxy.corp.example:3128');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`must be an http:// or https:// proxy URL, not ${url.protocol}// (SOCKS proxies are not supported)`);
  }
  if (url.hostname === '') throw new Error('names no proxy host; expected e.g. http://proxy.corp.example:3128');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new Error('must be just scheme, host and port (and credentials), without a path or query');
  }
  return url;
}

/** `url` without its credentials, e.g. `http://***@proxy:3128`, for logs, `/status`, errors and `check`. Pure. */
export function redactProxyUrl(url: URL): string {
  const credentials = url.username !== '' || url.password !== '' ? '***@' : '';
  return `${url.protocol}//${credentials}${url.host}`;
}

/** The sidecar's proxy listener, to recognise a proxy setting that would send the sidecar to itself. */
export interface OwnListener {
  readonly host: string;
  readonly port: number;
  /** This machine's own addresses (all interfaces), when the listener is on `0.0.0.0` / `::`. */
  readonly localAddresses?: readonly string[];
}

/**
 * Whether a proxy at `proxy` would be the sidecar's own listener: same port, and a host that
 * reaches the listener (the same address; a loopback name or address when the listener is on
 * loopback or on all interfaces; one of this machine's addresses when it is on all interfaces).
 * Pure.
 */
export function isOwnListener(proxy: URL, listener: OwnListener): boolean {
  const port = Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80));
  if (port !== listener.port) return false;
  const proxyHost = bare(proxy.hostname);
  const listenHost = bare(listener.host);
  if (proxyHost === listenHost) return true;
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  if (wildcard && (proxyHost === '0.0.0.0' || proxyHost === '::')) return true;
  if (isLoopbackHost(proxyHost)) {
    if (wildcard) return true;
    // 127.0.0.1 and localhost reach a listener on either; another 127.x address only itself.
    const reachesDefault = proxyHost === 'localhost' || proxyHost === '127.0.0.1' || proxyHost === '::1';
    return reachesDefault && (listenHost === 'localhost' || listenHost === '127.0.0.1' || listenHost === '::1');
  }
  return wildcard && (listener.localAddresses ?? []).some((a) => bare(a) === proxyHost);
}

/** One `NO_PROXY` entry, parsed. */
interface NoProxyEntry {
  /** A lower-case domain (without leading dot or `*.`), or undefined for an IP entry. */
  readonly domain?: string;
  /** An IP address or range. */
  readonly addresses?: BlockList;
  readonly port?: number;
}

/**
 * A parsed `NO_PROXY` list. `matches(url)` tells whether a destination is reached directly.
 * Unparseable entries are ignored, as curl ignores them. Immutable; safe to share.
 */
export class NoProxyList {
  readonly #all: boolean;
  readonly #entries: readonly NoProxyEntry[];

  constructor(value: string | undefined) {
    const items = (value ?? '').split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
    this.#all = items.includes('*');
    this.#entries = items.flatMap((item) => {
      const entry = parseNoProxyEntry(item);
      return entry === undefined ? [] : [entry];
    });
  }

  /** Whether `url`'s host (and port) is listed. */
  matches(url: URL): boolean {
    if (this.#all) return true;
    const host = bare(url.hostname).replace(/\.$/, '');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const family = isIP(host);
    return this.#entries.some((entry) => {
      if (entry.port !== undefined && entry.port !== port) return false;
      if (entry.addresses !== undefined) {
        return family !== 0 && entry.addresses.check(host, family === 6 ? 'ipv6' : 'ipv4');
      }
      const domain = entry.domain as string;
      return host === domain || host.endsWith(`.${domain}`);
    });
  }
}

function parseNoProxyEntry(item: string): NoProxyEntry | undefined {
  let host = item;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(item);
  if (bracketed !== null) {
    host = bracketed[1] as string;
    port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
  } else if (isIP(item) !== 6 && !item.includes('/')) {
    const withPort = /^(.*):(\d+)$/.exec(item);
    if (withPort !== null) {
      host = withPort[1] as string;
      port = Number(withPort[2]);
    }
  }
  const [address, prefix] = host.split('/');
  const family = isIP(address ?? '');
  if (family !== 0) {
    const list = new BlockList();
    const type = family === 6 ? 'ipv6' : 'ipv4';
    const bits = prefix === undefined ? undefined : Number(prefix);
    if (bits === undefined) list.addAddress(address as string, type);
    else if (Number.isInteger(bits) && bits >= 0 && bits <= (family === 6 ? 128 : 32)) list.addSubnet(address as string, bits, type);
    else return undefined;
    return { addresses: list, port };
  }
  const domain = host.replace(/^\*?\./, '').replace(/\.$/, '');
  if (domain === '' || domain.includes('/') || domain.includes('*')) return undefined;
  return { domain, port };
}

/** What `chooseEgressProxy` decided for one destination. */
export interface EgressChoice {
  /** The proxy to tunnel through (may hold credentials), or undefined: connect directly. */
  readonly proxy: URL | undefined;
  /** Where the proxy came from (`https_proxy`, `LOGICNETS_EGRESS_PROXY`, ...), or why the connection is direct. */
  readonly reason: string;
  /** A proxy setting that was ignored because it names the sidecar's own listener (`origin` names it). */
  readonly ignored?: { readonly origin: string; readonly proxy: string };
}

/** The explicit egress setting of an upstream: a proxy, `direct`, or none (the environment decides). */
export type ExplicitEgress = { readonly proxy: URL; readonly origin: string } | { readonly direct: true; readonly origin: string };

/**
 * Decides how to reach `destination`: loopback directly; else the explicit setting when there is
 * one; else the environment's proxy for the destination's scheme unless `NO_PROXY` lists it. An
 * environment proxy that names the sidecar's own listener is ignored (reported in `ignored`): such
 * a value was meant for the application in the same shell. Pure.
 */
export function chooseEgressProxy(destination: URL, explicit: ExplicitEgress | undefined,
  environment: ProxyEnvironment, listener: OwnListener): EgressChoice {
  if (isLoopbackHost(destination.hostname)) return { proxy: undefined, reason: 'loopback destination' };
  if (explicit !== undefined) {
    return 'direct' in explicit
      ? { proxy: undefined, reason: `${explicit.origin}=none` }
      : { proxy: explicit.proxy, reason: explicit.origin };
  }
  const variable = destination.protocol === 'https:' ? environment.httpsProxy : environment.httpProxy;
  if (variable === undefined) return { proxy: undefined, reason: `no ${destination.protocol === 'https:' ? 'https_proxy' : 'http_proxy'} set` };
  if (new NoProxyList(environment.noProxy?.value).matches(destination)) {
    return { proxy: undefined, reason: `${environment.noProxy?.origin ?? 'no_proxy'} lists ${destination.hostname}` };
  }
  const proxy = parseProxyUrl(variable.value);
  if (isOwnListener(proxy, listener)) {
    return {
      proxy: undefined,
      reason: `${variable.origin} names this sidecar's own listener and is ignored`,
      ignored: { origin: variable.origin, proxy: redactProxyUrl(proxy) },
    };
  }
  return { proxy, reason: variable.origin };
}

function bare(host: string): string {
  return host.replace(/^\[|\]$/g, '').toLowerCase();
}
