/**
 * Time, injected. Everything that reads the time or waits takes a `Clock`, so tests can move
 * time instead of sleeping (golang/oauth2's `timeNow`, jose's `currentDate`).
 */

/** A scheduled callback that can be cancelled. Cancelling twice, or after it ran, is harmless. */
export interface Timer {
  cancel(): void;
}

/** A source of the current time and of timers. Implementations must be safe to share. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. The timer never keeps the process alive. */
  setTimer(fn: () => void, ms: number): Timer;
}

/** The real clock: `Date.now()` and `setTimeout(...).unref()`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
