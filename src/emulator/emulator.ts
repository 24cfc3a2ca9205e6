/**
 * A LogicNets emulator: an independent HTTP(S) server that behaves like the installation in the
 * LogicNets OAuth 2.0 tutorial, for tests and the `demo` command. It verifies client assertions
 * strictly with jose against registered public keys (it shares no code with the client side) and
 * answers RFC 6749 JSON; the API endpoints under `/<company>/` answer 403 without a token, 401
 * with an unknown, revoked or expired one, and 200 JSON otherwise. It never logs a token or an
 * assertion. This file starts the server and routes requests: the token endpoint lives in
 * emulator/token-endpoint.ts (assertion checks in emulator/assertion.ts), the API routes in
 * emulator/api.ts.
 */
import http from 'node:http';
import https from 'node:https';
import { listenOn } from '../lib/listen.js';
import { systemClock } from '../lib/clock.js';
import type { Clock } from '../lib/clock.js';
import { EmulatorApi } from './api.js';
import { AssertionVerifier } from './assertion.js';
import type { EmulatorClient } from './assertion.js';
import { sendJson } from './http.js';
import { EmulatorTokenEndpoint } from './token-endpoint.js';
import type { TokenEndpointFault } from './token-endpoint.js';
import type { Logger } from '../lib/logger.js';

export { createDeterministicStream } from '../lib/deterministic-stream.js';
export type { EmulatorClient } from './assertion.js';
export type { TokenEndpointFault } from './token-endpoint.js';

/** Options of `startEmulator`. */
export interface EmulatorOptions {
  /** The company path segment; default `logicnets`. */
  company?: string;
  /** Listen address; default `127.0.0.1`. */
  host?: string;
  /** Listen port; default 0 (any free port). */
  port?: number;
  /**
   * PEM certificate chain and key: serve HTTPS when set. With `clientCa`, every connection must
   * present a client certificate issued by that CA (mTLS), else the handshake is refused.
   */
  tls?: { cert: string; key: string; clientCa?: string };
  clients: EmulatorClient[];
  /** `expires_in` of issued access tokens; default 300. */
  tokenLifetimeSeconds?: number;
  /** Largest accepted `exp - iat` of an assertion; default 3600. */
  maxAssertionLifetimeSeconds?: number;
  /** Clock skew allowed on `exp`, `iat` and `nbf`; default 60. */
  clockToleranceSeconds?: number;
  /** Time for assertion and token checks and the `Date` header; default the system clock. */
  clock?: Clock;
  logger?: Logger;
  /** The `aud` an assertion must carry; default the emulator's base URL (`url`). */
  audience?: string;
  /** The `typ` header an assertion must carry (e.g. `client-authentication+jwt`); default any. */
  assertionType?: string;
  /** Parameters every token request must carry with exactly these values (e.g. `{ audience: 'api' }`); default none. */
  requiredTokenParams?: Readonly<Record<string, string>>;
}

/** Live counters; they only grow. */
export interface EmulatorStats {
  /** Requests that reached `/<company>/oauth2token`. */
  tokenRequests: number;
  /** Token requests not answered 200 (faults included). */
  tokenFailures: number;
  /** Requests to any other path under `/<company>/`. */
  apiRequests: number;
}

/**
 * A running emulator. Safe for concurrent requests (one event loop; the replay check and the
 * token set are updated without an await in between). Methods may be called at any time.
 */
export interface Emulator {
  /** Base URL including the company, without a trailing slash, e.g. `http://127.0.0.1:41234/logicnets`. */
  readonly url: string;
  /** `${url}/oauth2token`. */
  readonly tokenUrl: string;
  /** The `aud` assertions must carry. */
  readonly audience: string;
  readonly port: number;
  readonly server: http.Server | https.Server;
  readonly stats: EmulatorStats;
  /** Makes the token endpoint answer with `fault` from now on; `null` restores normal service. */
  setTokenEndpointFault(fault: TokenEndpointFault): void;
  /** Forgets every access token issued so far: they are answered 401 from now on. */
  revokeAll(): void;
  /** Stops listening, cuts every connection (hanging ones included) and cancels slow answers. */
  close(): Promise<void>;
}

/** Starts an emulator and resolves once it listens. See `Emulator` and `EmulatorOptions`. */
export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const emulator = new LogicNetsEmulator(options);
  await emulator.listen(options.host ?? '127.0.0.1', options.port ?? 0);
  return emulator;
}

class LogicNetsEmulator implements Emulator {
  readonly server: http.Server | https.Server;
  readonly stats: EmulatorStats = { tokenRequests: 0, tokenFailures: 0, apiRequests: 0 };
  #company: string;
  #clock: Clock;
  #logger: Logger | undefined;
  #audienceOption: string | undefined;
  readonly #tokenEndpoint: EmulatorTokenEndpoint;
  readonly #api: EmulatorApi;
  #url = '';
  #port = 0;
  #closed: Promise<void> | undefined;

  constructor(options: EmulatorOptions) {
    this.#company = options.company ?? 'logicnets';
    if (!/^[A-Za-z0-9._~-]+$/.test(this.#company)) throw new TypeError('The emulator company must be one URL path segment.');
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger?.child({ component: 'logicnets-emulator' });
    this.#audienceOption = options.audience;
    const tolerance = options.clockToleranceSeconds ?? 60;
    const verifier = new AssertionVerifier({
      clients: options.clients,
      audience: () => this.audience,
      clock: this.#clock,
      maxAssertionLifetimeSeconds: options.maxAssertionLifetimeSeconds ?? 3600,
      clockToleranceSeconds: tolerance,
      requiredType: options.assertionType,
    });
    this.#tokenEndpoint = new EmulatorTokenEndpoint({
      verifier,
      clock: this.#clock,
      logger: this.#logger,
      stats: this.stats,
      tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 300,
      clockToleranceSeconds: tolerance,
      baseUrl: () => this.#url,
      requiredParams: options.requiredTokenParams,
    });
    this.#api = new EmulatorApi({
      company: this.#company,
      clock: this.#clock,
      findToken: (accessToken) => this.#tokenEndpoint.findToken(accessToken),
    });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#logger?.error({ err: { name: (error as Error).name } }, 'emulator request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: 'The emulator failed.' });
        else res.destroy();
      });
    };
    this.server = options.tls
      ? https.createServer({
        cert: options.tls.cert,
        key: options.tls.key,
        ...(options.tls.clientCa === undefined ? {} : { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: true }),
      }, handler)
      : http.createServer(handler);
  }

  get url(): string { return this.#url; }
  get tokenUrl(): string { return `${this.#url}/oauth2token`; }
  get audience(): string { return this.#audienceOption ?? this.#url; }
  get port(): number { return this.#port; }

  async listen(host: string, port: number): Promise<void> {
    await this.#tokenEndpoint.ready();
    this.#port = await listenOn(this.server, port, host);
    const scheme = this.server instanceof https.Server ? 'https' : 'http';
    const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
    this.#url = `${scheme}://${urlHost}:${this.#port}/${this.#company}`;
    this.#logger?.info({ url: this.#url }, 'LogicNets emulator listening');
  }

  setTokenEndpointFault(fault: TokenEndpointFault): void {
    this.#tokenEndpoint.setFault(fault);
  }

  revokeAll(): void {
    this.#tokenEndpoint.revokeAll();
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#api.close();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.#closed;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.setHeader('Date', new Date(this.#clock.now()).toUTCString());
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const prefix = `/${this.#company}/`;
    if (!url.pathname.startsWith(prefix)) {
      sendJson(res, 404, { error: 'not_found', error_description: `Nothing is served outside ${prefix}.` });
      return;
    }
    if (url.pathname === `${prefix}oauth2token`) {
      await this.#tokenEndpoint.handle(req, res, url);
      return;
    }
    this.stats.apiRequests++;
    await this.#api.handle(req, res, url);
  }
}
