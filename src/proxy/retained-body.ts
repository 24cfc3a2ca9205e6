/**
 * Request bodies kept for a resend, and the one budget they share. A body is kept only when its
 * length is known up front and at most `RETRY_BODY_LIMIT`, and only when the whole length can be
 * reserved from `RETRY_BODY_BUDGET` at once: so the bytes held for resends never exceed the budget,
 * whatever the concurrency. A request that gets no reservation is sent without a copy (its 401,
 * should one come, reaches the client).
 */

/** The bytes all kept bodies may hold together. One per proxy; not thread-shared (event loop only). */
export class RetainedBodyBudget {
  readonly #limit: number;
  readonly #perBody: number;
  #reserved = 0;
  #peak = 0;

  /** `limit`: the bytes all kept bodies may hold; `perBody`: the largest body kept. */
  constructor(limit: number, perBody: number) {
    this.#limit = limit;
    this.#perBody = perBody;
  }

  /** Bytes reserved now. */
  get reserved(): number {
    return this.#reserved;
  }

  /** The most bytes ever reserved at once (for tests and `/status`). */
  get peak(): number {
    return this.#peak;
  }

  /**
   * A store for a body of `length` bytes (0: nothing to keep, always granted), or undefined when
   * it may not be kept: too long, or the budget cannot hold it now.
   */
  reserve(length: number): RetainedBody | undefined {
    if (length === 0) return new RetainedBody(this, 0);
    if (length > this.#perBody || this.#reserved + length > this.#limit) return undefined;
    this.#reserved += length;
    if (this.#reserved > this.#peak) this.#peak = this.#reserved;
    return new RetainedBody(this, length);
  }

  /** Called by `RetainedBody.release()` only. */
  giveBack(length: number): void {
    this.#reserved -= length;
  }
}

/** One request's kept body: the chunks as they passed to the first attempt. */
export class RetainedBody {
  readonly chunks: Buffer[] = [];
  readonly #budget: RetainedBodyBudget;
  #length: number;

  constructor(budget: RetainedBodyBudget, length: number) {
    this.#budget = budget;
    this.#length = length;
  }

  /** Keeps `chunk` (never more than the reserved length reaches here: the parser framed the body by it). */
  keep(chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  /** Drops the chunks and returns the reservation; idempotent. */
  release(): void {
    this.chunks.length = 0;
    if (this.#length > 0) {
      this.#budget.giveBack(this.#length);
      this.#length = 0;
    }
  }
}
