// Regression (found by attacking the new core): when a 401 to a request with a body is resent with a fresh token, the 401's body is drained with
// answer.resume() and its upstream request is only forgotten, never destroyed (exchange.ts
// upstreamAnswered / #resend when the client's body has ended). An upstream that sends a 401 whose
// body never ends keeps that connection, untracked and with no timeout, for ever: one leaked
// upstream connection per request.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { send, startHarness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test('the connection of a resent 401 whose body never ends is closed, not kept for ever', async () => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      if (d.toString('latin1').includes('Bearer first')) {
        socket.write('HTTP/1.1 401 Unauthorized\r\ncontent-length: 1000000\r\n\r\nnot ');
      } else {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  const port = (server.address() as AddressInfo).port;
  const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${port}/co`, tokens: new StaticTokenSource(['first', 'second']) }],
    { upstreamTimeout: 1, idleTimeout: 1 });
  cleanups.push(() => h.close());

  const res = await send(h.port, '/co/x', { method: 'PUT', body: 'payload' });
  assert.equal(res.status, 200);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(h.proxy.inFlight(), 0);
  // Only the answered attempt's connection may stay (idle in the pool); the 401's must be gone.
  const stuck = [...sockets].filter((s) => s.bytesWritten > 0 && s.bytesRead > 0);
  assert.ok(sockets.size <= 1, `${sockets.size} upstream connections open 3 s after the request ended (UPSTREAM_TIMEOUT=1, IDLE_TIMEOUT=1); ${stuck.length} carried a request`);
});
