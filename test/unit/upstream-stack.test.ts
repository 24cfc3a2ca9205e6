// The pooled upstream connections: closed after the idle timeout, or a second before the server's
// own Keep-Alive hint when that is shorter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createUpstreamAgent } from '../../src/upstream-stack.js';

async function idleTimeoutAfterOneRequest(keepAliveTimeoutMs: number, idleTimeoutMs: number): Promise<number | 'closed'> {
  const server = http.createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = keepAliveTimeoutMs;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/co`;
  const agent = createUpstreamAgent(url, undefined, { idleTimeoutMs });
  try {
    const freed = new Promise<Socket>((resolve) => agent.once('free', (socket: Socket) => resolve(socket)));
    await new Promise<void>((resolve, reject) => {
      http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    const socket = await freed;
    await new Promise((resolve) => setImmediate(resolve));
    return socket.destroyed ? 'closed' : socket.timeout ?? 0;
  } finally {
    agent.destroy();
    server.close();
  }
}

// Regression: the server's shorter Keep-Alive hint was ignored (Node applies it only below an agent
// timeout, unset here), so the sidecar reused connections the server was about to close.
test('a shorter Keep-Alive hint from the server wins, a second early', async () => {
  assert.equal(await idleTimeoutAfterOneRequest(3000, 4000), 2000);
});

test('without a shorter hint the idle timeout applies', async () => {
  assert.equal(await idleTimeoutAfterOneRequest(10_000, 4000), 4000);
});

test('a hint of one second or less means the connection is not kept', async () => {
  assert.equal(await idleTimeoutAfterOneRequest(1000, 4000), 'closed');
});
