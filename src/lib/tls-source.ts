/**
 * The TLS material of one upstream as the agents use it: the extra CA file and the client
 * certificate and key files, turned into one secure context and re-read when a file changes
 * (a renewed certificate from cert-manager, a rotated CA). A broken change keeps the previous
 * context in use and is logged once; a good one replaces it and tells the listeners, so a token
 * cache can retry at once and the agents make their next connections with it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { SecureContext } from 'node:tls';
import { checkClientCertificate, isCertificateProblem } from './client-certificate.js';
import type { ClientCertificate } from './client-certificate.js';
import type { Logger } from './logger.js';
import { secureContextFor } from './tls-trust.js';
import { WatchedFiles } from './watched-files.js';

/** Larger files cannot be a CA bundle or a certificate; they are refused without parsing. */
const MAX_FILE_BYTES = 1024 * 1024;

/** The files of one upstream's TLS material; each optional, the certificate and key together. */
export interface TlsFiles {
  readonly caFile?: string;
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
}

/** The secure context in force and a number that grows with every replacement. */
export interface TlsContextVersion {
  /** `undefined`: Node's default context (system CAs, no client certificate). */
  readonly context: SecureContext | undefined;
  /** 0 at start, +1 per reload; connections made with different generations are never pooled together. */
  readonly generation: number;
}

/** Anything that hands out the current secure context (a `TlsSource`, or a fixed one in tests). */
export interface TlsContextProvider {
  current(): TlsContextVersion;
}

/** A secure context that never changes. */
export function fixedTlsContext(context: SecureContext | undefined): TlsContextProvider {
  const version = { context, generation: 0 };
  return { current: () => version };
}

/** Options of `TlsSource.open`. */
export interface TlsSourceOptions {
  readonly logger: Logger;
  /** Interval of the polling fallback, in ms (default 10 000). */
  readonly pollIntervalMs?: number;
}

/**
 * The current TLS context of one upstream. `current()` is synchronous and never throws; listeners
 * registered with `onChange` run after each successful reload (never for a failed one). Safe to
 * share between any number of agents. `close()` stops watching; `current()` keeps working.
 */
export class TlsSource implements TlsContextProvider {
  readonly #files: TlsFiles;
  readonly #logger: Logger;
  readonly #listeners = new Set<() => void>();
  #version: TlsContextVersion;
  #client: ClientCertificate | undefined;
  /** sha256 of the content of the files the current context came from. */
  #loaded: string;
  /** The last failure reported, so a broken state is logged once, not on every poll. */
  #failure: string | undefined;
  #watch: WatchedFiles | undefined;

  private constructor(files: TlsFiles, logger: Logger, version: TlsContextVersion, loaded: string, client: ClientCertificate | undefined) {
    this.#files = files;
    this.#logger = logger;
    this.#version = version;
    this.#loaded = loaded;
    this.#client = client;
  }

  /**
   * Reads the files, builds the context and, when there are files, starts watching them. Throws an
   * `Error` saying which file is wrong and how (the caller names the setting).
   */
  static async open(files: TlsFiles, options: TlsSourceOptions): Promise<TlsSource> {
    const read = await readMaterial(files);
    if (typeof read === 'string') throw new Error(read);
    const source = new TlsSource(files, options.logger, { context: read.context, generation: 0 }, read.content, read.client);
    const watched = [files.caFile, files.clientCertFile, files.clientKeyFile].filter((f): f is string => f !== undefined);
    if (watched.length > 0) {
      source.#watch = new WatchedFiles({
        files: watched,
        what: 'the TLS files (CA, client certificate)',
        logger: options.logger,
        pollIntervalMs: options.pollIntervalMs,
        onChange: () => source.#reload(),
      });
      await source.#watch.start();
    }
    return source;
  }

  /** The context to make new connections with. */
  current(): TlsContextVersion {
    return this.#version;
  }

  /** The client certificate in use (subject, issuer, expiry), or undefined without one. */
  get clientCertificate(): string | undefined {
    return this.#client?.description;
  }

  /** Calls `listener` after every successful reload; returns a function that unregisters it. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching. Idempotent. */
  close(): void {
    this.#watch?.close();
    this.#listeners.clear();
  }

  async #reload(): Promise<boolean> {
    const read = await readMaterial(this.#files);
    if (typeof read === 'string') {
      if (this.#failure !== read) {
        this.#failure = read;
        this.#logger.error({ code: 'tls_files_invalid' }, `${read}; the previous TLS files stay in use`);
      }
      return !read.startsWith('cannot read');
    }
    this.#failure = undefined;
    if (read.content === this.#loaded) return true;
    this.#loaded = read.content;
    this.#client = read.client;
    this.#version = { context: read.context, generation: this.#version.generation + 1 };
    this.#logger.info({ generation: this.#version.generation, clientCertificate: read.client?.description },
      'reloaded the TLS files (CA, client certificate) after they changed; new connections use them');
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (error) {
        this.#logger.error({ err: { name: (error as Error).name } }, 'a listener of the TLS reload failed');
      }
    }
    return true;
  }
}

/** Reads and checks the files; a string is the problem (naming the file, never its content). */
async function readMaterial(files: TlsFiles): Promise<{ context: SecureContext | undefined; content: string; client?: ClientCertificate } | string> {
  const texts: Partial<Record<keyof TlsFiles, string>> = {};
  for (const which of ['caFile', 'clientCertFile', 'clientKeyFile'] as const) {
    const file = files[which];
    if (file === undefined) continue;
    try {
      const text = await readFile(file, 'utf8');
      if (text.length > MAX_FILE_BYTES) return `the file ${file} is ${text.length} bytes, far larger than a certificate or key: is it the right file?`;
      texts[which] = text;
    } catch (error) {
      return `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
  if ((texts.clientCertFile === undefined) !== (texts.clientKeyFile === undefined)) {
    return 'a client certificate needs both the certificate file and the key file';
  }
  let client: ClientCertificate | undefined;
  if (texts.clientCertFile !== undefined && texts.clientKeyFile !== undefined) {
    const checked = checkClientCertificate(texts.clientCertFile, texts.clientKeyFile);
    if (isCertificateProblem(checked)) {
      const file = checked.which === 'key' ? files.clientKeyFile : files.clientCertFile;
      return checked.which === 'pair'
        ? `the client certificate ${files.clientCertFile} and the key ${files.clientKeyFile}: ${checked.message}`
        : `${file}: ${checked.message}`;
    }
    client = checked;
  }
  if (texts.caFile !== undefined && !texts.caFile.includes('-----BEGIN CERTIFICATE-----')) {
    return `${files.caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`;
  }
  let context: SecureContext | undefined;
  try {
    context = secureContextFor({ ca: texts.caFile, client });
  } catch (error) {
    return `the TLS files cannot be used (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
  const content = createHash('sha256')
    .update(`${texts.caFile ?? ''}\0${texts.clientCertFile ?? ''}\0${texts.clientKeyFile ?? ''}`).digest('hex');
  return { context, content, client };
}
