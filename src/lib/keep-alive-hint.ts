/**
 * The one place that reads Node's HTTP client internals: the server's `Keep-Alive: timeout=N`
 * hint of the response that just ended on a pooled socket. Node's agent reads it itself, but
 * applies it only below the agent's `timeout` option, and that option also times out sockets with
 * a request in flight, so it cannot be used as an idle timeout. No public API hands an agent the
 * response at the moment its socket turns idle (`keepSocketAlive(socket)` gets only the socket),
 * so this reads `socket._httpMessage.res.headers`, the field Node's own `keepSocketAlive` reads.
 * test/unit/lib/keep-alive-hint.test.ts fails if a Node release moves it.
 */
import type { Duplex } from 'node:stream';

/** Node's private link from a socket to the request it carries (and that request's response). */
interface SocketWithMessage {
  _httpMessage?: { res?: { headers?: Record<string, unknown> } } | null;
}

/**
 * The `Keep-Alive: timeout=N` hint of the response that just ended on `socket`, in ms, or
 * undefined when there was none (or Node no longer exposes it). Call it from `keepSocketAlive`.
 */
export function keepAliveHintMs(socket: Duplex): number | undefined {
  const header = (socket as Duplex & SocketWithMessage)._httpMessage?.res?.headers?.['keep-alive'];
  const seconds = typeof header === 'string' ? /(?:^|,)\s*timeout=(\d+)/i.exec(header)?.[1] : undefined;
  return seconds === undefined ? undefined : Number(seconds) * 1000;
}

/**
 * Sets the idle timeout of a socket that just turned free: `idleMs`, or a second before the
 * server's own hint when that is shorter. Returns false when the socket should not be kept (the
 * hint leaves less than a second). A timeout on a free socket makes Node's agent destroy it.
 */
export function setIdleTimeout(socket: Duplex, idleMs: number): boolean {
  const hint = keepAliveHintMs(socket);
  const limit = hint === undefined ? idleMs : Math.min(idleMs, hint - 1000);
  if (limit <= 0) return false;
  (socket as Duplex & { setTimeout(ms: number): unknown }).setTimeout(limit);
  return true;
}
