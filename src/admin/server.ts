/**
 * The admin listener: probes (`/livez`, `/healthz`, `/readyz`), Prometheus `/metrics`, a JSON
 * `/status` of every upstream's token cache, and `POST /shutdown` for a plain (non-native) sidecar
 * in a Kubernetes Job that would otherwise never exit. It listens apart from the proxy (on all
 * interfaces by default, since the kubelet probes the pod IP) and never shows a token.
 *
 * Who may use what: probes and `/metrics` answer everyone (the kubelet, Prometheus). `/status` and
 * `POST /shutdown` answer loopback clients only (the pod's own containers, `kubectl port-forward`)
 * unless `allowRemote` opens them. A loopback source proves little behind a service mesh, whose
 * proxy delivers other pods' requests from a loopback address (Istio: 127.0.0.6), so shutdown
 * also needs a token: off unless `shutdownTokenFile` is set, where a fresh random token is written
 * at every start for the containers that may stop the sidecar to read.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isLoopbackAddress } from '../lib/loopback.js';
import { decodeJwt } from 'jose';
import type { Clock } from '../lib/clock.js';
import { ProxyError } from '../lib/errors.js';
import { cannotListen, listenOn } from '../lib/listen.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { ownTerms } from '../lib/setting-names.js';
import type { SettingNames } from '../lib/setting-names.js';
import type { Token, TokenState } from '../token/token.js';

/** What the admin server needs of one upstream: its name, URL and a read-only view of its token cache. */
export interface AdminUpstream {
  readonly name: string;
  readonly url: string;
  readonly tokens: { state(): TokenState; peek(): Token | undefined };
}

/** Options for `startAdminServer`. The callbacks are called on every probe, so keep them cheap. */
export interface AdminServerOptions {
  readonly host: string;
  /** `0` picks a free port; the chosen one is in `AdminServer.port`. */
  readonly port: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly upstreams: readonly AdminUpstream[];
  /** `/readyz` also requires a usable token for every upstream. */
  readonly readinessRequireToken: boolean;
  readonly isDraining: () => boolean;
  /** Whether the proxy listener accepts connections. */
  readonly isListening: () => boolean;
  /** Called after an accepted `POST /shutdown` was answered 202. May be called more than once. */
  readonly onShutdownRequest: () => void;
  readonly clock: Clock;
  /** `/status` and `POST /shutdown` also answer clients that are not on loopback (default false). */
  readonly allowRemote?: boolean;
  /**
   * Where to write the token `POST /shutdown` requires (`Authorization: Bearer <token>`), replaced
   * at every start and removed by `close()`. Unset: `POST /shutdown` is refused.
   */
  readonly shutdownTokenFile?: string;
  /**
   * Names the settings the admin server's messages point at, as the operator wrote them (the
   * wiring knows: `adminAllowRemote (ADMIN_ALLOW_REMOTE)`); default: the admin server's own words.
   */
  readonly settingNames?: SettingNames<AdminSetting>;
}

/** The settings the admin server's messages point at. */
export type AdminSetting = 'adminHost' | 'adminPort' | 'adminAllowRemote' | 'adminShutdownTokenFile';

const ADMIN_SETTING_WORDS: SettingNames<AdminSetting> = ownTerms({
  adminHost: 'the admin host',
  adminPort: 'the admin port',
  adminAllowRemote: 'the admin remote-access setting',
  adminShutdownTokenFile: 'the shutdown token file setting',
});

/** A listening admin server. `close()` stops it and drops its connections; calling it again is harmless. */
export interface AdminServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/** The JWT claims `/status` shows of a cached token. Nothing else of the token is ever shown. */
export interface TokenClaims {
  aud?: string | string[];
  exp?: number;
  scope?: string | string[];
  iss?: string;
  sub?: string;
}

const claimCache = new WeakMap<Token, TokenClaims | undefined>();

/**
 * The `aud`, `exp`, `scope`, `iss` and `sub` claims of `token` when its access token is a JWT, read
 * without verifying the signature (for display only), else `undefined`. Never returns the token.
 */
export function tokenClaims(token: Token): TokenClaims | undefined {
  if (claimCache.has(token)) return claimCache.get(token);
  let claims: TokenClaims | undefined;
  try {
    const payload = decodeJwt(token.accessToken);
    claims = {};
    if (typeof payload.aud === 'string' || isStringArray(payload.aud)) claims.aud = payload.aud;
    if (typeof payload.exp === 'number') claims.exp = payload.exp;
    if (typeof payload.scope === 'string' || isStringArray(payload.scope)) claims.scope = payload.scope;
    if (typeof payload.iss === 'string') claims.iss = payload.iss;
    if (typeof payload.sub === 'string') claims.sub = payload.sub;
  } catch {
    claims = undefined; // an opaque token: nothing to show
  }
  claimCache.set(token, claims);
  return claims;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/**
 * Starts the admin server on `host:port` and resolves once it listens; rejects with a `ProxyError`
 * (`config_invalid`) naming the address when it cannot listen. Requests are answered independently
 * and may run concurrently with anything else; every answer carries `Cache-Control: no-store`.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const log = options.logger.child({ component: 'admin' });
  const names = options.settingNames ?? ADMIN_SETTING_WORDS;
  let shutdownToken: Buffer | undefined;
  const server = createServer((req, res) => {
    handle(options, names, shutdownToken, log, req, res).catch((error: unknown) => {
      log.error({ err: error }, 'the admin server failed to answer a request');
      if (!res.headersSent) sendError(req, res, 500, 'internal_error', 'The admin server failed to answer; see the sidecar log.');
      else res.destroy();
    });
  });
  const port = await listenOn(server, options.port, options.host).catch((error: unknown) => {
    throw cannotListen('The admin server', options.host, options.port, `${names('adminHost')} and ${names('adminPort')}`, error);
  });
  server.on('error', (error) => log.error({ err: error }, 'the admin server failed'));
  const tokenFile = options.shutdownTokenFile;
  if (tokenFile !== undefined) {
    try {
      shutdownToken = writeShutdownToken(tokenFile);
    } catch (error) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw new ProxyError('config_invalid',
        `The admin server cannot write the shutdown token to ${tokenFile} (${(error as NodeJS.ErrnoException).code ?? 'error'}); ` +
        `set ${names('adminShutdownTokenFile')} to a file in a writable folder.`, { status: 500, proxyStatus: 'proxy_configuration_error', cause: error });
    }
  }
  log.info({ host: options.host, port, remoteStatus: options.allowRemote === true, shutdown: tokenFile === undefined ? 'off' : 'token' }, 'admin server listening');

  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (tokenFile !== undefined) rmSync(tokenFile, { force: true });
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * Writes a new random token (256 bits, base64url) to `file` and returns it. The file is replaced
 * whole (a reader never sees half a token) and readable by every user who can reach its folder,
 * since the app that calls `/shutdown` may run as another user: the folder decides who can read
 * it (in Kubernetes an emptyDir that only the pod's containers mount).
 */
function writeShutdownToken(file: string): Buffer {
  const token = randomBytes(32).toString('base64url');
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${token}\n`, { mode: 0o644 });
  chmodSync(temporary, 0o644); // whatever the umask
  renameSync(temporary, file);
  return digest(token);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Paths shown to loopback clients only, unless `allowRemote`. */
const LOOPBACK_PATHS: ReadonlySet<string> = new Set(['/status', '/shutdown']);

/**
 * Whether a client at `remoteAddress` may use `path`: probes and `/metrics` always; `/status` and
 * `/shutdown` from loopback, or from anywhere with `allowRemote`. Pure.
 */
export function adminPathAllowed(path: string, remoteAddress: string | undefined, allowRemote: boolean): boolean {
  return !LOOPBACK_PATHS.has(path) || allowRemote || isLoopbackAddress(remoteAddress);
}

const ROUTES: Record<string, readonly string[]> = {
  '/livez': ['GET', 'HEAD'],
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/status': ['GET', 'HEAD'],
  '/shutdown': ['POST'],
};

async function handle(options: AdminServerOptions, names: SettingNames<AdminSetting>, shutdownToken: Buffer | undefined, log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  const method = req.method ?? 'GET';
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.on('finish', () => log.debug({ method, path, status: res.statusCode }, 'admin request'));
  req.resume(); // no route reads a body; drain whatever was sent

  const allowed = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  if (allowed === undefined) {
    sendError(req, res, 404, 'not_found', `There is no admin endpoint ${JSON.stringify(path)}; try /livez, /readyz, /metrics, /status or POST /shutdown.`);
    return;
  }
  if (!allowed.includes(method)) {
    res.setHeader('Allow', allowed.join(', '));
    sendError(req, res, 405, 'method_not_allowed', `${path} accepts ${allowed.join(' and ')} only.`);
    return;
  }
  if (!adminPathAllowed(path, req.socket.remoteAddress, options.allowRemote === true)) {
    log.warn({ remoteAddress: req.socket.remoteAddress, path }, 'refused an admin request that did not come from loopback');
    sendError(req, res, 403, 'forbidden', `${path} answers loopback clients only (the pod's containers, kubectl port-forward); ${names('adminAllowRemote')} set to true opens it.`);
    return;
  }

  switch (path) {
    case '/livez':
    case '/healthz':
      sendJson(req, res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      const reasons = unreadyReasons(options);
      if (reasons.length === 0) sendJson(req, res, 200, { status: 'ready' });
      else sendJson(req, res, 503, { status: 'unready', reasons });
      return;
    }
    case '/metrics': {
      const { contentType, body } = await options.metrics.render();
      send(req, res, 200, contentType, body);
      return;
    }
    case '/status':
      sendJson(req, res, 200, status(options));
      return;
    case '/shutdown':
      shutdownRequest(options, names, shutdownToken, log, req, res);
      return;
    default:
      sendError(req, res, 404, 'not_found', `There is no admin endpoint ${JSON.stringify(path)}.`);
  }
}

function unreadyReasons(options: AdminServerOptions): string[] {
  const reasons: string[] = [];
  if (!options.isListening()) reasons.push('The proxy listener is not accepting connections.');
  if (options.isDraining()) reasons.push('The sidecar is shutting down.');
  if (options.readinessRequireToken) {
    for (const upstream of options.upstreams) {
      if (upstream.tokens.peek() === undefined) reasons.push(`Upstream ${JSON.stringify(upstream.name)} has no valid access token.`);
    }
  }
  return reasons;
}

function status(options: AdminServerOptions): unknown {
  const now = options.clock.now();
  return {
    draining: options.isDraining(),
    upstreams: options.upstreams.map((upstream) => {
      const state = upstream.tokens.state();
      const cached = upstream.tokens.peek();
      const claims = cached === undefined ? undefined : tokenClaims(cached);
      return {
        name: upstream.name,
        url: upstream.url,
        token: {
          valid: state.valid,
          expiresAt: iso(state.expiresAt),
          expiresInSeconds: state.expiresAt === undefined ? null : Math.floor((state.expiresAt - now) / 1000),
          lastRefreshAt: iso(state.lastRefreshAt),
          nextRefreshAt: iso(state.nextRefreshAt),
          lastError: state.lastError === undefined
            ? null
            : { code: state.lastError.code, message: state.lastError.message, at: iso(state.lastError.at) },
          consecutiveFailures: state.consecutiveFailures,
          ...(claims === undefined ? {} : { claims }),
        },
      };
    }),
  };
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

function shutdownRequest(options: AdminServerOptions, names: SettingNames<AdminSetting>, shutdownToken: Buffer | undefined, log: Logger, req: IncomingMessage, res: ServerResponse): void {
  const remote = req.socket.remoteAddress;
  if (shutdownToken === undefined) {
    log.warn({ remoteAddress: remote }, `refused a shutdown request: POST /shutdown is off (${names('adminShutdownTokenFile')} is not set)`);
    sendError(req, res, 403, 'shutdown_disabled', `POST /shutdown is off; set ${names('adminShutdownTokenFile')} to turn it on.`);
    return;
  }
  const given = bearerToken(req);
  if (given === undefined || !timingSafeEqual(digest(given), shutdownToken)) {
    log.warn({ remoteAddress: remote, token: given === undefined ? 'missing' : 'wrong' }, 'refused a shutdown request without the shutdown token');
    res.setHeader('WWW-Authenticate', 'Bearer realm="logicnets-token-proxy admin"');
    sendError(req, res, 401, 'unauthorized', `POST /shutdown needs Authorization: Bearer <the token in the file ${names('adminShutdownTokenFile')} names>.`);
    return;
  }
  log.info({ remoteAddress: remote }, 'shutdown requested over the admin port');
  sendJson(req, res, 202, { status: 'shutting down' });
  try {
    options.onShutdownRequest();
  } catch (error) {
    log.error({ err: error }, 'the shutdown callback failed');
  }
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function sendError(req: IncomingMessage, res: ServerResponse, statusCode: number, error: string, message: string): void {
  sendJson(req, res, statusCode, { error, message });
}

function sendJson(req: IncomingMessage, res: ServerResponse, statusCode: number, value: unknown): void {
  send(req, res, statusCode, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
}

function send(req: IncomingMessage, res: ServerResponse, statusCode: number, contentType: string, body: string): void {
  res.statusCode = statusCode;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}
