/**
 * Graceful shutdown: on SIGTERM/SIGINT (or `POST /shutdown`) readiness fails at once, the proxy
 * keeps serving for the drain delay (a plain sidecar gets SIGTERM together with its app), then
 * stops accepting, lets in-flight requests finish up to the shutdown timeout, and cuts the rest.
 */
import type { Server } from 'node:http';
import type { Clock, Timer } from './lib/clock.js';
import type { Logger } from './lib/logger.js';

/** How often idle keep-alive connections are closed while draining, in milliseconds. */
export const IDLE_SWEEP_INTERVAL_MS = 100;
/** How long to wait for connections to go away after cutting them, in milliseconds. */
const CUT_GRACE_MS = 1000;

/** Options for `Lifecycle`. */
export interface LifecycleOptions {
  /** Timers for the delay, the timeout and the idle sweep (`systemClock` in production). */
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long to keep serving after shutdown starts, before the listeners close. */
  readonly shutdownDelayMs: number;
  /** How long in-flight requests get to finish once the listeners are closed. */
  readonly shutdownTimeoutMs: number;
}

/**
 * A listener the lifecycle drains. The listener owns its requests: which are in flight, which
 * responses end their connection, closing each connection as it turns idle. The lifecycle owns
 * the schedule: the drain delay, the timeout, the idle sweep and the cut. `ProxyServer` is one.
 */
export interface Drainable {
  /** The underlying server: for the idle sweep, connection counts and the cut. */
  readonly server: Server;
  /**
   * Stops accepting and closes idle connections; from now on every response whose head is not
   * sent yet ends its connection (`Connection: close`) and each connection closes once idle.
   * Resolves once every connection is gone.
   */
  close(): Promise<void>;
  /** Requests in flight now. */
  inFlight(): number;
}

/**
 * A listener to drain. `close`, if given, runs after the listener is closed and its connections are
 * gone (for the owner's own clean-up, e.g. upstream agents); a failure there is logged, not thrown.
 */
export interface DrainTarget {
  readonly listener: Drainable;
  readonly close?: () => Promise<void>;
}

/**
 * The process's shutdown state machine. `draining` turns true the moment `shutdown()` is first
 * called and never back. `shutdown()` runs once: later calls return the same promise, so a second
 * signal or a `POST /shutdown` during a drain is harmless. Not meant to be shared between processes
 * of the sidecar; one instance per process.
 */
export class Lifecycle {
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #delayMs: number;
  readonly #timeoutMs: number;
  #draining = false;
  #done: Promise<void> | undefined;

  constructor(options: LifecycleOptions) {
    this.#clock = options.clock;
    this.#logger = options.logger.child({ component: 'lifecycle' });
    this.#delayMs = Math.max(0, options.shutdownDelayMs);
    this.#timeoutMs = Math.max(0, options.shutdownTimeoutMs);
  }

  /** Whether shutdown has started (`/readyz` answers 503 from then on). */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Drains `servers` (the proxy listeners) and resolves when they are closed: sets `draining` at
   * once, keeps serving for `shutdownDelayMs`, closes the listeners (`Drainable.close`: they end
   * their connections as requests finish) and sweeps idle connections every
   * `IDLE_SWEEP_INTERVAL_MS`, waits up to `shutdownTimeoutMs` for them, then destroys the
   * connections left and resolves. Never rejects. A
   * second call returns the first call's promise and ignores its arguments.
   */
  shutdown(servers: readonly DrainTarget[], reason: string): Promise<void> {
    if (this.#done !== undefined) return this.#done;
    this.#draining = true;
    this.#done = this.#run(servers, reason).catch((error: unknown) => {
      this.#logger.error({ err: error }, 'the graceful shutdown failed; stopping anyway');
    });
    return this.#done;
  }

  async #run(servers: readonly DrainTarget[], reason: string): Promise<void> {
    this.#logger.info({ reason, delayMs: this.#delayMs, timeoutMs: this.#timeoutMs },
      'shutting down: readiness now fails; still serving during the drain delay');
    if (this.#delayMs > 0) await this.#sleep(this.#delayMs).promise;

    const closed = Promise.all(servers.map((target) => target.listener.close()));
    this.#logger.info({ inFlight: this.#count(servers), connections: await connectionCount(servers) },
      'stopped accepting connections; waiting for requests in flight');

    let sweep: Timer | undefined;
    const sweepIdle = (): void => {
      for (const target of servers) target.listener.server.closeIdleConnections();
      sweep = this.#clock.setTimer(sweepIdle, IDLE_SWEEP_INTERVAL_MS);
    };
    sweep = this.#clock.setTimer(sweepIdle, IDLE_SWEEP_INTERVAL_MS);

    const deadline = this.#sleep(this.#timeoutMs);
    const finished = await Promise.race([closed.then(() => true), deadline.promise.then(() => false)]);
    deadline.timer.cancel();
    if (!finished) {
      this.#logger.warn({ inFlight: this.#count(servers), connections: await connectionCount(servers), timeoutMs: this.#timeoutMs },
        'the shutdown timeout passed with requests still in flight; cutting their connections');
      for (const target of servers) target.listener.server.closeAllConnections();
      const grace = this.#sleep(CUT_GRACE_MS);
      await Promise.race([closed, grace.promise]);
      grace.timer.cancel();
    }
    sweep.cancel();

    for (const target of servers) {
      if (target.close === undefined) continue;
      try {
        await target.close();
      } catch (error) {
        this.#logger.warn({ err: error }, 'a listener failed to clean up after closing');
      }
    }
    this.#logger.info({ reason }, 'shutdown complete');
  }

  #count(servers: readonly DrainTarget[]): number {
    let count = 0;
    for (const target of servers) count += target.listener.inFlight();
    return count;
  }

  #sleep(ms: number): { promise: Promise<void>; timer: Timer } {
    let timer: Timer | undefined;
    const promise = new Promise<void>((resolve) => {
      timer = this.#clock.setTimer(resolve, ms);
    });
    return { promise, timer: timer as Timer };
  }
}

/** How many connections `servers` hold open together (idle keep-alive ones included). */
async function connectionCount(servers: readonly DrainTarget[]): Promise<number> {
  const counts = await Promise.all(servers.map((target) => new Promise<number>((resolve) => {
    target.listener.server.getConnections((error, count) => resolve(error === null ? count : 0));
  })));
  return counts.reduce((sum, count) => sum + count, 0);
}

/** The signals that start a graceful shutdown. */
export type ShutdownSignal = 'SIGTERM' | 'SIGINT';

/**
 * Calls `onSignal` on every SIGTERM and SIGINT (also repeated ones: the caller decides whether a
 * second signal should cut the drain short) instead of Node's default of exiting at once. Returns a
 * function that removes exactly these handlers.
 */
export function installSignalHandlers(onSignal: (signal: ShutdownSignal) => void): () => void {
  const installed = (['SIGTERM', 'SIGINT'] as const).map((signal) => {
    const handler = (): void => onSignal(signal);
    process.on(signal, handler);
    return { signal, handler };
  });
  return () => {
    for (const { signal, handler } of installed) process.off(signal, handler);
  };
}
