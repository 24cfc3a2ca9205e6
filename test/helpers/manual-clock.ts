import type { Clock, Timer } from '../../src/lib/clock.js';

/** A clock for tests: time moves only when `advance` is called, which runs due timers in order. */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; fn: () => void; seq: number; cancelled: boolean }[] = [];
  #seq = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry = { at: this.#now + Math.max(0, ms), fn, seq: this.#seq++, cancelled: false };
    this.#timers.push(entry);
    return { cancel: () => { entry.cancelled = true; } };
  }

  /** Number of timers still waiting. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, running each timer that falls due (awaiting microtasks between). */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await flush();
    }
    this.#now = target;
    await flush();
  }
}

/** Lets pending promise callbacks and I/O callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
