/**
 * The server user's RSA private key as the signer sees it: loaded at start (parsed and checked by
 * token/private-key.ts) and, when it comes from a file, re-read when the file changes. Kubernetes
 * updates a mounted Secret by swapping a `..data` symlink in the folder, so the folder is watched
 * and the file is also polled as a fallback. Error messages name where the key came from and what
 * is wrong, never the key's content.
 */
import { createHash, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { JWK } from 'jose';
import { errorCode, KeyError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { WatchedFiles } from '../lib/watched-files.js';
import { parsePrivateKey } from './private-key.js';

/** A key file larger than this cannot be a private key; it is refused without parsing. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

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
  /** Names the key in messages: the file path, or the setting that holds it inline (e.g. `privateKey (LOGICNETS_PRIVATE_KEY)`). */
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
  readonly #origin: string;
  readonly #logger: Logger;
  /** Hash of the content the current key came from. */
  #hash: string;
  /** Hash of the last content that failed, so a broken file is reported once, not on every poll. */
  #failedHash: string | undefined;
  /** Message of the last read failure, so a missing file is reported once, not on every poll. */
  #failedRead: string | undefined;
  /** Watches the key file (lib/watched-files.ts), if there is one. */
  #watched: WatchedFiles | undefined;
  #closed = false;
  readonly #listeners = new Set<() => void>();

  /** Where the key comes from, for messages: the file path or the setting that holds it inline. */
  get origin(): string {
    return this.#origin;
  }

  private constructor(key: KeyObject, hash: string, options: KeySourceOptions) {
    this.#key = key;
    this.#hash = hash;
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
      const file = options.file;
      source.#watched = new WatchedFiles({
        files: [file], what: 'the private key file', logger: options.logger, pollIntervalMs: options.pollIntervalMs,
        onChange: () => source.#reload(file),
      });
      await source.#watched.start();
      options.logger.debug({ origin: options.origin, file: basename(file) }, 'watching the private key file');
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
    this.#watched?.close();
  }

  /** Reads the key file after a change; resolves whether it could be read (a broken key counts as read). */
  async #reload(file: string): Promise<boolean> {
    let text: string;
    try {
      text = await readKeyFile(file);
    } catch (error) {
      this.#reportReadFailure(error as KeyError);
      return false;
    }
    this.#failedRead = undefined;
    const hash = sha256(text);
    if (hash === this.#hash || hash === this.#failedHash || this.#closed) return true;
    let key: KeyObject;
    try {
      key = parsePrivateKey(text, this.#origin);
    } catch (error) {
      this.#failedHash = hash;
      this.#logger.error({ origin: this.#origin, code: 'key_invalid' },
        `the private key file changed but the new key cannot be used, so the previous key stays in use: ${(error as Error).message}`);
      return true;
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
    return true;
  }

  #reportReadFailure(error: KeyError): void {
    if (this.#failedRead === error.message) return;
    this.#failedRead = error.message;
    this.#logger.error({ origin: this.#origin, code: 'key_invalid' },
      `${error.message}; the previous key stays in use`);
  }
}

