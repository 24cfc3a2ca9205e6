// Regression (found by attacking the new core): a token endpoint's OAuth error answer freezes the whole sidecar. sanitizeDescription
// (src/token/response.ts:301) runs /[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g over
// the untruncated error_description (up to the 1 MiB response cap): quadratic backtracking on a
// long run of token characters without dots. 80 kB already blocks the event loop ~8 s; 1 MiB,
// ~20 min: no proxy request, probe or timer runs meanwhile, and the cache retries the fetch.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TokenEndpointClient } from '../../../src/token/endpoint.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { makeLogSink } from '../../helpers/log-sink.js';

// Under the 1 MiB cap; with the quadratic pattern back, 200 kB would block for about a minute, far
// above the 2 s bound below, which leaves a loaded CI machine (files run four at once) ample room.
const DESCRIPTION_BYTES = 200_000;

let server: http.Server;
let port: number;
before(async () => {
  const body = JSON.stringify({ error: 'invalid_client', error_description: 'a'.repeat(DESCRIPTION_BYTES) });
  server = http.createServer((_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('an OAuth error answer with a long error_description does not block the event loop', async () => {
  const client = new TokenEndpointClient({
    tokenUrl: `http://127.0.0.1:${port}/oauth2token`,
    method: 'POST',
    clientAuth: (params) => { params.set('client_assertion', 'x'.repeat(40)); return Promise.resolve(); },
    clock: new ManualClock(),
    logger: makeLogSink('trace').logger,
    timeoutMs: 5000,
    defaultLifetimeSeconds: 600,
  });
  // Longest pause of the event loop while the answer is read.
  let longest = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 5);
  await client.fetchToken().catch(() => undefined);
  clearInterval(probe);
  client.close();
  assert.ok(longest < 2000, `the event loop was blocked for ${Math.round(longest)} ms by one token answer of ${DESCRIPTION_BYTES} bytes`);
});
