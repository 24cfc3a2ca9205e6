/**
 * Graceful shutdown: on SIGTERM/SIGINT (or `POST /shutdown`) readiness fails at once, the proxy
 * keeps serving for the drain delay (a plain sidecar gets SIGTERM together with its app), then
 * stops accepting, lets in-flight requests finish up to the shutdown timeout, and cuts the rest.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
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
 * A listener to drain. `close`, if given, runs after the listener is closed and its connections are
 * gone (for the owner's own clean-up, e.g. upstream agents); a failure there is logged, not thrown.
 */
export interface DrainTarget {
  readonly server: Server;
  readonly close?: () => Promise<void>;
}

const LIST = Symbol('lifecycle.list');
const INDEX = Symbol('lifecycle.index');
type Tracked = ServerResponse & { [LIST]?: ResponseList; [INDEX]?: number };

/**
 * The responses in flight on one server: an array with each response's index kept on the
 * response, so adding and removing are O(1) without a hash table. On the request path of every
 * proxied request, a `Set` here made V8 promote about 2 MB per young-generation GC under load
 * (issue 5's profile: ~20 µs a request and most of the RSS growth).
 */
class ResponseList {
  readonly #items: Tracked[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(res: Tracked): void {
    res[LIST] = this;
    res[INDEX] = this.#items.length;
    this.#items.push(res);
  }

  delete(res: Tracked): void {
    const index = res[INDEX];
    if (index === undefined || this.#items[index] !== res) return;
    const last = this.#items.pop() as Tracked;
    if (last !== res) {
      this.#items[index] = last;
      last[INDEX] = index;
    }
    res[INDEX] = undefined;
    res[LIST] = undefined;
  }

  [Symbol.iterator](): Iterator<Tracked> {
    return [...this.#items][Symbol.iterator]();
  }
}

/** The `'close'` listener of every tracked response: one shared function, no closure per request. */
function untrack(this: Tracked): void {
  this[LIST]?.delete(this);
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
  readonly #inFlight = new Map<Server, ResponseList>();
  #draining = false;
  #closed = false;
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
   * Follows `server`'s requests so that, once the listener closes, responses still in flight (whose
   * headers are not sent yet) end with `Connection: close`. Call it right after creating a
   * listener; `shutdown()` calls it too, but then it only sees requests that start afterwards.
   * Calling it again for the same server does nothing. Costs a set insert and delete per request.
   */
  track(server: Server): void {
    if (this.#inFlight.has(server)) return;
    const responses = new ResponseList();
    this.#inFlight.set(server, responses);
    server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
      responses.add(res);
      res.once('close', untrack);
      if (this.#closed) {
        if (!res.headersSent) res.setHeader('Connection', 'close');
        // The connection turns idle once this response is done: close it then, not at the next sweep.
        res.once('finish', () => setImmediate(() => server.closeIdleConnections()));
      }
    });
  }

  /**
   * Drains `servers` (the proxy listeners) and resolves when they are closed: sets `draining` at
   * once, keeps serving for `shutdownDelayMs`, closes the listeners and their idle keep-alive
   * connections (and keeps closing connections as they turn idle), waits up to `shutdownTimeoutMs`
   * for in-flight requests, then destroys the connections left and resolves. Never rejects. A
   * second call returns the first call's promise and ignores its arguments.
   */
  shutdown(servers: readonly DrainTarget[], reason: string): Promise<void> {
    if (this.#done !== undefined) return this.#done;
    this.#draining = true;
    for (const target of servers) this.track(target.server);
    this.#done = this.#run(servers, reason).catch((error: unknown) => {
      this.#logger.error({ err: error }, 'the graceful shutdown failed; stopping anyway');
    });
    return this.#done;
  }

  async #run(servers: readonly DrainTarget[], reason: string): Promise<void> {
    this.#logger.info({ reason, delayMs: this.#delayMs, timeoutMs: this.#timeoutMs },
      'shutting down: readiness now fails; still serving during the drain delay');
    if (this.#delayMs > 0) await this.#sleep(this.#delayMs).promise;

    this.#closed = true;
    const closed = Promise.all(servers.map((target) => closeListener(target.server)));
    for (const target of servers) {
      const { server } = target;
      for (const res of this.#inFlight.get(server) ?? []) {
        if (!res.headersSent) res.setHeader('Connection', 'close');
        res.once('finish', () => setImmediate(() => server.closeIdleConnections()));
      }
      server.closeIdleConnections();
    }
    this.#logger.info({ inFlight: this.#count(servers), connections: await connectionCount(servers) },
      'stopped accepting connections; waiting for requests in flight');

    let sweep: Timer | undefined;
    const sweepIdle = (): void => {
      for (const target of servers) target.server.closeIdleConnections();
      sweep = this.#clock.setTimer(sweepIdle, IDLE_SWEEP_INTERVAL_MS);
    };
    sweep = this.#clock.setTimer(sweepIdle, IDLE_SWEEP_INTERVAL_MS);

    const deadline = this.#sleep(this.#timeoutMs);
    const finished = await Promise.race([closed.then(() => true), deadline.promise.then(() => false)]);
    deadline.timer.cancel();
    if (!finished) {
      this.#logger.warn({ inFlight: this.#count(servers), connections: await connectionCount(servers), timeoutMs: this.#timeoutMs },
        'the shutdown timeout passed with requests still in flight; cutting their connections');
      for (const target of servers) target.server.closeAllConnections();
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
    for (const target of servers) count += this.#inFlight.get(target.server)?.size ?? 0;
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
    target.server.getConnections((error, count) => resolve(error === null ? count : 0));
  })));
  return counts.reduce((sum, count) => sum + count, 0);
}

/** Stops `server` accepting; resolves once all its connections are gone (also if it was not listening). */
function closeListener(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
  });
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
