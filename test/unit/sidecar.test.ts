// startSidecar wiring: a listener that cannot start leaves nothing open behind it, and the
// proxy's and admin server's messages name settings as the operator set them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/lib/clock.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/load.js';
import { startEmulator } from '../../src/emulator/emulator.js';
import { startSidecar } from '../../src/sidecar.js';
import { call } from '../helpers/e2e-stack.js';
import { makeLogSink } from '../helpers/log-sink.js';

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'ltp-main-'));
const keyFile = join(dir, 'key.pem');
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
const emulator = await startEmulator({ clients: [{ clientId: 'C1', publicKey }] });
test.after(async () => {
  await emulator.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The sidecar's configuration from its environment: the emulator's upstream plus `env`. */
function configWith(env: Record<string, string>): Config {
  return loadConfig({ env: { LOGICNETS_URL: emulator.url, LOGICNETS_CLIENT_ID: 'C1', LOGICNETS_PRIVATE_KEY_FILE: keyFile, ADMIN_HOST: '127.0.0.1', ...env } });
}

// Regression: when the admin port was taken, the proxy listener, token caches and key watchers
// that had already started stayed open.
test('a taken admin port fails start-up and closes the proxy listener and token caches', async (t) => {
  const taken = createServer();
  const adminPort = await listen(taken);
  const probe = createServer();
  const proxyPort = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  t.after(() => taken.close());

  const config = configWith({ LISTEN_PORT: String(proxyPort), ADMIN_PORT: String(adminPort) });
  await assert.rejects(startSidecar(config, { logger: makeLogSink().logger, clock: systemClock, processMetrics: false }),
    /cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\); set adminHost \(ADMIN_HOST\) and adminPort \(ADMIN_PORT\) to a free address/);

  // The proxy port is free again: the listener that had started was closed.
  const again = createServer();
  assert.equal(await listen(again, proxyPort), proxyPort);
  await new Promise((resolve) => again.close(resolve));
  // The token cache was closed: no further token requests arrive.
  const before = emulator.stats.tokenRequests;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(emulator.stats.tokenRequests, before);
});

test('the proxy names the setting behind a 504 as the operator set it (the names from the loader reach the proxy)', async (t) => {
  const config = configWith({ LISTEN_PORT: '0', ADMIN_PORT: '0', UPSTREAM_TIMEOUT: '0.2' });
  const sidecar = await startSidecar(config, { logger: makeLogSink().logger, clock: systemClock, processMetrics: false });
  t.after(() => sidecar.shutdown('test'));
  const answer = await call(sidecar.proxyPort, `${new URL(emulator.url).pathname}/_slow?ms=5000`);
  assert.equal(answer.status, 504);
  assert.match(answer.json<{ message: string }>().message, /did not answer within 0\.2 s; check the upstream, or raise upstreamTimeout \(UPSTREAM_TIMEOUT\)/);
});

test('a taken proxy port fails start-up with one message naming listenHost and listenPort as they were set', async (t) => {
  const taken = createServer();
  const port = await listen(taken);
  t.after(() => taken.close());
  await assert.rejects(startSidecar(configWith({ LISTEN_HOST: '127.0.0.1', LISTEN_PORT: String(port), ADMIN_PORT: '0' }),
    { logger: makeLogSink().logger, clock: systemClock, processMetrics: false }),
  new RegExp(`The proxy cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\); set listenHost \\(LISTEN_HOST\\) and listenPort \\(LISTEN_PORT\\) to a free address\\.$`));
});
