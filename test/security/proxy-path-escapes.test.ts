// Guards: dot-segments, encoded slashes and encoded dots can never lift a request out of an
// upstream's company path, and a refused path never reaches an upstream nor asks for a token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream } from '../helpers/echo-upstream.js';
import type { EchoUpstream } from '../helpers/echo-upstream.js';
import { send, startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

let upstream: EchoUpstream;
let harness: Harness;
const alpha = new StaticTokenSource('tok-alpha');
const beta = new StaticTokenSource('tok-beta');

before(async () => {
  upstream = await startEchoUpstream();
  harness = await startHarness([
    { name: 'alpha', url: `${upstream.origin}/alpha`, tokens: alpha },
    { name: 'beta', url: `${upstream.origin}/beta`, tokens: beta },
  ]);
});

after(async () => {
  await harness.close();
  await upstream.close();
});

const escapes = [
  '/alpha/../beta/secret',
  '/alpha/x/../../beta/secret',
  '/alpha/%2e%2e/beta/secret',
  '/alpha/.%2E/beta/secret',
  '/alpha%2F..%2Fbeta/secret',
  '/alpha/..%2fbeta/secret',
  '/alpha/..%5Cbeta/secret',
  '/alpha/..\\beta/secret',
  '/alpha/%00/x',
  '/../alpha/x',
  `http://127.0.0.1:${0}/alpha/../beta/secret`,
];

for (const raw of escapes) {
  test(`refused with 400: ${raw}`, async () => {
    const target = raw.replace(':0/', `:${upstream.port}/`);
    const seen = upstream.requests.length;
    const res = await send(harness.port, target);
    assert.equal(res.status, 400);
    assert.equal(res.json().error, 'bad_request');
    assert.match(String(res.headers['proxy-status']), /error=http_request_error/);
    assert.equal(upstream.requests.length, seen, 'nothing reached the upstream');
    assert.equal(alpha.peekCalls + alpha.tokenCalls + beta.peekCalls + beta.tokenCalls, 0, 'no token was asked for');
  });
}

test('a dot-segment inside the company is resolved and the resolved path is what is sent', async () => {
  const res = await send(harness.port, '/alpha/a/../b/./c?x=/../y');
  assert.equal(res.status, 200);
  const echo = res.json<{ url: string; headers: Record<string, string> }>();
  assert.equal(echo.url, '/alpha/b/c?x=/../y');
  assert.equal(echo.headers.authorization, 'Bearer tok-alpha');
});
