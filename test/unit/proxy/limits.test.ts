// The proxy's limits and timeouts, over real sockets: UPSTREAM_TIMEOUT is a deadline for the
// response head (a dripping upstream cannot hold a request), IDLE_TIMEOUT cuts a body that stalls
// in either direction (a client that stops reading frees its upstream connection), an early final
// answer reaches the client with its own status, MAX_CONNECTIONS answers 503, and the bytes kept
// for resends never exceed RETRY_BODY_BUDGET, whatever the concurrency.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { rawExchange } from '../../helpers/raw-http.js';
import { send, startHarness } from '../../helpers/proxy-harness.js';
import type { Harness } from '../../helpers/proxy-harness.js';
import { StaticTokenSource } from '../../helpers/static-token-source.js';
import { waitUntil } from '../../helpers/wait-until.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP server on loopback whose connections `onConnection` drives; closed after the test. */
async function tcpServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return { port: (server.address() as AddressInfo).port, sockets };
}

async function harnessFor(port: number, config: Parameters<typeof startHarness>[1] = {}): Promise<Harness> {
  const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${port}/co`, tokens: new StaticTokenSource('tok') }], config);
  cleanups.push(() => h.close());
  return h;
}

describe('timeouts', () => {
  test('an upstream that drips its response head a byte at a time gets 504 after UPSTREAM_TIMEOUT', async () => {
    const upstream = await tcpServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\n');
        const drip = setInterval(() => socket.write('x'), 20);
        socket.on('close', () => clearInterval(drip));
      });
    });
    const h = await harnessFor(upstream.port, { upstreamTimeout: 0.3 });
    const res = await send(h.port, '/co/drip');
    assert.equal(res.status, 504);
    assert.equal(res.json<{ error: string }>().error, 'upstream_timeout');
    assert.match(String(res.headers['proxy-status']), /http_response_timeout/);
    await waitUntil(() => upstream.sockets.size === 0, 'the dripping connection is closed');
  });

  test('IDLE_TIMEOUT does not cut a request waiting for a slow upstream answer (UPSTREAM_TIMEOUT bounds that)', async () => {
    const upstream = await tcpServer((socket) => {
      socket.once('data', () => setTimeout(() => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow'), 700));
    });
    const h = await harnessFor(upstream.port, { idleTimeout: 0.2, upstreamTimeout: 5 });
    const res = await send(h.port, '/co/slow');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'slow');
  });

  test('a client that stops reading is cut after IDLE_TIMEOUT, and its upstream connection closed', async () => {
    const upstream = await tcpServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n');
        const block = Buffer.alloc(64 * 1024, 'd');
        const pump = (): void => {
          while (!socket.destroyed && socket.write(`${block.length.toString(16)}\r\n${block.toString()}\r\n`));
        };
        socket.on('drain', pump);
        pump();
      });
    });
    const h = await harnessFor(upstream.port, { idleTimeout: 0.4 });
    const client = net.connect(h.port, '127.0.0.1');
    client.on('error', () => {});
    client.write('GET /co/big HTTP/1.1\r\nHost: x\r\n\r\n');
    client.pause(); // never reads
    await waitUntil(() => upstream.sockets.size === 1, 'the upstream is streaming');
    await waitUntil(() => upstream.sockets.size === 0 && h.proxy.inFlight() === 0, 'the upstream connection is closed and nothing is in flight');
    // What the client had buffered, then the end of a cut (chunked, unfinished) response.
    let received = '';
    client.on('data', (chunk: Buffer) => { received += chunk.toString('latin1'); });
    client.resume();
    await new Promise<void>((resolve) => client.on('close', () => resolve()));
    assert.ok(received.startsWith('HTTP/1.1 200'), 'the answer had begun');
    assert.ok(!received.endsWith('0\r\n\r\n'), 'and was cut, not completed');
  });

  test('a client that stops sending its body is cut after IDLE_TIMEOUT', async () => {
    const upstream = await tcpServer((socket) => socket.resume());
    const h = await harnessFor(upstream.port, { idleTimeout: 0.3 });
    const client = net.connect(h.port, '127.0.0.1');
    client.on('error', () => {});
    client.write('PUT /co/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial');
    await new Promise<void>((resolve) => client.on('close', () => resolve()));
    await waitUntil(() => upstream.sockets.size === 0 && h.proxy.inFlight() === 0, 'the half-sent upstream request is closed');
  });

  test('an early final answer (413 before the body is read, then close) reaches the client with its own status', async () => {
    for (const status of [413, 401, 403]) {
      const upstream = await tcpServer((socket) => {
        socket.once('data', () => {
          socket.end(`HTTP/1.1 ${status} Early\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nearly`);
        });
      });
      const tokens = new StaticTokenSource('tok');
      const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${upstream.port}/co`, tokens }], { retryBodyLimit: 0 });
      cleanups.push(() => h.close());
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: h.port, method: 'PUT', path: '/co/upload', agent: false, headers: { 'content-length': 8 * 1024 * 1024 } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => { body += c.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        });
        req.on('error', () => {}); // the sidecar closes the connection after the early answer
        req.write(Buffer.alloc(256 * 1024));
        const more = setInterval(() => {
          if (req.destroyed || !req.write(Buffer.alloc(64 * 1024))) clearInterval(more);
        }, 5);
        req.on('close', () => clearInterval(more));
      });
      assert.equal(answer.status, status);
      assert.equal(answer.body, 'early');
    }
  });
});

describe('capacity', () => {
  test('connections beyond MAX_CONNECTIONS are answered 503 with JSON and Proxy-Status, then closed; freed slots are reused', async () => {
    const upstream = await tcpServer((socket) => {
      socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
    });
    const h = await harnessFor(upstream.port, { maxConnections: 3 });
    const held = await Promise.all([0, 1, 2].map(async () => {
      const socket = net.connect(h.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      return socket;
    }));
    const refused = await rawExchange(h.port, 'GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(refused.status, 503);
    assert.equal((JSON.parse(refused.body.toString()) as { error: string }).error, 'too_many_connections');
    assert.match(refused.headers['proxy-status'] ?? '', /connection_limit_reached/);
    assert.ok(refused.headers['x-request-id']);
    assert.equal(upstream.sockets.size, 0, 'nothing was forwarded');
    for (const socket of held) socket.destroy();
    await waitUntil(() => h.proxy.inFlight() === 0, 'the refused connection is gone');
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await rawExchange(h.port, 'GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n')).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(status, 200, 'a freed slot serves again');
  });

  test('100 concurrent 1 MiB uploads to a slow upstream: the bytes kept for resends never exceed RETRY_BODY_BUDGET', async () => {
    const budget = 3 * 1024 * 1024;
    let received = 0;
    const upstream = http.createServer((req, res) => {
      // Reads slowly, then answers: every upload is in flight at once.
      req.on('data', (chunk: Buffer) => { received += chunk.length; });
      req.on('end', () => setTimeout(() => res.end('ok'), 20));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => { upstream.closeAllConnections(); upstream.close(() => resolve()); }));
    const h = await harnessFor((upstream.address() as AddressInfo).port, { retryBodyLimit: 1024 * 1024, retryBodyBudget: budget });
    const body = Buffer.alloc(1024 * 1024, 'u');
    const statuses = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      send(h.port, `/co/u${i}`, { method: 'PUT', body }).then((r) => r.status)));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(received, 100 * body.length, 'every body arrived whole');
    const { peak, reserved } = h.proxy.retainedBodyBytes();
    assert.ok(peak <= budget, `peak ${peak} <= budget ${budget}`);
    assert.ok(peak >= body.length, 'some bodies were kept');
    assert.equal(reserved, 0, 'everything is released');
  });
});
