// The adapter that reads Node's private `socket._httpMessage.res` (src/lib/keep-alive-hint.ts): this
// fails when a Node release moves the field, instead of the idle timeout silently ignoring the
// server's Keep-Alive hint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { keepAliveHintMs } from '../../../src/lib/keep-alive-hint.js';

test('Node still links a socket turning idle to the response that just ended on it', async () => {
  const server = http.createServer((_req, res) => {
    res.setHeader('keep-alive', 'timeout=7, max=100');
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const seen: (number | undefined)[] = [];
  class Probe extends http.Agent {
    override keepSocketAlive(socket: Duplex): void {
      seen.push(keepAliveHintMs(socket));
      return super.keepSocketAlive(socket);
    }
  }
  const agent = new Probe({ keepAlive: true });
  try {
    await new Promise<void>((resolve, reject) => {
      http.get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [7000]);
  } finally {
    agent.destroy();
    server.close();
  }
});
