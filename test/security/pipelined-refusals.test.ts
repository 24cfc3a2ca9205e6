// Regression (found by attacking the new core): an Upgrade or CONNECT request pipelined behind a request in flight is refused on the raw
// socket at once (server.ts #onUpgrade/#onConnect -> refusals.ts refuseOnSocket), ahead of the
// response in flight: the client reads the 501/405 as the answer to its FIRST request, and the
// real answer is lost (response desync on the client connection). #onClientError checks BUSY for
// exactly this; the upgrade/connect refusals do not.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startRawUpstream } from '../helpers/raw-http.js';
import type { RawUpstream } from '../helpers/raw-http.js';
import { startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

let upstream: RawUpstream;
let harness: Harness;
before(async () => {
  upstream = await startRawUpstream((_request, socket) => {
    setTimeout(() => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nreal answer'), 200);
    return 'handled';
  });
  harness = await startHarness([{ name: 'co', url: `http://127.0.0.1:${upstream.port}/co`, tokens: new StaticTokenSource('tok') }]);
});
after(async () => {
  await harness.close();
  await upstream.close();
});

async function firstStatus(bytes: string): Promise<string> {
  const client = net.connect(harness.port, '127.0.0.1');
  client.on('error', () => {});
  let out = '';
  client.on('data', (d: Buffer) => { out += d.toString('latin1'); });
  client.write(bytes);
  await new Promise((resolve) => setTimeout(resolve, 700));
  client.destroy();
  return out.split('\r\n')[0] ?? '';
}

for (const [name, second] of [
  ['Upgrade', 'GET /co/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
  ['CONNECT', 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n'],
] as const) {
  test(`a pipelined ${name} does not overtake the response in flight`, async () => {
    const line = await firstStatus(`GET /co/slow HTTP/1.1\r\nHost: x\r\n\r\n${second}`);
    assert.equal(line, 'HTTP/1.1 200 OK', `the answer to GET /co/slow began with ${JSON.stringify(line)}`);
  });
}
