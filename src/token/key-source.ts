/**
 * The server user's RSA private key as the signer sees it: loaded at start (parsed and checked by
 * token/private-key.ts) and, when it comes from a file, re-read when the file changes. Kubernetes
 * updates a mounted Secret by swapping a `..data` symlink in the folder, so the folder is watched
 * and the file is also polled as a fallback. Error messages name where the key came from and what
 * is wrong, never the key's content.
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { JWK } from 'jose';
import { errorCode, KeyError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { parsePrivateKey } from './private-key.js';

/** A key file larger than this cannot be a private key; it is refused without parsing. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/** Default interval of the polling fallback, in milliseconds. */
const DEFAULT_POLL_INTERVAL_MS = 10_000;

/** Quiet time after a folder event before the file is read, so a write in progress settles. */
const WATCH_SETTLE_MS = 50;

/** Reads a key file, turning file system errors into `KeyError`s that name the file. */
async function readKeyFile(file: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (error) {
    throw fileError(file, error);
  }
  if (size > MAX_KEY_FILE_BYTES) {
    throw new KeyError(`the private key file ${file} is ${size} bytes, far larger than a key: is it the right file?`);
  }
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw fileError(file, error);
  }
}

function fileError(file: string, error: unknown): KeyError {
  const code = errorCode(error) ?? 'unreadable';
  const why = code === 'ENOENT' ? 'it does not exist'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied (check the file mode and the user the sidecar runs as)'
      : code === 'EISDIR' ? 'it is a folder, not a file'
        : `it cannot be read (${code})`;
  return new KeyError(`cannot read the private key file ${file}: ${why}`);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Options of `KeySource.open`. Exactly one of `file` and `inline` must be set. */
export interface KeySourceOptions {
  /** Path of the key file; it is watched and re-read when it changes. */
  file?: string;
  /** The key itself (PEM or JWK JSON); never reloaded. */
  inline?: string;
  /** Names the key in messages: the file path or the environment variable, e.g. `LOGICNETS_PRIVATE_KEY`. */
  origin: string;
  logger: Logger;
  /** Interval of the polling fallback for a key file, in ms (default 10 000). */
  pollIntervalMs?: number;
}

/**
 * The current private key. `current()` is synchronous and always returns a valid key: a reload
 * swaps the key atomically, and a broken new file keeps the previous key in use (an error is
 * logged). Safe to share between any number of callers. `close()` stops watching; the key stays
 * readable.
 */
export class KeySource {
  #key: KeyObject;
  readonly #file: string | undefined;
  readonly #origin: string;
  readonly #logger: Logger;
  /** Hash of the content the current key came from. */
  #hash: string;
  /** Hash of the last content that failed, so a broken file is reported once, not on every poll. */
  #failedHash: string | undefined;
  /** Message of the last read failure, so a missing file is reported once, not on every poll. */
  #failedRead: string | undefined;
  /** Identity (resolved path, inode, size, mtime) of the file at the last check. */
  #fingerprint: string | undefined;
  #watcher: FSWatcher | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #recheck = false;
  #closed = false;
  readonly #listeners = new Set<() => void>();

  private constructor(key: KeyObject, hash: string, options: KeySourceOptions) {
    this.#key = key;
    this.#hash = hash;
    this.#file = options.file;
    this.#origin = options.origin;
    this.#logger = options.logger;
  }

  /**
   * Loads the key and, for a file, starts watching it. Throws `KeyError` when the key cannot be
   * read or is not acceptable, so start-up fails with a message naming `origin`.
   */
  static async open(options: KeySourceOptions): Promise<KeySource> {
    if ((options.file === undefined) === (options.inline === undefined)) {
      throw new KeyError(`${options.origin}: give the private key either as a file or inline, not both or neither`);
    }
    const text = options.file !== undefined ? await readKeyFile(options.file) : (options.inline as string);
    const source = new KeySource(parsePrivateKey(text, options.origin), sha256(text), options);
    if (options.file !== undefined) {
      source.#fingerprint = await fingerprintOf(options.file).catch(() => undefined);
      source.#startWatching(options.file, options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    }
    return source;
  }

  /** The key to sign with now. Never throws. */
  current(): KeyObject {
    return this.#key;
  }

  /** The public half of the current key as a JWK (`kty`, `n`, `e`), for diagnostics and registration. */
  publicJwk(): JWK {
    const { kty, n, e } = createPublicKey(this.#key).export({ format: 'jwk' });
    return { kty, n, e };
  }

  /**
   * Calls `listener` after each reload that put a new key in use (not for an unchanged or a
   * broken file). Listeners are called synchronously, one after the other; one that throws is
   * logged and the others still run. Returns a function that removes the listener.
   */
  onReload(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching and polling. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#pollTimer);
    clearTimeout(this.#settleTimer);
  }

  #startWatching(file: string, pollIntervalMs: number): void {
    const dir = dirname(file);
    try {
      const watcher = watch(dir, { persistent: false }, () => this.#scheduleSettledCheck());
      watcher.on('error', (error) => {
        this.#logger.warn({ origin: this.#origin, dir, code: errorCode(error) ?? 'unreadable' },
          'stopped watching the private key folder; changes are still picked up by polling');
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = undefined;
      });
      this.#watcher = watcher;
    } catch (error) {
      this.#logger.warn({ origin: this.#origin, dir, code: errorCode(error) ?? 'unreadable' },
        'cannot watch the private key folder; changes are picked up by polling only');
    }
    this.#pollTimer = setInterval(() => this.#check(false), Math.max(10, pollIntervalMs));
    this.#pollTimer.unref();
    this.#logger.debug({ origin: this.#origin, file: basename(file), pollIntervalMs }, 'watching the private key file');
  }

  #scheduleSettledCheck(): void {
    if (this.#closed) return;
    clearTimeout(this.#settleTimer);
    this.#settleTimer = setTimeout(() => this.#check(true), WATCH_SETTLE_MS);
    this.#settleTimer.unref();
  }

  /** Runs one check at a time; a check asked for while one runs is run once afterwards. */
  #check(force: boolean): void {
    if (this.#closed || this.#file === undefined) return;
    if (this.#checking !== undefined) {
      this.#recheck ||= force;
      return;
    }
    const file = this.#file;
    this.#checking = this.#reload(file, force)
      .catch((error: unknown) => {
        this.#logger.error({ origin: this.#origin, code: errorCode(error) ?? 'unreadable' }, 'unexpected failure while checking the private key file');
      })
      .finally(() => {
        this.#checking = undefined;
        if (this.#recheck) {
          this.#recheck = false;
          this.#check(true);
        }
      });
  }

  async #reload(file: string, force: boolean): Promise<void> {
    let fingerprint: string;
    try {
      fingerprint = await fingerprintOf(file);
    } catch (error) {
      this.#reportReadFailure(fileError(file, error));
      return;
    }
    if (!force && fingerprint === this.#fingerprint) return;
    let text: string;
    try {
      text = await readKeyFile(file);
    } catch (error) {
      this.#reportReadFailure(error as KeyError);
      return;
    }
    this.#fingerprint = fingerprint;
    this.#failedRead = undefined;
    const hash = sha256(text);
    if (hash === this.#hash || hash === this.#failedHash || this.#closed) return;
    let key: KeyObject;
    try {
      key = parsePrivateKey(text, this.#origin);
    } catch (error) {
      this.#failedHash = hash;
      this.#logger.error({ origin: this.#origin, code: 'key_invalid' },
        `the private key file changed but the new key cannot be used, so the previous key stays in use: ${(error as Error).message}`);
      return;
    }
    this.#key = key;
    this.#hash = hash;
    this.#failedHash = undefined;
    this.#logger.info({ origin: this.#origin, modulusBits: key.asymmetricKeyDetails?.modulusLength },
      'reloaded the private key after its file changed');
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (error) {
        this.#logger.error({ origin: this.#origin, err: (error as Error).name }, 'a listener for key reloads failed');
      }
    }
  }

  #reportReadFailure(error: KeyError): void {
    if (this.#failedRead === error.message) return;
    this.#failedRead = error.message;
    this.#fingerprint = undefined;
    this.#logger.error({ origin: this.#origin, code: 'key_invalid' },
      `${error.message}; the previous key stays in use`);
  }
}

/** Identifies the file's current target: resolved path, device, inode, size and change times. */
async function fingerprintOf(file: string): Promise<string> {
  const target = await realpath(file);
  const info = await stat(target, { bigint: true });
  return `${target}|${info.dev}|${info.ino}|${info.size}|${info.mtimeNs}|${info.ctimeNs}`;
}
