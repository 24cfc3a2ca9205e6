/**
 * How the LogicNets emulator answers: a JSON body, an OAuth error answer (`OAuthFailure`, thrown
 * by the token endpoint's checks and turned into RFC 6749 5.2 JSON), and a connection cut with a
 * TCP RST. Shared by the emulator's token endpoint and API routes; test and demo code only.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** An answer the token endpoint gives instead of a token: HTTP status, RFC 6749 `error` and `error_description`. */
export class OAuthFailure extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
    this.name = 'OAuthFailure';
  }
}

/** An `invalid_client` answer (HTTP 401) with `description`. */
export function invalidClient(description: string): OAuthFailure {
  return new OAuthFailure(401, 'invalid_client', description);
}

/**
 * Answers with `body` as JSON (`Content-Type` and `Content-Length` set, after `headers`). Does
 * nothing when the response was already started or destroyed, so a late answer is harmless.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/** Cuts a connection with a TCP RST where the socket allows it, else destroys it. */
export function resetSocket(socket: Socket): void {
  const plain = socket as Socket & { encrypted?: boolean };
  if (!plain.encrypted && typeof plain.resetAndDestroy === 'function') {
    try {
      plain.resetAndDestroy();
      return;
    } catch {
      // fall through
    }
  }
  socket.destroy();
}
