import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackHost } from '../../../src/lib/loopback.js';

test('isLoopbackHost: localhost names, 127.0.0.0/8 and ::1 (bracketed or not), nothing else', () => {
  for (const host of ['localhost', 'LOCALHOST', 'app.localhost', '127.0.0.1', '127.9.8.7', '[::1]', '::1', '[::ffff:127.0.0.1]']) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ['lua5.logicnets.local', 'localhost.example.com', '128.0.0.1', '10.0.0.1', '[::2]', '127.0.0.1.nip.io', '']) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
