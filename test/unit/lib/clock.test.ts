import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TIMER_MS, systemClock } from '../../../src/lib/clock.js';

// Regression: a token living longer than ~24.8 days made the refresh timer fire after 1 ms
// (Node clamps longer setTimeout delays), so the cache fetched tokens in a tight loop.
test('systemClock waits out delays longer than setTimeout allows instead of firing at once', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let fired = 0;
  const timer = systemClock.setTimer(() => { fired++; }, MAX_TIMER_MS * 2 + 10);
  t.mock.timers.tick(MAX_TIMER_MS);
  assert.equal(fired, 0);
  t.mock.timers.tick(MAX_TIMER_MS);
  assert.equal(fired, 0);
  t.mock.timers.tick(10);
  assert.equal(fired, 1);
  timer.cancel();
});

test('systemClock timers can be cancelled, also between steps', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let fired = 0;
  const short = systemClock.setTimer(() => { fired++; }, 50);
  short.cancel();
  const long = systemClock.setTimer(() => { fired++; }, MAX_TIMER_MS + 5);
  t.mock.timers.tick(MAX_TIMER_MS);
  long.cancel();
  t.mock.timers.tick(100);
  assert.equal(fired, 0);
});
