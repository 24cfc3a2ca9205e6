/**
 * HTTP/1.1 on raw sockets, for tests where framing matters: a strict upstream that parses and
 * records every request it receives on each connection (so a request smuggled inside another's
 * body shows up as a request of its own), and a client that writes exact bytes and reads one
 * response.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** One request as the raw upstream parsed it. */
export interface RecordedRequest {
  readonly connection: number;
  readonly method: string;
  readonly target: string;
  /** Field names lower-cased, in order; duplicates kept. */
  readonly fields: readonly (readonly [string, string])[];
  readonly body: Buffer;
}

/** What the raw upstream does with a parsed request. */
export type RawHandler = (request: RecordedRequest, socket: net.Socket) => 'answer' | 'handled';

export interface RawUpstream {
  readonly port: number;
  /** Every request parsed, in order of arrival. */
  readonly requests: RecordedRequest[];
  /** Framing errors the upstream saw (it closes the connection after one). */
  readonly errors: string[];
  close(): Promise<void>;
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok';
const OK_HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n';

/** A strict HTTP/1.1 request parser over a growing buffer. Returns the request and the bytes it used, or undefined for "need more". */
function parseRequest(buffer: Buffer, connection: number): { request: RecordedRequest; used: number } | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const lines = buffer.subarray(0, end).toString('latin1').split('\r\n');
  const match = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? '');
  if (!match) throw new Error(`bad request line ${JSON.stringify(lines[0])}`);
  const fields: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /\s/.test(line.slice(0, colon))) throw new Error(`bad field line ${JSON.stringify(line)}`);
    fields.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  const lengths = fields.filter(([n]) => n === 'content-length');
  const codings = fields.filter(([n]) => n === 'transfer-encoding');
  if (lengths.length > 1) throw new Error('two Content-Length fields');
  if (lengths.length > 0 && codings.length > 0) throw new Error('Content-Length with Transfer-Encoding');
  let offset = end + 4;
  let body = Buffer.alloc(0);
  if (codings.length > 0) {
    if (codings.length > 1 || codings[0]![1] !== 'chunked') throw new Error(`coding ${codings.map((c) => c[1]).join('|')}`);
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buffer.indexOf('\r\n', offset);
      if (lineEnd === -1) return undefined;
      const size = /^([0-9a-fA-F]+)(?:;.*)?$/.exec(buffer.subarray(offset, lineEnd).toString('latin1'));
      if (!size) throw new Error('bad chunk size');
      const n = parseInt(size[1]!, 16);
      offset = lineEnd + 2;
      if (n === 0) {
        // trailer section
        for (;;) {
          const trailerEnd = buffer.indexOf('\r\n', offset);
          if (trailerEnd === -1) return undefined;
          const empty = trailerEnd === offset;
          offset = trailerEnd + 2;
          if (empty) break;
        }
        break;
      }
      if (buffer.length < offset + n + 2) return undefined;
      parts.push(buffer.subarray(offset, offset + n));
      if (buffer.subarray(offset + n, offset + n + 2).toString() !== '\r\n') throw new Error('bad chunk end');
      offset += n + 2;
    }
    body = Buffer.concat(parts);
  } else if (lengths.length === 1) {
    if (!/^\d+$/.test(lengths[0]![1])) throw new Error('bad Content-Length');
    const n = Number(lengths[0]![1]);
    if (buffer.length < offset + n) return undefined;
    body = Buffer.from(buffer.subarray(offset, offset + n));
    offset += n;
  }
  return { request: { connection, method: match[1]!, target: match[2]!, fields, body }, used: offset };
}

/** Starts the recording upstream on 127.0.0.1 (keep-alive; answers `200 ok` unless `handler` says it handled the request). */
export async function startRawUpstream(handler?: RawHandler): Promise<RawUpstream> {
  const requests: RecordedRequest[] = [];
  const errors: string[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const id = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      try {
        for (;;) {
          const parsed = parseRequest(buffer, id);
          if (parsed === undefined) return;
          buffer = buffer.subarray(parsed.used);
          requests.push(parsed.request);
          const action = handler?.(parsed.request, socket) ?? 'answer';
          if (action === 'answer') socket.write(parsed.request.method === 'HEAD' ? OK_HEAD : OK);
        }
      } catch (error) {
        errors.push((error as Error).message);
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    errors,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** One response as the raw client read it. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/**
 * Writes `bytes` on a new connection to `port` and reads one response (framed by its
 * Content-Length or chunked; none for HEAD), or until the sidecar closes. Rejects after `timeoutMs`.
 */
export function rawExchange(port: number, bytes: Buffer | string, options: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffer = Buffer.alloc(0);
    let done = false;
    const finish = (error?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) {
        reject(error);
        return;
      }
      const parsed = parseResponse(buffer, options.head === true, true);
      if (parsed === undefined) reject(new Error(`no complete response: ${JSON.stringify(buffer.toString('latin1').slice(0, 200))}`));
      else resolve(parsed);
    };
    const timer = setTimeout(() => finish(new Error('no response in time')), options.timeoutMs ?? 5000);
    socket.on('error', (error) => (buffer.length > 0 ? finish() : finish(error)));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (parseResponse(buffer, options.head === true, false) !== undefined) finish();
    });
    socket.on('end', () => finish());
    socket.write(bytes);
  });
}

function parseResponse(buffer: Buffer, head: boolean, atEnd: boolean): RawResponse | undefined {
  let start = 0;
  // Skip interim (1xx) responses.
  for (;;) {
    const end = buffer.indexOf('\r\n\r\n', start);
    if (end === -1) return undefined;
    const lines = buffer.subarray(start, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (!Number.isFinite(status)) return undefined;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const bodyStart = end + 4;
    if (status >= 100 && status < 200) {
      start = bodyStart;
      continue;
    }
    if (head || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buffer.length < bodyStart + n) return undefined;
      return { status, headers, body: buffer.subarray(bodyStart, bodyStart + n) };
    }
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      let offset = bodyStart;
      for (;;) {
        const lineEnd = buffer.indexOf('\r\n', offset);
        if (lineEnd === -1) return undefined;
        const n = parseInt(buffer.subarray(offset, lineEnd).toString('latin1'), 16);
        offset = lineEnd + 2;
        if (n === 0) return { status, headers, body: Buffer.concat(parts) };
        if (buffer.length < offset + n + 2) return undefined;
        parts.push(buffer.subarray(offset, offset + n));
        offset += n + 2;
      }
    }
    return atEnd ? { status, headers, body: buffer.subarray(bodyStart) } : undefined;
  }
}
