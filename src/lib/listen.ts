/**
 * Starting a listener: every server of the sidecar (the proxy, the admin port, the emulator)
 * listens through `listenOn`, and the sidecar's own listeners report a failure with
 * `cannotListen`, which names the address and the settings to change.
 */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ProxyError } from './errors.js';

/**
 * Starts `server` listening on `host:port` (port 0: any free port) and resolves with the bound
 * port; rejects with Node's error (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`) when it cannot. Its
 * one-off `'error'` listener is removed once listening.
 */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * The start-up error of a listener (`what`: "the proxy") that cannot listen on `host:port`:
 * `config_invalid`, with Node's code and `settings`, the settings to change as the wiring names them.
 */
export function cannotListen(what: string, host: string, port: number, settings: string, cause: unknown): ProxyError {
  const reason = (cause as NodeJS.ErrnoException | undefined)?.code ?? (cause as Error | undefined)?.message ?? String(cause);
  return new ProxyError('config_invalid', `${what} cannot listen on ${host}:${port} (${reason}); set ${settings} to a free address.`,
    { status: 500, proxyStatus: 'proxy_configuration_error', cause });
}
