// The token cache's lifecycle rules (issue 9), with the injected clock: short lifetimes are usable,
// a 401 forces at most one refresh per floor, and a credentials reload ends the wait after a failure.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CachingTokenSource } from '../../../src/token/cache.js';
import { RefreshSchedule } from '../../../src/token/refresh-schedule.js';
import type { CachingTokenSourceOptions } from '../../../src/token/cache.js';
import { TokenEndpointError, TokenUnavailableError } from '../../../src/lib/errors.js';
import type { Token } from '../../../src/token/token.js';
import { ManualClock, flush } from '../../helpers/manual-clock.js';
import { makeLogSink } from '../../helpers/log-sink.js';

const SECOND = 1000;

let serial = 0;
function tokenFor(clock: ManualClock, lifetimeMs: number): Token {
  serial += 1;
  return { accessToken: `tok-${serial}-abcdefgh`, tokenType: 'Bearer', expiresAt: clock.now() + lifetimeMs, obtainedAt: clock.now() };
}

function invalidClient(): TokenEndpointError {
  return new TokenEndpointError('token_request_rejected', 'the token endpoint refused the client (invalid_client)', {
    httpStatus: 401, oauthError: 'invalid_client', retryable: false,
  });
}

/**
 * A cache over a fake endpoint that answers after `latencyMs` of clock time with `answer(n)`
 * (a token lifetime in ms, or an error).
 */
function setup(answer: (n: number) => number | Error, options: Partial<CachingTokenSourceOptions> & { latencyMs?: number } = {}) {
  const clock = new ManualClock();
  const sink = makeLogSink('debug');
  let calls = 0;
  const forced: number[] = [];
  const source = new CachingTokenSource({
    name: 'lua5',
    clock,
    logger: sink.logger,
    random: () => 0.5,
    observer: { fetched: () => undefined, failed: () => undefined, forcedRefresh: () => forced.push(clock.now()) },
    fetch: () => new Promise<Token>((resolve, reject) => {
      calls += 1;
      const result = answer(calls);
      const settle = () => (result instanceof Error ? reject(result) : resolve(tokenFor(clock, result)));
      if ((options.latencyMs ?? 0) === 0) settle();
      else clock.setTimer(settle, options.latencyMs ?? 0);
    }),
    ...options,
  });
  return { clock, source, sink, forced, calls: () => calls };
}

describe('short token lifetimes', () => {
  for (const lifetimeSeconds of [2, 3, 6, 12]) {
    it(`${lifetimeSeconds} s tokens over ten lifetimes: every caller gets an unexpired token, at most two token requests per lifetime`, async () => {
      const lifetimeMs = lifetimeSeconds * SECOND;
      const { clock, source, calls } = setup(() => lifetimeMs, { latencyMs: 80 });
      source.start();
      await clock.advance(100);
      const end = clock.now() + 10 * lifetimeMs;
      let served = 0;
      while (clock.now() < end) {
        const now = clock.now();
        const token = await Promise.race([
          source.token(),
          clock.advance(200).then(() => { throw new Error('a caller waited more than 200 ms'); }),
        ]);
        assert.ok(token.expiresAt > now, 'never an expired token');
        served += 1;
        await clock.advance(100);
      }
      assert.ok(served >= 10 * lifetimeMs / 300);
      assert.equal(source.state().consecutiveFailures, 0);
      assert.ok(calls() <= 10 * 2 + 1, `${calls()} token requests for ten lifetimes`);
      assert.ok(calls() >= 10, 'refreshed every lifetime');
      source.close();
    });
  }

  it('the early-expiry margin is a fifth of the lifetime for short tokens and at most 10 s; the refresh comes before it', () => {
    const schedule = new RefreshSchedule({ random: () => 0.5 });
    for (const [lifetimeSeconds, marginMs, refreshAfterMs] of [
      [2, 400, 1333], [6, 1200, 4000], [60, 10_000, 40_000], [90, 10_000, 60_000], [3600, 10_000, 2_880_000],
    ] as const) {
      const token: Token = { accessToken: 'x', tokenType: 'Bearer', obtainedAt: 1_000_000, expiresAt: 1_000_000 + lifetimeSeconds * SECOND };
      assert.equal(schedule.usableUntil(token), token.expiresAt - marginMs, `${lifetimeSeconds} s`);
      assert.equal(schedule.refreshAt(token, token.obtainedAt), token.obtainedAt + refreshAfterMs, `${lifetimeSeconds} s`);
      assert.ok(schedule.refreshAt(token, token.obtainedAt) < schedule.usableUntil(token));
    }
  });
});

describe('forced refresh after a 401', () => {
  it('20 requests to an always-401 upstream cost at most 2 token requests; the 401s reach the client', async () => {
    const { clock, source, forced, calls } = setup(() => 3600 * SECOND);
    source.start();
    await flush();
    let passedOn = 0;
    for (let i = 0; i < 20; i++) {
      // The proxy: send with the cached token, get 401, ask whether a resend is worthwhile.
      const first = await source.token();
      if (source.invalidate(first.accessToken)) {
        const second = await source.token();
        assert.notEqual(second.accessToken, first.accessToken);
        if (!source.invalidate(second.accessToken)) passedOn += 1;
      } else {
        passedOn += 1;
      }
      await clock.advance(100);
    }
    assert.equal(passedOn, 20);
    assert.equal(calls(), 2, 'the start-up fetch and one forced refresh');
    assert.equal(forced.length, 1);
    assert.ok(source.peek(), 'the kept token is still served');
    // After the floor a 401 may force one refresh again.
    await clock.advance(30 * SECOND);
    const token = await source.token();
    assert.equal(source.invalidate(token.accessToken), true);
    await flush();
    assert.equal(calls(), 3);
    assert.equal(forced.length, 2);
    source.close();
  });

  it('the floor is a setting', async () => {
    const { clock, source, calls } = setup(() => 3600 * SECOND, { forcedRefreshFloorMs: 5 * SECOND });
    let token = await source.token();
    assert.equal(source.invalidate(token.accessToken), true);
    token = await source.token();
    assert.equal(source.invalidate(token.accessToken), false);
    await clock.advance(5 * SECOND);
    assert.equal(source.invalidate(token.accessToken), true);
    await flush();
    assert.equal(calls(), 3);
    source.close();
  });

  it('invalidate starts the fetch at once and callers share it; true while a different token is cached or fetched', async () => {
    const cold = setup(() => 3600 * SECOND, { latencyMs: 1000 });
    cold.source.start();
    assert.equal(cold.source.invalidate('some-other-token'), true, 'a fetch is in flight: a resend gets a new token');
    assert.equal(cold.calls(), 1);
    cold.source.close();
    const s2 = setup(() => 3600 * SECOND, { latencyMs: 1000 });
    s2.source.start();
    await s2.clock.advance(1000);
    const a = s2.source.peek();
    assert.ok(a);
    assert.equal(s2.source.invalidate(a.accessToken), true);
    assert.equal(s2.calls(), 2, 'the forced refresh began');
    assert.equal(s2.source.peek(), undefined, 'the rejected token is never handed out again');
    const waiting = [s2.source.token(), s2.source.token()];
    assert.equal(s2.source.invalidate(a.accessToken), true, 'the old token again: a fetch is in flight');
    await s2.clock.advance(1000);
    const [b, c] = await Promise.all(waiting);
    assert.equal(b, c);
    assert.notEqual(b?.accessToken, a.accessToken);
    assert.equal(s2.source.invalidate(a.accessToken), true, 'a late 401 for the old token: a different token is cached');
    assert.equal(s2.source.peek(), b, 'and it is kept');
    assert.equal(s2.calls(), 2);
    s2.source.close();
  });

  it('invalidate is false while nothing can be had (a retry after a failure is not due yet), and false after close', async () => {
    const { clock, source } = setup((n) => (n === 1 ? 3600 * SECOND : invalidClient()));
    const token = await source.token();
    assert.equal(source.invalidate(token.accessToken), true);
    await flush();
    await assert.rejects(source.token(), TokenUnavailableError);
    assert.equal(source.invalidate(token.accessToken), false, 'a resend would only get a 503');
    await clock.advance(60 * SECOND);
    source.close();
    assert.equal(source.invalidate('anything'), false);
  });
});

describe('a credentials reload ends the wait after a failure', () => {
  it('fetches at once with the backoff reset, instead of waiting out the slow retry', async () => {
    let keyFixed = false;
    const { clock, source, calls } = setup(() => (keyFixed ? 3600 * SECOND : invalidClient()));
    source.start();
    await flush();
    await clock.advance(1000);
    assert.equal(calls(), 1);
    assert.equal(source.state().consecutiveFailures, 1);
    assert.ok((source.state().nextRefreshAt ?? 0) - clock.now() > 50 * SECOND, 'invalid_client waits the slow schedule');
    keyFixed = true;
    source.credentialsChanged('private key');
    await flush();
    assert.equal(calls(), 2, 'fetched at once');
    assert.ok(source.peek());
    assert.equal(source.state().consecutiveFailures, 0);
    source.close();
  });

  it('a reload during a failing fetch makes the next attempt immediate', async () => {
    let keyFixed = false;
    const { clock, source, calls } = setup(() => (keyFixed ? 3600 * SECOND : invalidClient()), { latencyMs: 500 });
    source.start();
    await clock.advance(600);
    assert.equal(calls(), 1);
    await clock.advance(60 * SECOND); // second attempt starts and is in flight (signed with the old key)
    assert.equal(calls(), 2);
    keyFixed = true;
    source.credentialsChanged('private key');
    assert.equal(calls(), 2, 'does not start a second fetch beside the one in flight');
    await clock.advance(500); // the old-key attempt fails ...
    assert.equal(calls(), 3, '... and the retry starts at once');
    await clock.advance(500);
    assert.ok(source.peek());
    source.close();
  });

  it('a reload during the very first fetch, which then fails, makes the retry immediate', async () => {
    let keyFixed = false;
    const { clock, source, calls } = setup(() => (keyFixed ? 3600 * SECOND : invalidClient()), { latencyMs: 500 });
    source.start();
    await clock.advance(100);
    keyFixed = true;
    source.credentialsChanged('private key');
    await clock.advance(400);
    assert.equal(calls(), 2, 'retried at once, not in 60 s');
    await clock.advance(500);
    assert.ok(source.peek());
    source.close();
  });

  it('does nothing while all is well', async () => {
    const { source, calls } = setup(() => 3600 * SECOND);
    await source.token();
    source.credentialsChanged('private key');
    await flush();
    assert.equal(calls(), 1);
    source.close();
  });
});
