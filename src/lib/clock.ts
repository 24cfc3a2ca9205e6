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

/** The longest single `setTimeout` Node honours; longer delays would fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: `Date.now()` and `setTimeout(...).unref()`. Delays beyond `MAX_TIMER_MS`
 * (about 24.8 days) are waited out in steps instead of firing at once.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    let handle: NodeJS.Timeout;
    const arm = (remaining: number) => {
      const step = Math.min(Math.max(0, remaining), MAX_TIMER_MS);
      handle = setTimeout(() => (remaining > MAX_TIMER_MS ? arm(remaining - MAX_TIMER_MS) : fn()), step);
      handle.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};
