// A real forward proxy (npm `proxy`, which handles CONNECT like Squid) on 127.0.0.1 for egress
// tests, with a private "hosts file": CONNECT targets whose host name is in `hosts` are sent to the
// given address instead, so a made-up name (`logicnets.test`) is resolvable by the proxy alone and
// the sidecar can reach it only through the tunnel. Unknown names are refused (404) without a DNS
// query. Records every CONNECT it sees.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createProxy } from 'proxy';

/** One CONNECT request as the proxy received it. */
export interface SeenConnect {
  /** `host:port` as the client asked for it (before the hosts-file rewrite). */
  readonly target: string;
  readonly proxyAuthorization: string | undefined;
}

/** A running proxy; `close()` stops it and cuts every tunnel. */
export interface ConnectProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>` (`https://` with `tls`), with `user:password@` when given. */
  url(credentials?: { user: string; password: string }): string;
  readonly connects: SeenConnect[];
  close(): Promise<void>;
}

/** Options of `startConnectProxy`. */
export interface ConnectProxyOptions {
  /** Host name -> address the proxy connects to for it (e.g. `{ 'logicnets.test': '127.0.0.1' }`). */
  readonly hosts: Readonly<Record<string, string>>;
  /** Basic credentials the proxy requires (407 without them). */
  readonly credentials?: { user: string; password: string };
  /** Serve the proxy itself over TLS (an `https://` proxy) with this certificate and key. */
  readonly tls?: { cert: string; key: string };
}

/** Starts the proxy on 127.0.0.1, any free port. */
export async function startConnectProxy(options: ConnectProxyOptions): Promise<ConnectProxy> {
  const server = createProxy(options.tls === undefined ? http.createServer() : https.createServer(options.tls));
  const sockets = new Set<Socket>();
  const connects: SeenConnect[] = [];
  server.on(options.tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  if (options.credentials !== undefined) {
    const expected = `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.password}`).toString('base64')}`;
    server.authenticate = (req) => req.headers['proxy-authorization'] === expected;
  }
  // Runs before the proxy's own listener, which reads `req.url` only after authenticating.
  server.prependListener('connect', (req: http.IncomingMessage) => {
    const target = req.url ?? '';
    connects.push({ target, proxyAuthorization: req.headers['proxy-authorization'] });
    const colon = target.lastIndexOf(':');
    const host = target.slice(0, colon).replace(/^\[|\]$/g, '').toLowerCase();
    const address = options.hosts[host];
    // An unknown name goes to port 0 of loopback: refused at once, never a DNS query.
    req.url = address === undefined ? '127.0.0.1:0' : `${address}:${target.slice(colon + 1)}`;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (credentials) => `${options.tls === undefined ? 'http' : 'https'}://${credentials === undefined ? '' : `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@`}127.0.0.1:${port}`,
    connects,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    }),
  };
}
