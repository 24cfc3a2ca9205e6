/**
 * Noticing that files changed, the way a mounted Kubernetes Secret changes: the Secret's folder is
 * swapped through a `..data` symlink, so each file's folder is watched (`fs.watch`, events settle
 * for a moment before a check) and every file is also polled as a fallback (resolved path, inode,
 * size and change times). What a change means is the owner's business: it gets `onChange()`.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from './logger.js';

/** Default interval of the polling fallback, in milliseconds. */
export const DEFAULT_POLL_INTERVAL_MS = 10_000;

/** Quiet time after a folder event before the files are checked, so a write in progress settles. */
const WATCH_SETTLE_MS = 50;

/** Options of `WatchedFiles`. */
export interface WatchedFilesOptions {
  readonly files: readonly string[];
  /**
   * Called after a folder event (`force`) or when a polled file's identity changed. Resolves true
   * when the files could be read (their identity is then remembered, so polling stays quiet until
   * they change again). Never runs twice at once; a change seen meanwhile runs it once more after.
   */
  readonly onChange: (force: boolean) => Promise<boolean>;
  /** Names the files in log lines, e.g. `the client certificate`. */
  readonly what: string;
  readonly logger: Logger;
  /** Interval of the polling fallback, in ms (default 10 000). */
  readonly pollIntervalMs?: number;
}

/**
 * Watches a set of files until `close()`. Timers are `unref()`ed, so a watch never keeps the
 * process alive. `start()` remembers the files' identity first, so only later changes count.
 */
export class WatchedFiles {
  readonly #options: WatchedFilesOptions;
  readonly #watchers: FSWatcher[] = [];
  #fingerprint: string | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #recheck: boolean | undefined;
  #closed = false;

  constructor(options: WatchedFilesOptions) {
    this.#options = options;
  }

  /** Starts watching the files' folders and polling. */
  async start(): Promise<void> {
    this.#fingerprint = await fingerprintOf(this.#options.files).catch(() => undefined);
    const { logger, what } = this.#options;
    for (const dir of new Set(this.#options.files.map((file) => dirname(file)))) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#scheduleSettledCheck());
        watcher.on('error', (error) => {
          logger.warn({ dir, code: (error as NodeJS.ErrnoException).code }, `stopped watching the folder of ${what}; changes are still picked up by polling`);
          watcher.close();
        });
        this.#watchers.push(watcher);
      } catch (error) {
        logger.warn({ dir, code: (error as NodeJS.ErrnoException).code }, `cannot watch the folder of ${what}; changes are picked up by polling only`);
      }
    }
    this.#pollTimer = setInterval(() => this.#check(false), Math.max(10, this.#options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS));
    this.#pollTimer.unref();
  }

  /** Stops watching and polling. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.splice(0)) watcher.close();
    clearInterval(this.#pollTimer);
    clearTimeout(this.#settleTimer);
  }

  #scheduleSettledCheck(): void {
    if (this.#closed) return;
    clearTimeout(this.#settleTimer);
    this.#settleTimer = setTimeout(() => this.#check(true), WATCH_SETTLE_MS);
    this.#settleTimer.unref();
  }

  #check(force: boolean): void {
    if (this.#closed) return;
    if (this.#checking !== undefined) {
      this.#recheck = (this.#recheck ?? false) || force;
      return;
    }
    this.#checking = this.#run(force)
      .catch((error: unknown) => {
        this.#options.logger.error({ code: (error as NodeJS.ErrnoException).code }, `unexpected failure while checking ${this.#options.what}`);
      })
      .finally(() => {
        this.#checking = undefined;
        const again = this.#recheck;
        this.#recheck = undefined;
        if (again !== undefined) this.#check(again);
      });
  }

  async #run(force: boolean): Promise<void> {
    const fingerprint = await fingerprintOf(this.#options.files).catch(() => undefined);
    if (!force && fingerprint !== undefined && fingerprint === this.#fingerprint) return;
    const read = await this.#options.onChange(force);
    this.#fingerprint = read ? fingerprint : undefined;
  }
}

/** Identifies the files' current targets: resolved path, device, inode, size and change times. */
async function fingerprintOf(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(files.map(async (file) => {
    const target = await realpath(file);
    const info = await stat(target, { bigint: true });
    return `${target}|${info.dev}|${info.ino}|${info.size}|${info.mtimeNs}|${info.ctimeNs}`;
  }));
  return parts.join('\n');
}
