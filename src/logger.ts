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

/** Options for `createLogger`. `destination` defaults to stdout (asynchronous writes). */
export interface LoggerOptions {
  level: LevelWithSilent;
  destination?: DestinationStream;
  name?: string;
}

/** Builds the root logger. Child loggers inherit its redaction. */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return pino(
    {
      name: options.name ?? 'logicnets-token-proxy',
      level: options.level,
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
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
