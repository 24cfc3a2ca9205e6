// Regression (found by attacking the new core): an upstream status line whose reason phrase holds a control character (llhttp accepts
// it, Node's ServerResponse.writeHead refuses it) makes the sidecar reset the client connection
// instead of answering 502: the refused statusMessage stays on the response, so the error answer's
// writeHead throws too and #internalError falls back to res.destroy().
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rawExchange, startRawUpstream } from '../helpers/raw-http.js';
import type { RawUpstream } from '../helpers/raw-http.js';
import { startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

let upstream: RawUpstream;
let harness: Harness;
before(async () => {
  upstream = await startRawUpstream((_request, socket) => {
    socket.write(Buffer.from('HTTP/1.1 200 O\x01K\r\ncontent-length: 2\r\n\r\nok', 'latin1'));
    return 'handled';
  });
  harness = await startHarness([{ name: 'co', url: `http://127.0.0.1:${upstream.port}/co`, tokens: new StaticTokenSource('tok') }]);
});
after(async () => {
  await harness.close();
  await upstream.close();
});

test('a reason phrase the sidecar cannot repeat gets an answer (the upstream\'s status or a 502), not a reset', async () => {
  const res = await rawExchange(harness.port, 'GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
  assert.ok(res.status === 200 || res.status === 502, `status ${res.status}`);
});

test('an unsolicited 101, or a status Node will not write, is answered 502 at once (not after UPSTREAM_TIMEOUT)', async () => {
  for (const head of ['HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: evil\r\n\r\n', 'HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n']) {
    const odd = await startRawUpstream((_request, socket) => {
      socket.write(head);
      return 'handled';
    });
    const h = await startHarness([{ name: 'o', url: `http://127.0.0.1:${odd.port}/co`, tokens: new StaticTokenSource('tok') }], { upstreamTimeout: 30 });
    try {
      const res = await rawExchange(h.port, 'GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
      assert.equal(res.status, 502, head.slice(0, 20));
      assert.ok(res.headers['proxy-status']);
    } finally {
      await h.close();
      await odd.close();
    }
  }
});
