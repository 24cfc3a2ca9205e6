// The outbound agents through a real CONNECT proxy (npm `proxy`): a pooled tunnel is reused (one
// CONNECT for several requests), an idle one is closed down to the proxy's socket, a new TLS
// context after a reload means a new connection, and a proxy that cannot be reached fails with
// ERR_EGRESS_PROXY naming it without its credentials.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SecureContext } from 'node:tls';
import { createOutboundAgent } from '../../../src/lib/outbound-agent.js';
import { EGRESS_PROXY_ERROR } from '../../../src/lib/network-errors.js';
import { trustedSecureContext } from '../../../src/lib/tls-trust.js';
import { closedPort } from '../../helpers/e2e-stack.js';
import { startConnectProxy } from '../../helpers/connect-proxy.js';
import type { ConnectProxy } from '../../helpers/connect-proxy.js';
import { makeTestPki } from '../../helpers/tls.js';
import type { TestPki } from '../../helpers/tls.js';
import { waitUntil } from '../../helpers/wait-until.js';

let pki: TestPki;
let server: https.Server;
let port: number;
let proxy: ConnectProxy;
let context: SecureContext | undefined;
const serverConnections = new Set<unknown>();

before(async () => {
  pki = makeTestPki(['api.test']);
  context = trustedSecureContext(pki.caCertPem);
  server = https.createServer({ cert: pki.serverCertPem, key: pki.serverKeyPem }, (_req, res) => res.end('ok'));
  server.on('secureConnection', (socket) => {
    serverConnections.add(socket);
    socket.on('close', () => serverConnections.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  proxy = await startConnectProxy({ hosts: { 'api.test': '127.0.0.1' } });
});
after(async () => {
  await proxy.close();
  server.closeAllConnections();
  server.close();
  pki.cleanup();
});

function get(agent: Agent): Promise<number | string> {
  return new Promise((resolve) => {
    https.get(`https://api.test:${port}/`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', (error: NodeJS.ErrnoException) => resolve(`${error.code}: ${error.message}`));
  });
}

test('a pooled tunnel is reused, and an idle one is closed down to the proxy', async () => {
  proxy.connects.length = 0;
  const agent = createOutboundAgent({ protocol: 'https:', proxy: new URL(proxy.url()), tls: { current: () => ({ context, generation: 0 }) }, idleTimeoutMs: 200 });
  try {
    assert.equal(await get(agent), 200);
    assert.equal(await get(agent), 200);
    assert.equal(proxy.connects.length, 1, 'the second request reused the tunnel');
    await waitUntil(() => serverConnections.size === 0, 'the idle tunnel is closed', 5000);
  } finally {
    agent.destroy();
  }
});

test('a reloaded TLS context is used from the next connection on', async () => {
  proxy.connects.length = 0;
  let version = { context, generation: 0 };
  const agent = createOutboundAgent({ protocol: 'https:', proxy: new URL(proxy.url()), tls: { current: () => version } });
  try {
    assert.equal(await get(agent), 200);
    version = { context: trustedSecureContext(pki.caCertPem), generation: 1 };
    assert.equal(await get(agent), 200);
    assert.equal(proxy.connects.length, 2, 'a connection of the old generation is not reused for the new one');
    version = { context: undefined, generation: 2 };
    assert.match(String(await get(agent)), /^UNABLE_TO_VERIFY_LEAF_SIGNATURE/, 'without the CA the next connection is refused: the context is really used');
  } finally {
    agent.destroy();
  }
});

test('a proxy that cannot be reached: ERR_EGRESS_PROXY, naming the proxy without its credentials', async () => {
  const dead = await closedPort();
  const agent = createOutboundAgent({ protocol: 'https:', proxy: new URL(`http://user:s3cret@127.0.0.1:${dead}`), tls: { current: () => ({ context, generation: 0 }) } });
  try {
    const result = String(await get(agent));
    assert.equal(result, `${EGRESS_PROXY_ERROR}: the egress proxy http://***@127.0.0.1:${dead} could not open a tunnel to api.test:${port} (ECONNREFUSED)`);
  } finally {
    agent.destroy();
  }
});

test('an https:// proxy is spoken to over TLS, its certificate checked with the proxy trust (never the client certificate)', async () => {
  const tlsProxy = await startConnectProxy({ hosts: { 'api.test': '127.0.0.1' }, tls: { cert: pki.serverCertPem, key: pki.serverKeyPem } });
  const make = (proxyTrust: SecureContext | undefined) => createOutboundAgent({
    protocol: 'https:', proxy: new URL(tlsProxy.url()), proxyTrust, tls: { current: () => ({ context, generation: 0 }) },
  });
  const trusting = make(trustedSecureContext(pki.caCertPem));
  const untrusting = make(undefined);
  try {
    assert.equal(await get(trusting), 200);
    assert.match(String(await get(untrusting)), /^ERR_EGRESS_PROXY: the egress proxy https:\/\/127\.0\.0\.1:\d+ could not open a tunnel to api\.test:\d+ \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    assert.equal(tlsProxy.connects.length, 1, 'the untrusted proxy never got a CONNECT');
  } finally {
    trusting.destroy();
    untrusting.destroy();
    await tlsProxy.close();
  }
});
