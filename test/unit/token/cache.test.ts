import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CachingTokenSource } from '../../../src/token/cache.js';
import type { CachingTokenSourceOptions, TokenSourceObserver } from '../../../src/token/cache.js';
import { KeyError, TokenEndpointError, TokenUnavailableError } from '../../../src/lib/errors.js';
import type { Token } from '../../../src/token/token.js';
import { ManualClock, flush } from '../../helpers/manual-clock.js';
import { makeLogSink, secretFragments } from '../../helpers/log-sink.js';
import type { LogSink } from '../../helpers/log-sink.js';

const SECOND = 1000;

/** One call the cache made to the fake endpoint; settle it by hand or let `answer` do it. */
interface Call {
  at: number;
  signal: AbortSignal;
  resolve(token: Token): void;
  reject(error: Error): void;
}

type Answer = Token | Error | 'hang';

/**
 * A fake token endpoint (the cache's `fetch`), counting calls. Without `answer` every call waits
 * for the test to settle it; with `answer` each call settles by itself with what it returns.
 */
function fakeEndpoint(answer?: (n: number, clock: ManualClock) => Answer) {
  const calls: Call[] = [];
  let clockRef: ManualClock | undefined;
  return {
    calls,
    bind(clock: ManualClock) {
      clockRef = clock;
    },
    fetch(signal: AbortSignal): Promise<Token> {
      return new Promise<Token>((resolve, reject) => {
        const clock = clockRef;
        assert.ok(clock, 'fake endpoint used before bind()');
        calls.push({ at: clock.now(), signal, resolve, reject });
        const result = answer?.(calls.length, clock);
        if (result === undefined || result === 'hang') return;
        if (result instanceof Error) reject(result);
        else resolve(result);
      });
    },
  };
}

let tokenCounter = 0;
/** A token with a secret-looking access token, living `lifetimeSeconds` from now. */
function makeToken(clock: ManualClock, lifetimeSeconds = 3600): Token {
  tokenCounter += 1;
  return {
    accessToken: `eyJhbGciOiJSUzI1NiJ9.secret-access-token-${tokenCounter}-${'x'.repeat(20)}.signaturepart${tokenCounter}abcdefghijkl`,
    tokenType: 'Bearer',
    expiresAt: clock.now() + lifetimeSeconds * SECOND,
    obtainedAt: clock.now(),
  };
}

function unavailable(message = 'The token endpoint answered 503; it may be overloaded.', retryAfterMs?: number): TokenEndpointError {
  return new TokenEndpointError('token_endpoint_unreachable', message, { httpStatus: 503, retryable: true, retryAfterMs });
}

function rejected(): TokenEndpointError {
  return new TokenEndpointError('token_request_rejected', 'The token endpoint refused the client (invalid_client); check LOGICNETS_CLIENT_ID and the key.', {
    httpStatus: 401,
    oauthError: 'invalid_client',
    retryable: false,
  });
}

interface Setup {
  clock: ManualClock;
  source: CachingTokenSource;
  endpoint: ReturnType<typeof fakeEndpoint>;
  sink: LogSink;
  observed: { fetched: Token[]; failed: Error[] };
}

function setup(
  answer?: (n: number, clock: ManualClock) => Answer,
  options: Partial<CachingTokenSourceOptions> = {},
): Setup {
  const clock = new ManualClock();
  const endpoint = fakeEndpoint(answer);
  endpoint.bind(clock);
  const sink = makeLogSink('trace');
  const observed = { fetched: [] as Token[], failed: [] as Error[] };
  const observer: TokenSourceObserver = {
    fetched: (token) => observed.fetched.push(token),
    failed: (error) => observed.failed.push(error),
  };
  const source = new CachingTokenSource({
    name: 'lua5',
    fetch: (signal) => endpoint.fetch(signal),
    clock,
    logger: sink.logger,
    observer,
    random: () => 0.5,
    ...options,
  });
  return { clock, source, endpoint, sink, observed };
}

/** Whether `promise` settled after letting pending callbacks run, without moving the clock. */
async function settledNow<T>(promise: Promise<T>): Promise<{ state: 'resolved'; value: T } | { state: 'rejected'; error: unknown } | { state: 'pending' }> {
  let outcome: { state: 'resolved'; value: T } | { state: 'rejected'; error: unknown } | { state: 'pending' } = { state: 'pending' };
  promise.then(
    (value) => {
      outcome = { state: 'resolved', value };
    },
    (error: unknown) => {
      outcome = { state: 'rejected', error };
    },
  );
  await flush();
  return outcome;
}

/** Times of the calls relative to the first one, in seconds. */
function gaps(calls: Call[]): number[] {
  return calls.slice(1).map((c, i) => (c.at - (calls[i] as Call).at) / SECOND);
}

describe('CachingTokenSource', () => {
  it('shares one fetch among 100 concurrent callers on a cold cache', async () => {
    const { source, endpoint, clock } = setup();
    const waiting = Array.from({ length: 100 }, () => source.token());
    await flush();
    assert.equal(endpoint.calls.length, 1);
    const token = makeToken(clock);
    endpoint.calls[0]?.resolve(token);
    const tokens = await Promise.all(waiting);
    assert.ok(tokens.every((t) => t === token));
    assert.equal(source.peek(), token);
    // A second wave is served from the cache.
    const again = await Promise.all(Array.from({ length: 100 }, () => source.token()));
    assert.ok(again.every((t) => t === token));
    assert.equal(endpoint.calls.length, 1);
    source.close();
  });

  it('fetches at start and refreshes ahead of expiry in the background', async () => {
    const { source, endpoint, clock } = setup((_n, c) => makeToken(c, 3600));
    const start = clock.now();
    source.start();
    await flush();
    assert.equal(endpoint.calls.length, 1);
    const first = source.peek();
    assert.ok(first);
    // random 0.5 -> 80 % of 3600 s = 2880 s.
    assert.equal(source.state().nextRefreshAt, start + 2880 * SECOND);
    await clock.advance(2880 * SECOND - 1);
    assert.equal(endpoint.calls.length, 1);
    await clock.advance(1);
    assert.equal(endpoint.calls.length, 2, 'refresh happened with no caller waiting');
    assert.equal(endpoint.calls[1]?.at, start + 2880 * SECOND);
    const second = source.peek();
    assert.ok(second && second !== first);
    assert.ok((endpoint.calls[1]?.at ?? Infinity) < first.expiresAt - 10 * SECOND);
    source.close();
  });

  it('refreshes a short-lived token at least 30 s before expiry', async () => {
    const { source, endpoint, clock } = setup((_n, c) => makeToken(c, 90));
    const start = clock.now();
    source.start();
    await flush();
    // 80 % of 90 s would be 18 s before expiry; the 30 s margin moves it to 60 s.
    assert.equal(source.state().nextRefreshAt, start + 60 * SECOND);
    await clock.advance(60 * SECOND);
    assert.equal(endpoint.calls.length, 2);
    source.close();
  });

  it('applies refresh jitter between 75 % and 85 % of the lifetime', async () => {
    for (const [random, expected] of [[0, 2700], [0.999999, 3060]] as const) {
      const { source, clock } = setup((_n, c) => makeToken(c, 3600), { random: () => random });
      const start = clock.now();
      source.start();
      await flush();
      assert.equal(Math.round(((source.state().nextRefreshAt ?? 0) - start) / SECOND), expected);
      source.close();
    }
  });

  it('does not keep a caller waiting while a refresh is in flight', async () => {
    const { source, endpoint, clock } = setup();
    source.start();
    await flush();
    const first = makeToken(clock, 3600);
    endpoint.calls[0]?.resolve(first);
    await flush();
    await clock.advance(2880 * SECOND);
    assert.equal(endpoint.calls.length, 2, 'refresh started and hangs');
    const outcome = await settledNow(source.token());
    assert.deepEqual(outcome, { state: 'resolved', value: first });
    source.close();
  });

  it('keeps serving the current token while refreshes fail, retrying with growing capped backoff', async () => {
    let recovered: Token | undefined;
    const { source, endpoint, clock, observed } = setup(
      (n, c) => {
        if (n === 1) return makeToken(c, 3600);
        if (n <= 7) return unavailable();
        recovered = makeToken(c, 3600);
        return recovered;
      },
      { random: () => 1 - Number.EPSILON, refreshAheadRatio: 0.8, backoff: { baseMs: 1000, maxMs: 8000 } },
    );
    source.start();
    await flush();
    const first = source.peek();
    assert.ok(first);
    await clock.advance(2880 * SECOND); // refresh due (attempt 2 fails)
    assert.equal(endpoint.calls.length, 2);
    assert.equal(source.peek(), first, 'old token still served after a failed refresh');
    assert.equal(await source.token(), first);
    await clock.advance(40 * SECOND);
    assert.equal(endpoint.calls.length, 8);
    // Equal jitter with random ~1 gives the full exponential step: 1, 2, 4, 8, 8 (cap), 8 s.
    assert.deepEqual(gaps(endpoint.calls.slice(1)).map(Math.round), [1, 2, 4, 8, 8, 8]);
    assert.ok(recovered);
    assert.equal(source.peek(), recovered);
    assert.equal(source.state().consecutiveFailures, 0);
    assert.equal(source.state().lastError, undefined);
    assert.equal(observed.failed.length, 6);
    assert.equal(observed.fetched.length, 2);
    source.close();
  });

  it('jitters the backoff between half and all of the exponential step', async () => {
    const { source, endpoint, clock } = setup(() => unavailable(), { random: () => 0, backoff: { baseMs: 1000, maxMs: 60_000 } });
    source.start();
    await flush();
    await clock.advance(3500); // attempts at +0.5 s, +1.5 s (after 1 s), +3.5 s (after 2 s)
    assert.deepEqual(gaps(endpoint.calls), [0.5, 1, 2]);
    source.close();
  });

  it('honours Retry-After', async () => {
    const { source, endpoint, clock } = setup(
      (n, c) => (n === 1 ? unavailable('The token endpoint answered 429 Too Many Requests.', 20_000) : makeToken(c)),
      { backoff: { baseMs: 1000, maxMs: 60_000 } },
    );
    const start = clock.now();
    source.start();
    await flush();
    assert.equal(source.state().nextRefreshAt, start + 20 * SECOND);
    const early = await settledNow(source.token());
    assert.equal(early.state, 'rejected');
    assert.ok(early.state === 'rejected' && early.error instanceof TokenUnavailableError);
    assert.equal((early.error).retryAfterSeconds, 20);
    await clock.advance(20 * SECOND - 1);
    assert.equal(endpoint.calls.length, 1);
    await clock.advance(1);
    assert.equal(endpoint.calls.length, 2);
    assert.ok(source.peek());
    source.close();
  });

  it('never hands out a token past expiresAt - earlyExpiry and then rejects quickly while the endpoint fails', async () => {
    const { source, endpoint, clock } = setup((n, c) => (n === 1 ? makeToken(c, 60) : unavailable()), {
      random: () => 0.5,
      backoff: { baseMs: 30_000, maxMs: 60_000 },
    });
    source.start();
    await flush();
    const token = source.peek();
    assert.ok(token);
    await clock.advance(40 * SECOND); // refresh at 40 s (a third of the lifetime ahead) fails; next attempt in 22.5 s (at 62.5 s)
    assert.equal(endpoint.calls.length, 2);
    await clock.advance(token.expiresAt - 10 * SECOND - 1 - clock.now());
    assert.equal(source.peek(), token, 'usable one millisecond before the early-expiry line');
    await clock.advance(1);
    assert.equal(source.peek(), undefined, 'not usable at expiresAt - earlyExpiry');
    const outcome = await settledNow(source.token());
    assert.equal(outcome.state, 'rejected', 'rejects at once, no hang');
    assert.ok(outcome.state === 'rejected' && outcome.error instanceof TokenUnavailableError);
    const error = outcome.error;
    assert.equal(error.code, 'token_unavailable');
    assert.equal(error.status, 503);
    assert.equal(error.retryAfterSeconds, 13); // 62.5 s - 50 s
    assert.match(error.message, /lua5/);
    assert.equal(endpoint.calls.length, 2, 'no extra fetch before the retry is due');
    assert.equal(source.state().valid, false);
    assert.equal(source.state().consecutiveFailures, 1);
    assert.equal(source.state().lastError?.code, 'token_endpoint_unreachable');
    source.close();
  });

  it('recovers after a failed first fetch', async () => {
    const { source, endpoint, clock } = setup((n, c) => (n === 1 ? unavailable() : makeToken(c)), {
      random: () => 0.5,
      backoff: { baseMs: 2000, maxMs: 60_000 },
    });
    const first = source.token();
    const second = source.token();
    await assert.rejects(first, (error: unknown) => {
      assert.ok(error instanceof TokenUnavailableError);
      assert.ok(error.cause instanceof TokenEndpointError);
      return true;
    });
    await assert.rejects(second, TokenUnavailableError);
    assert.equal(endpoint.calls.length, 1, 'both callers shared the failed fetch');
    await assert.rejects(source.token(), TokenUnavailableError);
    assert.equal(endpoint.calls.length, 1, 'no new fetch before the retry is due');
    await clock.advance(1500); // retry after 1.5 s (equal jitter, random 0.5)
    assert.equal(endpoint.calls.length, 2);
    const token = await source.token();
    assert.equal(token, source.peek());
    assert.equal(source.state().lastError, undefined);
    source.close();
  });

  it('ignores invalidate() for an older token and refetches once for the current one', async () => {
    const { source, endpoint, clock } = setup();
    const pA = source.token();
    await flush();
    const a = makeToken(clock, 3600);
    endpoint.calls[0]?.resolve(a);
    assert.equal(await pA, a);
    await clock.advance(2880 * SECOND);
    const b = makeToken(clock, 3600);
    endpoint.calls[1]?.resolve(b);
    await flush();
    assert.equal(source.peek(), b);
    source.invalidate(a.accessToken);
    assert.equal(source.peek(), b, 'a late 401 for the old token keeps the newer one');
    assert.equal(endpoint.calls.length, 2);

    source.invalidate(b.accessToken);
    assert.equal(source.peek(), undefined);
    const waiting = Array.from({ length: 20 }, () => source.token());
    await flush();
    assert.equal(endpoint.calls.length, 3, 'exactly one new fetch for all callers');
    const c = makeToken(clock, 3600);
    endpoint.calls[2]?.resolve(c);
    assert.ok((await Promise.all(waiting)).every((t) => t === c));
    source.close();
  });

  it('aborts a fetch that never settles and ignores its late answer once a newer token is cached', async () => {
    const { source, endpoint, clock, observed, sink } = setup(undefined, { fetchTimeoutMs: 30_000, maxWaitMs: 15_000 });
    source.start();
    await flush();
    const stuck = endpoint.calls[0];
    assert.ok(stuck);
    await clock.advance(30 * SECOND);
    assert.equal(stuck.signal.aborted, true, 'the cache aborted the stuck fetch');
    assert.equal(source.state().lastError?.code, 'token_endpoint_timeout');
    assert.equal(observed.failed.length, 1);
    await clock.advance(1500); // retry
    assert.equal(endpoint.calls.length, 2);
    const newer = makeToken(clock, 3600);
    endpoint.calls[1]?.resolve(newer);
    await flush();
    assert.equal(source.peek(), newer);
    // The first fetch ignored its abort and answers late: it must not overwrite the newer token.
    const late = makeToken(clock, 7200);
    stuck.resolve(late);
    await flush();
    assert.equal(source.peek(), newer);
    assert.ok(sink.entries().some((e) => e.level === 'debug' && /late token answer/.test(String(e.msg))));
    assert.ok(!sink.text().includes(late.accessToken));
    assert.equal(source.state().expiresAt, newer.expiresAt);
    assert.equal(observed.fetched.length, 1);
    source.close();
  });

  it('retries at the cap after a non-retryable error', async () => {
    const { source, endpoint, clock } = setup(() => rejected(), { backoff: { baseMs: 1000, maxMs: 60_000 } });
    source.start();
    await flush();
    await clock.advance(59 * SECOND);
    assert.equal(endpoint.calls.length, 1, 'no hammering of an endpoint that refused the client');
    await clock.advance(125 * SECOND);
    assert.deepEqual(gaps(endpoint.calls), [60, 60, 60]);
    const outcome = await settledNow(source.token());
    assert.ok(outcome.state === 'rejected' && outcome.error instanceof TokenUnavailableError);
    assert.match((outcome.error as Error).message, /invalid_client/);
    source.close();
  });

  it('treats a broken key as non-retryable', async () => {
    const { source, endpoint, clock } = setup(() => new KeyError('The private key file cannot be read; check LOGICNETS_PRIVATE_KEY_FILE.'), {
      backoff: { baseMs: 1000, maxMs: 10_000 },
    });
    source.start();
    await flush();
    await clock.advance(10 * SECOND);
    assert.deepEqual(gaps(endpoint.calls), [10]);
    assert.equal(source.state().lastError?.code, 'key_invalid');
    source.close();
  });

  it('refuses a token that has already expired when it arrives, naming the clocks, not a setting', async () => {
    const { source, clock } = setup((_n, c) => makeToken(c, -5));
    source.start();
    await flush();
    assert.equal(source.peek(), undefined);
    assert.equal(source.state().lastError?.code, 'token_response_invalid');
    assert.match(source.state().lastError?.message ?? '', /already expired.*clock/);
    assert.doesNotMatch(source.state().lastError?.message ?? '', /[A-Z]{3,}_[A-Z_]+/, 'names no setting');
    assert.equal(source.state().nextRefreshAt, clock.now() + 60 * SECOND);
    source.close();
  });

  it('close() cancels every timer, aborts the fetch in flight and rejects callers', async () => {
    const { source, endpoint, clock } = setup();
    source.start();
    const waiting = source.token();
    await flush();
    assert.ok(clock.pendingTimers > 0);
    source.close();
    assert.equal(clock.pendingTimers, 0);
    assert.equal(endpoint.calls[0]?.signal.aborted, true);
    await assert.rejects(waiting, TokenUnavailableError);
    await assert.rejects(source.token(), /closed/);
    assert.equal(source.peek(), undefined);

    // Also with a cached token and a scheduled refresh.
    const other = setup((_n, c) => makeToken(c));
    other.source.start();
    await flush();
    assert.ok(other.source.state().nextRefreshAt !== undefined);
    other.source.close();
    assert.equal(other.clock.pendingTimers, 0);
    await other.clock.advance(7200 * SECOND);
    assert.equal(other.endpoint.calls.length, 1, 'no refresh after close');
    await assert.rejects(other.source.token(), TokenUnavailableError);
  });

  it("a caller's abort rejects that caller only", async () => {
    const { source, endpoint, clock } = setup();
    const controller = new AbortController();
    const impatient = source.token(controller.signal);
    const patient = source.token();
    await flush();
    controller.abort();
    const outcome = await settledNow(impatient);
    assert.equal(outcome.state, 'rejected', 'the aborted caller stops waiting at once');
    await assert.rejects(impatient, { name: 'AbortError' });
    assert.equal(clock.pendingTimers, 2, "the fetch guard and the patient caller's wait timer; the aborted caller's is gone");
    assert.equal(endpoint.calls.length, 1);
    assert.equal(endpoint.calls[0]?.signal.aborted, false, 'the shared fetch goes on');
    const token = makeToken(clock);
    endpoint.calls[0]?.resolve(token);
    assert.equal(await patient, token);
    await assert.rejects(source.token(AbortSignal.abort()), { name: 'AbortError' });
    source.close();
  });

  it('maxWaitMs rejects a waiting caller, not the fetch', async () => {
    const { source, endpoint, clock } = setup(undefined, { maxWaitMs: 15_000, fetchTimeoutMs: 30_000 });
    const waiting = source.token();
    await flush();
    await clock.advance(15 * SECOND - 1);
    assert.equal((await settledNow(waiting)).state, 'pending');
    await clock.advance(1);
    await assert.rejects(waiting, (error: unknown) => error instanceof TokenUnavailableError && /within 15s/.test(error.message));
    assert.equal(endpoint.calls[0]?.signal.aborted, false);
    const later = source.token();
    await flush();
    assert.equal(endpoint.calls.length, 1, 'a later caller joins the same fetch');
    const token = makeToken(clock);
    endpoint.calls[0]?.resolve(token);
    assert.equal(await later, token);
    source.close();
  });

  it('tells the observer about each fetch and each failure', async () => {
    const { source, clock, observed } = setup((n, c) => (n === 1 ? unavailable() : makeToken(c)), { random: () => 0.5 });
    source.start();
    await flush();
    assert.equal(observed.failed.length, 1);
    assert.ok(observed.failed[0] instanceof TokenEndpointError);
    await clock.advance(750); // 1 s step, equal jitter with random 0.5
    assert.equal(observed.fetched.length, 1);
    assert.equal(observed.fetched[0], source.peek());
    source.close();
  });

  it('an observer that throws does not break the cache', async () => {
    const { source } = setup((_n, c) => makeToken(c), {
      observer: {
        fetched: () => {
          throw new Error('metrics broke');
        },
        failed: () => undefined,
      },
    });
    const token = await source.token();
    assert.equal(source.peek(), token);
    source.close();
  });

  it('state() reports without ever holding the token', async () => {
    const { source, endpoint, clock } = setup((n, c) => (n === 1 ? makeToken(c, 3600) : unavailable()));
    assert.deepEqual(source.state(), {
      valid: false,
      expiresAt: undefined,
      lastRefreshAt: undefined,
      nextRefreshAt: undefined,
      lastError: undefined,
      consecutiveFailures: 0,
    });
    const token = await source.token();
    const now = clock.now();
    assert.deepEqual(source.state(), {
      valid: true,
      expiresAt: token.expiresAt,
      lastRefreshAt: now,
      nextRefreshAt: now + 2880 * SECOND,
      lastError: undefined,
      consecutiveFailures: 0,
    });
    await clock.advance(2880 * SECOND);
    assert.equal(endpoint.calls.length, 2);
    const state = source.state();
    assert.equal(state.valid, true);
    assert.equal(state.consecutiveFailures, 1);
    assert.equal(state.lastError?.code, 'token_endpoint_unreachable');
    assert.ok(!JSON.stringify(state).includes(token.accessToken));
    source.close();
  });

  it('logs refreshes at info and failures at warn, never the token, even at trace', async () => {
    const { source, clock, sink, endpoint } = setup(
      (n, c) => (n === 2 ? unavailable() : n === 3 ? new Error('socket hang up') : makeToken(c, 3600)),
      { random: () => 0.5 },
    );
    const tokens: Token[] = [];
    source.start();
    await flush();
    tokens.push(await source.token());
    await clock.advance(2880 * SECOND); // fails (503)
    await clock.advance(750); // fails (unexpected error)
    await clock.advance(1500); // succeeds
    assert.equal(endpoint.calls.length, 4);
    tokens.push(await source.token());
    source.invalidate(tokens[1]?.accessToken ?? '');
    tokens.push(await source.token());
    source.close();

    const entries = sink.entries();
    const refreshed = entries.filter((e) => e.msg === 'obtained a new access token');
    assert.equal(refreshed.length, 3);
    const info = refreshed[0] as Record<string, unknown>;
    assert.equal(info.level, 'info');
    assert.equal(info.upstream, 'lua5');
    assert.equal(info.lifetimeSeconds, 3600);
    assert.equal(info.expiresAt, new Date(tokens[0]?.expiresAt ?? 0).toISOString());
    const warnings = entries.filter((e) => e.level === 'warn');
    assert.equal(warnings.length, 2);
    assert.equal(warnings[0]?.code, 'token_endpoint_unreachable');
    assert.match(String(warnings[0]?.message), /503/);
    assert.equal(warnings[1]?.code, 'internal_error');
    assert.match(String(warnings[1]?.detail), /socket hang up/);

    const text = sink.text();
    for (const token of tokens) {
      for (const fragment of secretFragments(token.accessToken)) {
        assert.ok(!text.includes(fragment), 'a log line contains (part of) the access token');
      }
    }
  });
});
