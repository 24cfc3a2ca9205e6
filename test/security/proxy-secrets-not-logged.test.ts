// Guards: at `trace` level, the proxy's log never holds an access token (injected, invalidated
// after a 401, or the client's own), an Authorization header, or a URL query.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream } from '../helpers/echo-upstream.js';
import type { EchoUpstream } from '../helpers/echo-upstream.js';
import { secretFragments } from '../helpers/log-sink.js';
import { send, startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { StaticTokenSource, unavailable } from '../helpers/static-token-source.js';

// JWT-shaped, so their parts are checked too.
const STALE = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdGFsZS10b2tlbi1wYXlsb2FkIn0.c3RhbGUtc2lnbmF0dXJlLWJ5dGVzLWhlcmU';
const FRESH = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmcmVzaC10b2tlbi1wYXlsb2FkIn0.ZnJlc2gtc2lnbmF0dXJlLWJ5dGVzLWhlcmU';
const CLIENT_SECRET = 'Basic Y2xpZW50LXVzZXI6Y2xpZW50LXBhc3N3b3Jk';
const QUERY_SECRET = 'query-secret-value-123';

let upstream: EchoUpstream;
let harness: Harness;
let failing: Harness;

before(async () => {
  upstream = await startEchoUpstream({ validTokens: new Set([FRESH]) });
  harness = await startHarness([{ name: 'logged', url: `${upstream.origin}/co`, tokens: new StaticTokenSource([STALE, FRESH]) }]);
  const down = new StaticTokenSource(STALE);
  down.fail(unavailable());
  failing = await startHarness([{ name: 'down', url: `${upstream.origin}/co`, tokens: down }]);
});

after(async () => {
  await harness.close();
  await failing.close();
  await upstream.close();
});

test('requests, a 401 resend and failures leave no secret in the trace log', async () => {
  const headers = { authorization: CLIENT_SECRET, 'proxy-authorization': CLIENT_SECRET };
  assert.equal((await send(harness.port, `/co/a?token=${QUERY_SECRET}`, { headers })).status, 200);
  assert.equal((await send(harness.port, `http://127.0.0.1:${upstream.port}/co/b?access_token=${QUERY_SECRET}`, { headers, method: 'POST', body: 'x' })).status, 200);
  assert.equal((await send(harness.port, `http://user:${QUERY_SECRET}@elsewhere.example/x`, { headers })).status, 400);
  // Regression: the userinfo strip stopped at the first "@", so a password containing "@" was
  // logged in part.
  assert.equal((await send(harness.port, `http://user:SPLIT@${QUERY_SECRET}@elsewhere.example/x`, { headers })).status, 400);
  assert.equal((await send(harness.port, `/co/../x?${QUERY_SECRET}`, { headers })).status, 400);
  assert.equal((await send(failing.port, `/co/c?${QUERY_SECRET}`, { headers })).status, 503);
  assert.equal(upstream.requests[0]?.headers.authorization, `Bearer ${STALE}`, 'the 401 path was taken');

  assert.ok(harness.sink.entries().some((e) => e.level === 'trace'), 'trace lines were written');
  for (const sink of [harness.sink, failing.sink]) {
    const text = sink.text();
    assert.ok(sink.entries().some((e) => e.msg === 'request'), 'the log is not empty');
    for (const secret of [STALE, FRESH, CLIENT_SECRET, 'Y2xpZW50LXVzZXI6Y2xpZW50LXBhc3N3b3Jk', QUERY_SECRET]) {
      for (const fragment of secretFragments(secret)) {
        assert.equal(text.includes(fragment), false, `the log contains a secret fragment: ${fragment.slice(0, 8)}...`);
      }
    }
    assert.doesNotMatch(text, /Bearer/);
  }
});
