// Guards: the credentials of an egress proxy URL reach the proxy (as Proxy-Authorization) and
// nothing else, even with everything turned up: the `token` and `check` commands run as real
// processes with LOG_LEVEL=trace and DEBUG=* (which makes the proxy agent library print its
// proxy URL), through a real CONNECT proxy that requires those credentials.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Emulator } from '../../src/emulator/emulator.js';
import { runCliProcess } from '../helpers/cli.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import type { ConnectProxy } from '../helpers/connect-proxy.js';
import { makeServerUser, makeWorkDir, startE2eEmulator } from '../helpers/e2e-stack.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';

const dir = makeWorkDir();
const user = makeServerUser(dir);
const credentials = { user: 'egress-user', password: 'egr3ss-pa55-7f1d' };
const basic = Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64');

let pki: TestPki;
let emulator: Emulator;
let proxy: ConnectProxy;

before(async () => {
  pki = makeTestPki(['logicnets.test']);
  emulator = await startE2eEmulator({ pki, users: [user] });
  proxy = await startConnectProxy({ hosts: { 'logicnets.test': '127.0.0.1' }, credentials });
});
after(async () => {
  await proxy?.close();
  await emulator?.close();
  pki?.cleanup();
  dir.cleanup();
});

test('token and check through an authenticating proxy print no proxy credentials, even at trace with DEBUG=*', async () => {
  const env = {
    LOGICNETS_URL: `https://logicnets.test:${emulator.port}/logicnets`,
    LOGICNETS_CLIENT_ID: user.clientId,
    LOGICNETS_PRIVATE_KEY_FILE: user.keyFile,
    LOGICNETS_CA_FILE: pki.caCertFile,
    LOGICNETS_TOKEN_AUDIENCE: emulator.audience,
    https_proxy: proxy.url(credentials),
    LOG_LEVEL: 'trace',
    DEBUG: '*',
  };
  const token = await runCliProcess(['token'], env);
  assert.equal(token.code, 0, token.stderr);
  assert.ok(proxy.connects.length >= 1 && proxy.connects.every((c) => c.proxyAuthorization === `Basic ${basic}`));
  const check = await runCliProcess(['check'], env);
  assert.equal(check.code, 0, `${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /egress +token endpoint and API via http:\/\/\*\*\*@127\.0\.0\.1:\d+ \(https_proxy\)/);
  for (const [what, text] of [['token', token.stdout + token.stderr], ['check', check.stdout + check.stderr]] as const) {
    assert.ok(!text.includes(credentials.password), `${what} printed the proxy password`);
    assert.ok(!text.includes(basic), `${what} printed the Proxy-Authorization value`);
    assert.ok(!text.includes(encodeURIComponent(credentials.password)), `${what} printed the encoded password`);
  }
});
