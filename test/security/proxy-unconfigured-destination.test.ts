// Guards: a destination that matches no configured upstream is refused with 403 and never
// receives a token (the token sources are not even asked): the sidecar is no open proxy.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startEchoUpstream } from '../helpers/echo-upstream.js';
import type { EchoUpstream } from '../helpers/echo-upstream.js';
import { send, startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

let configured: EchoUpstream;
let stranger: EchoUpstream;
let harness: Harness;
const one = new StaticTokenSource('tok-one-secret');
const two = new StaticTokenSource('tok-two-secret');

before(async () => {
  configured = await startEchoUpstream();
  stranger = await startEchoUpstream();
  harness = await startHarness([
    { name: 'one', url: `http://127.0.0.1:${configured.port}/one`, tokens: one },
    { name: 'two', url: `http://127.0.0.1:${configured.port}/two`, tokens: two },
  ]);
});

after(async () => {
  await harness.close();
  await configured.close();
  await stranger.close();
});

const targets = (): string[] => [
  `http://localhost:${stranger.port}/one/x`,
  `http://127.0.0.1:${stranger.port}/one/x`,
  `http://127.0.0.1:${configured.port}/three/x`,
  `http://127.0.0.1:${configured.port}/`,
  `http://127.0.0.1:${configured.port}/onex/y`,
  'http://attacker.example/one/x',
  '/three/x',
  '/',
];

test('every unconfigured destination gets 403 destination_not_configured and no token', async () => {
  for (const target of targets()) {
    const res = await send(harness.port, target, { method: 'POST', body: 'data', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 403, target);
    assert.equal(res.json().error, 'destination_not_configured', target);
    assert.match(String(res.headers['proxy-status']), /^logicnets-token-proxy; error=destination_not_found; details="/, target);
    assert.doesNotMatch(res.body.toString(), /tok-(one|two)-secret/);
  }
  assert.equal(stranger.requests.length, 0, 'the stranger was never contacted');
  assert.equal(configured.requests.length, 0, 'nothing was forwarded');
  assert.equal(one.peekCalls + one.tokenCalls + two.peekCalls + two.tokenCalls, 0, 'no token source was asked');
  assert.equal(harness.metrics.finished.every((m) => m.upstream === 'none' && m.code === 403), true);
});

test('a configured destination still works (the test can tell the difference)', async () => {
  const res = await send(harness.port, `http://127.0.0.1:${configured.port}/two/ok`);
  assert.equal(res.status, 200);
  assert.equal(two.peekCalls + two.tokenCalls, 2, 'peeked (nothing cached yet), then asked');
  assert.equal(configured.requests.length, 1);
});

test('a CONNECT tunnel to a configured host is refused too (no token can ride in a tunnel)', async () => {
  const asked = one.tokenCalls + one.peekCalls + two.tokenCalls + two.peekCalls;
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: harness.port, method: 'CONNECT', path: `127.0.0.1:${configured.port}`, agent: false });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => resolve(res.statusCode ?? 0));
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 405);
  assert.equal(one.tokenCalls + one.peekCalls + two.tokenCalls + two.peekCalls, asked);
});
