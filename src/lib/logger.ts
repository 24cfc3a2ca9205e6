/**
 * The logger: pino JSON lines. Secrets are redacted by path at every level, so a token, an
 * assertion, a key or an `Authorization` header can never reach a log line even at `trace`.
 */
import { pino } from 'pino';
import type { DestinationStream, Logger, LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/** Field paths that are always censored, wherever they appear in a log object (up to two levels). */
export const REDACTED_PATHS: readonly string[] = [
  'accessToken', 'access_token', 'token', 'assertion', 'client_assertion', 'clientAssertion',
  'privateKey', 'private_key', 'key', 'authorization', 'Authorization', 'password', 'secret',
  '*.accessToken', '*.access_token', '*.token', '*.assertion', '*.client_assertion',
  '*.clientAssertion', '*.privateKey', '*.private_key', '*.key', '*.authorization',
  '*.Authorization', '*.password', '*.secret',
  'headers.authorization', 'headers["proxy-authorization"]', 'req.headers.authorization',
  'req.headers["proxy-authorization"]', 'res.headers["set-cookie"]',
];

/** The `level` field as `createLogger`'s formatter writes it; `RequestLog` writes the same. */
const LEVEL_FIELD = (label: string): { level: string } => ({ level: label });

/**
 * Options for `createLogger`. `destination` defaults to stdout with asynchronous writes and no
 * batching threshold: a quiet sidecar's lines appear at once (`kubectl logs`), and lines written
 * while a write is under way go out together.
 */
export interface LoggerOptions {
  level: LevelWithSilent;
  destination?: DestinationStream;
  name?: string;
}

/** Where a logger made by `createLogger` writes, and the base fields pino's `bindings()` leaves out. */
interface LoggerOutput {
  readonly destination: DestinationStream;
  readonly base: Readonly<Record<string, unknown>>;
}

/**
 * The output of every logger `createLogger` made and of every child of one (registered through
 * pino's public `onChild` hook), for `RequestLog`: pino has no public accessor for a logger's
 * stream.
 */
const outputs = new WeakMap<Logger, LoggerOutput>();

/** Builds the root logger. Child loggers inherit its redaction. */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  const output: LoggerOutput = { destination, base: { pid: process.pid } };
  const logger = pino(
    {
      name: options.name ?? 'logicnets-token-proxy',
      level: options.level,
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
      base: { ...output.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: LEVEL_FIELD },
      onChild: (child) => { outputs.set(child, output); },
    },
    destination,
  );
  outputs.set(logger, output);
  return logger;
}

/** Strips the query and fragment of a URL for logging (the GET token request carries the assertion there). */
export function urlForLog(url: string | URL): string {
  try {
    const parsed = new URL(String(url));
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '[unparseable url]';
  }
}

/** The fields of one per-request line. None can hold a secret: the path carries no query. */
export interface RequestLine {
  readonly requestId: string;
  readonly method: string | undefined;
  /** Path without query. */
  readonly path: string;
  readonly status: number;
  readonly durationMs: number;
  /** The response did not complete (the client or the upstream went away). */
  readonly aborted: boolean;
}

/**
 * The per-request `info` line of a logger made by `createLogger` (or a child of it), with the
 * bindings it has when the `RequestLog` is made, written the
 * way pino would write `logger.info({requestId, method, path, status, durationMs, aborted}, msg)`
 * (same fields, order, time format and bindings) but cheaper: the line is formatted directly, and
 * the lines of one event-loop turn reach the destination in one write (issue 5: pino's generic
 * formatting and one destination write per request were the largest part of the request line's
 * cost). Redaction is not needed: the fields are fixed and never hold a secret. Lines are written
 * at the end of the current event-loop turn, in order. Use from one thread; cheap enough for every
 * request; `write` never throws for a destination error (the destination reports those).
 */
export class RequestLog {
  readonly #logger: Logger;
  readonly #destination: DestinationStream | undefined;
  readonly #message: string;
  readonly #bindings: string;
  readonly #prefix: string;
  readonly #suffix: string;
  #pending: string[] = [];
  #scheduled = false;
  #lastMs = -1;
  #lastTime = '';

  constructor(logger: Logger, message = 'request') {
    this.#logger = logger;
    const output = outputs.get(logger);
    this.#destination = output?.destination;
    this.#message = message;
    // The logger's bindings as pino writes them after "time": its base fields, then the name and
    // every child's bindings, in order (`bindings()` returns them redacted, without the base).
    const bindings = JSON.stringify({ ...output?.base, ...logger.bindings() }).slice(1, -1);
    this.#bindings = bindings === '' ? '' : `,${bindings}`;
    this.#prefix = `{"level":${JSON.stringify(LEVEL_FIELD('info').level)},"time":"`;
    this.#suffix = `,"msg":${JSON.stringify(message)}}\n`;
  }

  /** Queues one line when `info` is enabled for the logger. */
  write(line: RequestLine): void {
    const logger = this.#logger;
    if (logger.levelVal > 30) return;
    const now = Date.now();
    if (now !== this.#lastMs) {
      this.#lastMs = now;
      this.#lastTime = new Date(now).toISOString();
    }
    const duration = Number.isFinite(line.durationMs) ? String(line.durationMs) : 'null';
    this.#pending.push(`${this.#prefix}${this.#lastTime}"${this.#bindings},"requestId":${JSON.stringify(line.requestId)}`
      + `${line.method === undefined ? '' : `,"method":${JSON.stringify(line.method)}`},"path":${JSON.stringify(line.path)}`
      + `,"status":${line.status},"durationMs":${duration}${line.aborted ? ',"aborted":true' : ''}${this.#suffix}`);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushSoon);
    }
  }

  /** Writes the queued lines now (e.g. before the process exits). */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const text = this.#pending.length === 1 ? this.#pending[0] as string : this.#pending.join('');
    this.#pending = [];
    if (this.#destination === undefined) {
      this.#logger.warn({ message: this.#message }, 'the request log has no destination stream (the logger was not made ' +
        'by createLogger); request lines were dropped');
      return;
    }
    this.#destination.write(text);
  }

  readonly #flushSoon = (): void => {
    if (this.#scheduled) this.flush();
  };
}
