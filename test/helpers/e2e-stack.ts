// The full stack for end-to-end tests: the LogicNets emulator (HTTP or HTTPS with a test CA),
// a server user registered there, and the real sidecar (`startSidecar`) configured from
// environment variables through `loadConfig`, plus small HTTP clients with bounded waits.
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { systemClock } from '../../src/lib/clock.js';
import type { Clock } from '../../src/lib/clock.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { startEmulator } from '../../src/emulator/emulator.js';
import type { Emulator, TokenEndpointFault } from '../../src/emulator/emulator.js';
import { createLogger } from '../../src/lib/logger.js';
import type { Logger } from '../../src/lib/logger.js';
import { startSidecar } from '../../src/sidecar.js';
import type { Sidecar } from '../../src/sidecar.js';
import { makeRsaKey } from './rsa-keys.js';
import type { RsaTestKey } from './rsa-keys.js';
import type { TestPki } from './tls.js';

/** A folder for key and config files; `cleanup()` removes it. */
export interface WorkDir {
  readonly path: string;
  /** Writes `text` to `name` in the folder and returns the full path. */
  write(name: string, text: string): string;
  cleanup(): void;
}

/** Makes a fresh temporary folder. */
export function makeWorkDir(prefix = 'ltp-e2e-'): WorkDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    write(name, text) {
      const file = join(path, name);
      writeFileSync(file, text, { mode: 0o600 });
      return file;
    },
    cleanup: () => rmSync(path, { recursive: true, force: true }),
  };
}

/** A LogicNets server user: a client id and its RSA key, the private key in a PEM file. */
export interface ServerUser {
  readonly clientId: string;
  readonly key: RsaTestKey;
  readonly keyFile: string;
}

/** Makes a server user with a fresh 2048-bit key, its PKCS#8 PEM written into `dir`. */
export function makeServerUser(dir: WorkDir, name = 'server-user'): ServerUser {
  const key = makeRsaKey();
  const clientId = randomUUID().toUpperCase();
  return { clientId, key, keyFile: dir.write(`${name}-${clientId}.pem`, key.pkcs8Pem) };
}

/** Options of `startE2eEmulator`. */
export interface E2eEmulatorOptions {
  /** HTTPS with this PKI's server certificate; plain HTTP when absent. */
  pki?: TestPki;
  users: readonly ServerUser[];
  company?: string;
  clock?: Clock;
  tokenLifetimeSeconds?: number;
  logger?: Logger;
}

/** Starts an emulator on 127.0.0.1 that accepts assertions of `users`. */
export function startE2eEmulator(options: E2eEmulatorOptions): Promise<Emulator> {
  return startEmulator({
    company: options.company ?? 'logicnets',
    clients: options.users.map((u) => ({ clientId: u.clientId, publicKey: u.key.publicKey })),
    tls: options.pki === undefined ? undefined : { cert: options.pki.serverCertPem, key: options.pki.serverKeyPem },
    clock: options.clock,
    tokenLifetimeSeconds: options.tokenLifetimeSeconds,
    logger: options.logger,
  });
}

/** The environment that points a sidecar at `emulator` as `user` (free ports, admin on loopback, silent). */
export function sidecarEnv(emulator: Emulator, user: ServerUser, pki?: TestPki): Record<string, string> {
  const env: Record<string, string> = {
    LOGICNETS_URL: emulator.url,
    LOGICNETS_CLIENT_ID: user.clientId,
    LOGICNETS_PRIVATE_KEY_FILE: user.keyFile,
    LISTEN_HOST: '127.0.0.1',
    LISTEN_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    LOG_LEVEL: 'silent',
  };
  if (pki !== undefined) env.LOGICNETS_CA_FILE = pki.caCertFile;
  return env;
}

/** Options of `startE2eSidecar`. */
export interface E2eSidecarOptions {
  env: Record<string, string>;
  configFile?: string;
  clock?: Clock;
  logger?: Logger;
}

/** A sidecar started by a test. `close()` cuts its connections and shuts it down. */
export interface E2eSidecar {
  readonly sidecar: Sidecar;
  readonly config: Config;
  /** `http://127.0.0.1:<proxy port>` */
  readonly proxyUrl: string;
  readonly proxyPort: number;
  readonly adminPort: number;
  close(): Promise<void>;
}

/** Loads the configuration from `env` (and `configFile`) and starts the real sidecar (no process metrics). */
export async function startE2eSidecar(options: E2eSidecarOptions): Promise<E2eSidecar> {
  const config = loadConfig({ env: options.env, configFile: options.configFile });
  const sidecar = await startSidecar(config, {
    logger: options.logger ?? createLogger({ level: 'silent' }),
    clock: options.clock ?? systemClock,
    processMetrics: false,
  });
  let closing: Promise<void> | undefined;
  return {
    sidecar,
    config,
    proxyUrl: `http://127.0.0.1:${sidecar.proxyPort}`,
    proxyPort: sidecar.proxyPort,
    adminPort: sidecar.adminPort,
    close() {
      closing ??= (async () => {
        // In-flight requests of a failed test must not hold the drain (a manual clock never times it out).
        sidecar.proxy.server.closeAllConnections();
        await sidecar.shutdown('test finished');
      })();
      return closing;
    },
  };
}

/** Options of `startStack`. */
export interface StackOptions {
  pki?: TestPki;
  /** Shared by the emulator and the sidecar. */
  clock?: Clock;
  tokenLifetimeSeconds?: number;
  /** Set on the token endpoint before the sidecar starts. */
  fault?: TokenEndpointFault;
  /** Extra sidecar environment, applied last. */
  env?: Record<string, string>;
  logger?: Logger;
}

/** An emulator of its own with one server user and a sidecar in front of it. */
export interface Stack extends E2eSidecar {
  readonly emulator: Emulator;
  readonly user: ServerUser;
}

/** Starts an emulator for `user` and a sidecar in front of it; `close()` stops both. */
export async function startStack(user: ServerUser, options: StackOptions = {}): Promise<Stack> {
  const emulator = await startE2eEmulator({
    pki: options.pki, users: [user], clock: options.clock, tokenLifetimeSeconds: options.tokenLifetimeSeconds,
  });
  if (options.fault !== undefined) emulator.setTokenEndpointFault(options.fault);
  let started: E2eSidecar;
  try {
    started = await startE2eSidecar({
      env: { ...sidecarEnv(emulator, user, options.pki), ...options.env },
      clock: options.clock,
      logger: options.logger,
    });
  } catch (error) {
    await emulator.close();
    throw error;
  }
  return {
    ...started,
    emulator,
    user,
    async close() {
      await started.close();
      await emulator.close();
    },
  };
}

/** A response read whole. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

/** Options of `call`. */
export interface CallOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer | Readable;
  /** Fail (reject) when no complete answer came within this many ms; default 10 000. A bound, not a timing assertion. */
  limitMs?: number;
}

/**
 * Sends one request to `127.0.0.1:port` on its own connection; `target` is a path (gateway mode)
 * or an absolute URL (forward-proxy mode). Rejects when no answer came within `limitMs`.
 */
export function call(port: number, target: string, options: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const limitMs = options.limitMs ?? 10_000;
    const req = http.request({
      host: '127.0.0.1', port, method: options.method ?? 'GET', path: target, headers: options.headers, agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json: <T>() => JSON.parse(body.toString('utf8')) as T,
        });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer to ${options.method ?? 'GET'} ${target} within ${limitMs} ms`));
    }, limitMs);
    function fail(error: Error): void {
      clearTimeout(timer);
      reject(error);
    }
    req.on('error', fail);
    const { body } = options;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** A response hashed while it streams, never held whole. */
export interface HashedReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: number;
  readonly sha256: string;
}

/** Like `call`, but the answer body is hashed as it arrives (for large downloads). */
export function callHashed(port: number, target: string, options: Omit<CallOptions, 'body'> = {}): Promise<HashedReply> {
  return new Promise((resolve, reject) => {
    const limitMs = options.limitMs ?? 60_000;
    const req = http.request({
      host: '127.0.0.1', port, method: options.method ?? 'GET', path: target, headers: options.headers, agent: false,
    }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, sha256: hash.digest('hex') });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no complete answer to ${target} within ${limitMs} ms`));
    }, limitMs);
    function fail(error: Error): void {
      clearTimeout(timer);
      reject(error);
    }
    req.on('error', fail);
    req.end();
  });
}

/** sha256 (hex) and length of everything `stream` yields. */
export async function hashStream(stream: Readable): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    hash.update(chunk);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * The value of one Prometheus sample in exposition text: `name` with exactly the given labels
 * (in any order); `undefined` when there is no such sample.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const have = (match[2] ?? '').split(/,(?=[a-zA-Z_]\w*=")/).filter(Boolean).sort().join(',');
    if (have === wanted) return Number(match[3]);
  }
  return undefined;
}

/** The admin `/metrics` text of a sidecar. */
export async function scrapeMetrics(adminPort: number): Promise<string> {
  const reply = await call(adminPort, '/metrics');
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}`);
  return reply.body.toString('utf8');
}

/** A port nothing listens on now: bind one on 127.0.0.1, keep the number, close it. */
export async function closedPort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** `count` distinct ports that were free a moment ago (bound together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Resolves true when a TCP connection to 127.0.0.1:port is refused, false when it is accepted. */
export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** Resolves with the number of connections `server` holds now. */
export function connectionCount(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.getConnections((error, count) => (error ? reject(error) : resolve(count)));
  });
}

/** Sockets an agent has handed out and not yet got back (requests in flight towards the upstream). */
export function agentActiveSockets(agent: http.Agent): number {
  return Object.values(agent.sockets).reduce((sum, list) => sum + (list?.length ?? 0), 0);
}

/** The bearer token an `_echo` answer shows the upstream received. */
export function echoedToken(echo: { headers?: Record<string, unknown> }): string {
  const authorization = echo.headers?.authorization;
  const value = typeof authorization === 'string' ? authorization : '';
  const match = /^Bearer (\S+)$/.exec(value);
  if (match === null) throw new Error('the upstream received no bearer token');
  return match[1] as string;
}

/** A TCP gate in front of one port: it holds every connection until `open()`, then passes it through. */
export interface TcpGate {
  readonly port: number;
  /** Connections accepted so far (held or passed through). */
  readonly connections: number;
  /** Connections waiting for `open()`. */
  readonly held: number;
  /** Lets the held connections, and every later one, through to the target. */
  open(): void;
  /** Stops listening and cuts every connection. */
  close(): Promise<void>;
}

/**
 * Starts a TCP gate on 127.0.0.1 in front of `targetHost:targetPort`. It works below TLS and HTTP
 * (a held TLS handshake simply waits), so a test can hold a token request exactly as long as it
 * wants (e.g. to keep a start cold) without faking the token endpoint. Bytes pass unchanged.
 */
export function startTcpGate(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpGate> {
  const sockets = new Set<Socket>();
  const waiting: Socket[] = [];
  let isOpen = false;
  let connections = 0;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  };
  const pass = (client: Socket): void => {
    if (client.destroyed) return;
    const target = connect(targetPort, targetHost);
    track(target);
    target.on('close', () => client.destroy());
    client.on('close', () => target.destroy());
    client.pipe(target).pipe(client);
    client.resume();
  };
  const server = createServer((client) => {
    connections++;
    track(client);
    client.pause();
    if (isOpen) pass(client);
    else waiting.push(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        get connections() { return connections; },
        get held() { return waiting.filter((s) => !s.destroyed).length; },
        open() {
          isOpen = true;
          for (const client of waiting.splice(0)) pass(client);
        },
        close() {
          return new Promise((done) => {
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
          });
        },
      });
    });
  });
}

/**
 * Waits until `value()` has stayed the same for `steadyMs` (read every `everyMs`) and returns
 * that value; fails with `what` after `limitMs`. For "this transfer has stopped moving" under
 * back-pressure: a bounded wait, not a timing assertion (what the test asserts is the value).
 */
export async function waitUntilSteady(value: () => number, what: string, steadyMs = 500, limitMs = 10_000, everyMs = 25): Promise<number> {
  const giveUpAt = Date.now() + limitMs;
  let last = value();
  let since = Date.now();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= steadyMs) {
      return now;
    }
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting until ${what} (still moving at ${now})`);
  }
}

/** Resolves or rejects like `promise`, but rejects with `what` when it has not settled within `limitMs`. */
export function withLimit<T>(promise: Promise<T>, what: string, limitMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what} (${limitMs} ms)`)), limitMs);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}
