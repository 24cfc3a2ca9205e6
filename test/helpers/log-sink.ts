import { Writable } from 'node:stream';
import { createLogger } from '../../src/lib/logger.js';
import type { Logger } from '../../src/lib/logger.js';

/** A logger at `trace` writing into memory, for asserting what was (and was not) logged. */
export interface LogSink {
  logger: Logger;
  /** Everything written so far, as one string. */
  text(): string;
  /** Every line parsed as JSON. */
  entries(): Record<string, unknown>[];
}

export function makeLogSink(level: 'trace' | 'debug' | 'info' = 'trace'): LogSink {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = createLogger({ level, destination: stream });
  return {
    logger,
    text: () => chunks.join(''),
    entries: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/**
 * Asserts that none of `secrets` appears in the logged text, also as the JWT parts (header,
 * payload, signature) or the base64 body of a PEM key.
 */
export function secretFragments(secret: string): string[] {
  const fragments = [secret];
  if (secret.split('.').length === 3) fragments.push(...secret.split('.').filter((p) => p.length > 16));
  const pemBody = secret.match(/-----BEGIN [^-]+-----([\s\S]+?)-----END/);
  if (pemBody?.[1]) fragments.push(...pemBody[1].split(/\s+/).filter((l) => l.length > 40));
  return fragments;
}
