import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, get } from 'node:https';
import type { RequestOptions, Server } from 'node:https';
import type { SecureContext } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createOutboundAgent } from '../../../src/lib/outbound-agent.js';
import { trustedSecureContext } from '../../../src/lib/tls-trust.js';
import { createUpstreamAgent } from '../../../src/upstream-stack.js';
import { makeTestPki } from '../../helpers/tls.js';
import type { TestPki } from '../../helpers/tls.js';

let pki: TestPki;
let server: Server;
let port: number;

before(async () => {
  pki = makeTestPki();
  server = createServer({ cert: pki.serverCertPem, key: pki.serverKeyPem }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => {
  server.close();
  pki.cleanup();
});

function status(options: RequestOptions & { secureContext?: SecureContext }): Promise<number | string> {
  return new Promise((resolve) => {
    get(`https://localhost:${port}/`, options, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

test('the secure context trusts the extra CA, and without it the test CA is refused', async () => {
  assert.equal(await status({ secureContext: trustedSecureContext(pki.caCertPem), agent: false }), 200);
  assert.equal(await status({ agent: false }), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  assert.equal(trustedSecureContext(undefined), undefined);
});

// Regression (issue 5): an agent given `ca` made Node parse every root certificate again for each
// new upstream connection (~20 ms of blocked event loop each); every new connection now gets one
// prebuilt context.
test('each new upstream connection gets the one prebuilt secure context, not a CA list', async () => {
  const context = trustedSecureContext(pki.caCertPem);
  const handedOut: (SecureContext | undefined)[] = [];
  const agent = createOutboundAgent({
    protocol: 'https:',
    pooled: false,
    tls: { current: () => { handedOut.push(context); return { context, generation: 0 }; } },
  });
  assert.equal(await status({ agent }), 200);
  assert.equal(await status({ agent }), 200);
  agent.destroy();
  assert.ok(handedOut.length >= 2);
  assert.ok(handedOut.every((c) => c === context));
});

test('createUpstreamAgent trusts the extra CA it is given', async () => {
  const agent = createUpstreamAgent(`https://localhost:${port}/logicnets`, pki.caCertPem);
  assert.equal(await status({ agent }), 200);
  agent.destroy();
});
