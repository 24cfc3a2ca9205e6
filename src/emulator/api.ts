/**
 * The LogicNets emulator's API routes: every path under `/<company>/` but the token endpoint.
 * They answer 403 without a bearer token, 401 with an unknown, revoked or expired one, and
 * otherwise 200 JSON describing the request (method, query, client, body size and SHA-256), plus
 * a few test endpoints: `_echo` (headers too), `_download` (a deterministic stream), `_slow`
 * (a late answer) and `_status` (a chosen status). Test and demo code only; never logs a token.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../lib/clock.js';
import { createDeterministicStream } from '../lib/deterministic-stream.js';
import { sendJson } from './http.js';
import type { IssuedToken } from './token-endpoint.js';

/** Options of `EmulatorApi`. */
export interface EmulatorApiOptions {
  /** The company path segment the routes live under. */
  company: string;
  clock: Clock;
  /** The issued token for a bearer token, if the token endpoint issued it and it was not revoked. */
  findToken: (accessToken: string) => IssuedToken | undefined;
}

/** Longest wait `_slow` accepts. */
const MAX_SLOW_MS = 10 * 60 * 1000;
/** Largest `_download` size (16 GiB). */
const MAX_DOWNLOAD_BYTES = 16 * 1024 ** 3;

/**
 * The API routes. Safe for concurrent requests; each request body is streamed, never buffered.
 * `close()` cancels the `_slow` answers still waiting.
 */
export class EmulatorApi {
  readonly #company: string;
  readonly #clock: Clock;
  readonly #findToken: (accessToken: string) => IssuedToken | undefined;
  readonly #slowTimers = new Set<NodeJS.Timeout>();

  constructor(options: EmulatorApiOptions) {
    this.#company = options.company;
    this.#clock = options.clock;
    this.#findToken = options.findToken;
  }

  /** Cancels every `_slow` answer still waiting. */
  close(): void {
    for (const timer of this.#slowTimers) clearTimeout(timer);
    this.#slowTimers.clear();
  }

  /** Answers one request to a path under `/<company>/`; `url` is the request's parsed URL. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (match === null) {
      sendJson(res, 403, { error: 'forbidden', error_description: 'Authentication is required: send Authorization: Bearer <access token>.' });
      return;
    }
    const issued = this.#findToken(match[1]!);
    if (issued === undefined || issued.expiresAtMs <= this.#clock.now()) {
      sendJson(res, 401, { error: 'invalid_token', error_description: 'The access token is unknown, revoked or expired.' },
        { 'WWW-Authenticate': `Bearer realm="${this.#company}", error="invalid_token"` });
      return;
    }
    const endpoint = url.pathname.slice(this.#company.length + 2);
    const query = queryObject(url.searchParams);
    if (endpoint === '_download') {
      const bytes = Number(url.searchParams.get('bytes') ?? '0');
      const seed = Number(url.searchParams.get('seed') ?? '1');
      if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_DOWNLOAD_BYTES || !Number.isSafeInteger(seed)) {
        sendJson(res, 400, { error: 'bad_request', error_description: 'bytes and seed must be non-negative integers.' });
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes) });
      const stream = createDeterministicStream(bytes, seed);
      res.on('close', () => stream.destroy());
      stream.pipe(res);
      return;
    }
    if (endpoint === '_slow') {
      const ms = Math.min(Math.max(Number(url.searchParams.get('ms') ?? '0') || 0, 0), MAX_SLOW_MS);
      // Real time, on purpose: it stands for a slow network peer, which no injected clock moves.
      const timer = setTimeout(() => {
        this.#slowTimers.delete(timer);
        sendJson(res, 200, { ok: true, company: this.#company, path: url.pathname, waitedMs: ms });
      }, ms);
      this.#slowTimers.add(timer);
      res.on('close', () => {
        clearTimeout(timer);
        this.#slowTimers.delete(timer);
      });
      return;
    }
    if (endpoint === '_status') {
      const code = Number(url.searchParams.get('code') ?? '200');
      const status = Number.isInteger(code) && code >= 200 && code <= 599 ? code : 400;
      sendJson(res, status, { ok: status < 400, company: this.#company, path: url.pathname, status });
      return;
    }
    const body = await hashBody(req);
    if (body === undefined) return; // the client went away
    const common = { ok: true, company: this.#company, path: url.pathname, method: req.method, query, clientId: issued.clientId, ...body };
    if (endpoint === '_echo') {
      sendJson(res, 200, { ...common, url: req.url, httpVersion: req.httpVersion, headers: req.headers, rawHeaders: req.rawHeaders });
      return;
    }
    sendJson(res, 200, common);
  }
}

function queryObject(search: URLSearchParams): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const name of new Set(search.keys())) {
    const values = search.getAll(name);
    query[name] = values.length === 1 ? values[0]! : values;
  }
  return query;
}

/** Reads a request body to its end, hashing as it goes; `undefined` when the client aborted. */
async function hashBody(req: IncomingMessage): Promise<{ bodyBytes: number; bodySha256: string } | undefined> {
  const hash = createHash('sha256');
  let bodyBytes = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bodyBytes += chunk.length;
    }
  } catch {
    return undefined;
  }
  return { bodyBytes, bodySha256: hash.digest('hex') };
}
