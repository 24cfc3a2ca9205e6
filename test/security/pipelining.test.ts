// Regression (found by attacking the new core): requests pipelined on one client connection are all dispatched upstream at once, and
// when the client leaves, those whose responses were still queued are never finished: the
// exchange stays in flight forever and keeps its upstream connection open (the queued
// ServerResponse never emits 'close', which is the only thing Exchange.closed() listens to).
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startHarness } from '../helpers/proxy-harness.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';
import { waitUntil } from '../helpers/wait-until.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Raw upstream: every request is answered by `answer` (or never); tracks open sockets and concurrency. */
async function upstream(answer: (socket: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  let requests = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (d) => {
      requests += d.toString('latin1').split('\r\n\r\n').length - 1;
      answer(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  return { port: (server.address() as AddressInfo).port, sockets, requests: () => requests };
}

test('a client that pipelines requests and leaves does not leave exchanges and upstream connections behind', async () => {
  const BIG = 200_000; // more than the queued response buffers before it pushes back
  const up = await upstream((socket) => setTimeout(() => {
    if (!socket.destroyed) socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${BIG}\r\n\r\n${'x'.repeat(BIG)}`);
  }, 200));
  const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${up.port}/co`, tokens: new StaticTokenSource('tok') }],
    { upstreamTimeout: 1, idleTimeout: 1 });
  cleanups.push(() => h.close());

  const client = net.connect(h.port, '127.0.0.1');
  client.on('error', () => {});
  client.write('GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10));
  await waitUntil(() => up.requests() === 10, 'the upstream has all ten requests');
  client.destroy();

  // IDLE_TIMEOUT and UPSTREAM_TIMEOUT are 1 s: after 4 s nothing of this client may remain.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  assert.equal(h.proxy.inFlight(), 0, 'requests of a gone client are still in flight');
  assert.equal(up.sockets.size, 0, 'upstream connections of a gone client are still open');
});

test('one client connection cannot open more concurrent upstream requests than MAX_CONNECTIONS allows connections', async () => {
  const up = await upstream(() => {}); // never answers
  const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${up.port}/co`, tokens: new StaticTokenSource('tok') }],
    { maxConnections: 2, upstreamTimeout: 2 });
  cleanups.push(() => h.close());
  const client = net.connect(h.port, '127.0.0.1');
  client.on('error', () => {});
  client.write('GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200));
  await new Promise((resolve) => setTimeout(resolve, 500));
  client.destroy();
  assert.ok(up.sockets.size <= 2, `one client connection made ${up.sockets.size} concurrent upstream connections (MAX_CONNECTIONS=2)`);
});

test('a pipelined upload cut off by the client gives its kept-body reservation back and closes its upstream request', async () => {
  const up = await upstream(() => {}); // reads, never answers
  const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${up.port}/co`, tokens: new StaticTokenSource('tok') }],
    { upstreamTimeout: 1, idleTimeout: 1, retryBodyLimit: 1000, retryBodyBudget: 1000 });
  cleanups.push(() => h.close());
  const client = net.connect(h.port, '127.0.0.1');
  client.on('error', () => {});
  client.write('GET /co/first HTTP/1.1\r\nHost: x\r\n\r\n');
  client.write(`PUT /co/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'a'.repeat(10)}`);
  await waitUntil(() => h.proxy.retainedBodyBytes().reserved === 1000 && up.requests() === 2, 'the upload is on its way upstream');
  client.destroy();
  await new Promise((resolve) => setTimeout(resolve, 4000));
  assert.equal(h.proxy.retainedBodyBytes().reserved, 0, 'RETRY_BODY_BUDGET stays reserved for a client that is gone');
  assert.equal(h.proxy.inFlight(), 0);
  assert.equal(up.sockets.size, 0, 'the half-sent upstream request is still open');
});
