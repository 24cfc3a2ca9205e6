// Guards: whatever credentials a client sends (Authorization, Proxy-Authorization, also when
// its Connection header names them), the upstream receives only the sidecar's bearer token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoUpstream } from '../helpers/echo-upstream.js';
import type { EchoUpstream } from '../helpers/echo-upstream.js';
import { send, startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

let upstream: EchoUpstream;
let harness: Harness;

before(async () => {
  upstream = await startEchoUpstream();
  harness = await startHarness([{ name: 'co', url: `${upstream.origin}/co`, tokens: new StaticTokenSource('sidecar-token') }]);
});

after(async () => {
  await harness.close();
  await upstream.close();
});

const variants: Record<string, string>[] = [
  { authorization: 'Basic dXNlcjpwYXNz' },
  { authorization: 'Bearer client-chosen-token' },
  { 'proxy-authorization': 'Basic cHJveHk6cGFzcw==' },
  { authorization: 'Bearer client-chosen-token', 'proxy-authorization': 'Basic cHJveHk6cGFzcw==', connection: 'authorization, proxy-authorization' },
];

for (const [i, headers] of variants.entries()) {
  for (const target of ['/co/x', 'http://127.0.0.1:PORT/co/x']) {
    test(`variant ${i} via ${target.startsWith('/') ? 'gateway' : 'forward'} mode`, async () => {
      const res = await send(harness.port, target.replace('PORT', String(upstream.port)), { headers });
      assert.equal(res.status, 200);
      const seen = res.json<{ headers: Record<string, string> }>().headers;
      assert.equal(seen.authorization, 'Bearer sidecar-token');
      assert.equal(seen['proxy-authorization'], undefined);
      assert.equal(JSON.stringify(seen).includes('client-chosen-token'), false);
      assert.equal(JSON.stringify(seen).includes('dXNlcjpwYXNz'), false);
      assert.equal(JSON.stringify(seen).includes('cHJveHk6cGFzcw=='), false);
    });
  }
}
