// mTLS end to end: the LogicNets emulator behind an ingress that requires a client certificate
// (the whole HTTPS server, so the token endpoint and the API alike). A good certificate passes;
// no certificate, or one from a CA the server does not trust, gets a clear "client certificate"
// error; a certificate that does not match its key, a missing file, or only one of the two files
// stops start-up naming the setting; a replaced certificate is used for new connections.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCheck } from '../../src/commands/check.js';
import { startEmulator } from '../../src/emulator/emulator.js';
import type { Emulator } from '../../src/emulator/emulator.js';
import { ConfigError } from '../../src/lib/errors.js';
import { call, makeServerUser, makeWorkDir, sidecarEnv, startE2eSidecar } from '../helpers/e2e-stack.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import { makeLogSink } from '../helpers/log-sink.js';
import { makeClientCertificate, makeTestPki } from '../helpers/tls.js';
import type { TestClientCertificate, TestPki } from '../helpers/tls.js';
import { waitUntil } from '../helpers/wait-until.js';

const dir = makeWorkDir();
const user = makeServerUser(dir);

let pki: TestPki;
let roguePki: TestPki;
let good: TestClientCertificate;
let other: TestClientCertificate;
let rogue: TestClientCertificate;
let emulator: Emulator;

before(async () => {
  // RSA keys here, the most common kind in real installations; the other tests' PKIs use EC keys (cheaper).
  pki = makeTestPki(['logicnets.test'], 'rsa');
  roguePki = makeTestPki();
  good = makeClientCertificate(pki, 'good-client');
  other = makeClientCertificate(pki, 'other-client');
  rogue = makeClientCertificate(roguePki, 'rogue-client');
  emulator = await startEmulator({
    clients: [{ clientId: user.clientId, publicKey: user.key.publicKey }],
    tls: { cert: pki.serverCertPem, key: pki.serverKeyPem, clientCa: pki.caCertPem },
  });
});

after(async () => {
  await emulator?.close();
  pki?.cleanup();
  roguePki?.cleanup();
  dir.cleanup();
});

function envWith(cert?: { certFile: string; keyFile: string }): Record<string, string> {
  return {
    ...sidecarEnv(emulator, user, pki),
    ...(cert === undefined ? {} : { LOGICNETS_CLIENT_CERT_FILE: cert.certFile, LOGICNETS_CLIENT_KEY_FILE: cert.keyFile }),
  };
}

async function check(env: Record<string, string>): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await runCheck({ env, write: (line) => lines.push(line) });
  return { code, text: lines.join('\n') };
}

test('a good client certificate: the token request and the API calls pass, in both modes', async () => {
  const sidecar = await startE2eSidecar({ env: envWith(good) });
  try {
    assert.equal((await call(sidecar.proxyPort, '/logicnets/_echo')).status, 200);
    assert.equal((await call(sidecar.proxyPort, `http://127.0.0.1:${emulator.port}/logicnets/_echo`)).status, 200);
  } finally {
    await sidecar.close();
  }
  const { code, text } = await check(envWith(good));
  assert.equal(code, 0, text);
  assert.match(text, /ok +client cert +CN=good-client, issued by CN=logicnets-token-proxy test CA, valid until \S+ \(.*good-client\.crt\)/);
});

test('the client certificate is presented through an egress proxy\'s tunnel too', async () => {
  const proxy = await startConnectProxy({ hosts: { 'logicnets.test': '127.0.0.1' } });
  try {
    const env = {
      ...envWith(good),
      LOGICNETS_URL: `https://logicnets.test:${emulator.port}/logicnets`,
      LOGICNETS_TOKEN_AUDIENCE: emulator.audience,
      HTTPS_PROXY: proxy.url(),
    };
    const sidecar = await startE2eSidecar({ env });
    try {
      const reply = await call(sidecar.proxyPort, '/logicnets/_echo');
      assert.equal(reply.status, 200, reply.body.toString());
    } finally {
      await sidecar.close();
    }
    assert.ok(proxy.connects.length >= 2, 'the token request and the API call went through the tunnel');
    const { code, text } = await check({ ...env, LOGICNETS_CLIENT_CERT_FILE: '', LOGICNETS_CLIENT_KEY_FILE: '' });
    assert.equal(code, 1, 'without the certificate the same path is refused');
    assert.match(text, /egress +token endpoint and API via http:\/\/127\.0\.0\.1:\d+ \(HTTPS_PROXY\)/);
    assert.match(text, /FAILED +token request +the token endpoint logicnets\.test:\d+ refused the TLS handshake for want of an acceptable client certificate/);
  } finally {
    await proxy.close();
  }
});

test('no client certificate: the server refuses, and the error says it wants one', async () => {
  const before_ = emulator.stats.tokenRequests;
  const sidecar = await startE2eSidecar({ env: envWith() });
  try {
    const reply = await call(sidecar.proxyPort, '/logicnets/_echo');
    assert.equal(reply.status, 503, reply.body.toString());
    assert.equal(reply.json<{ error: string }>().error, 'token_unavailable');
  } finally {
    await sidecar.close();
  }
  const { code, text } = await check(envWith());
  assert.equal(code, 1);
  assert.match(text, /FAILED +token request +the token endpoint 127\.0\.0\.1:\d+ refused the TLS handshake for want of an acceptable client certificate \(ERR_SSL_\w+\): it requires mTLS; set clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\)/);
  assert.equal(emulator.stats.tokenRequests, before_, 'no request got through the handshake');
});

test('a certificate from a CA the server does not trust: the cut connection points at the certificate', async () => {
  // Over TLS 1.3 the server refuses the certificate after the client's handshake is done and resets
  // the connection (the alert rarely arrives first): the error must still point at the certificate.
  const { code, text } = await check(envWith(rogue));
  assert.equal(code, 1);
  assert.match(text, /FAILED +token request +.*(refused the TLS handshake for want of an acceptable client certificate|was closed before a complete answer came \(ECONNRESET\).*that it accepts the client certificate set in clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\))/);
});

test('a certificate that does not match its key, a missing file, or only one of the two stops start-up naming the setting', async () => {
  const refused = async (env: Record<string, string>, pattern: RegExp): Promise<void> => {
    await assert.rejects(startE2eSidecar({ env }), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes('PRIVATE KEY'), 'no key material in the message');
      return true;
    });
  };
  await refused(envWith({ certFile: good.certFile, keyFile: other.keyFile }),
    /clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\): the certificate in \S+good-client\.crt does not match the private key in \S+other-client\.key \(clientKeyFile \(LOGICNETS_CLIENT_KEY_FILE\)\)/);
  await refused(envWith({ certFile: good.certFile, keyFile: join(dir.path, 'absent.key') }),
    /clientKeyFile \(LOGICNETS_CLIENT_KEY_FILE\): \S+absent\.key does not exist/);
  await refused({ ...envWith(), LOGICNETS_CLIENT_CERT_FILE: good.certFile },
    /clientKeyFile \(LOGICNETS_CLIENT_KEY_FILE\): is required when clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\) is set/);
  await refused(envWith({ certFile: good.keyFile, keyFile: good.keyFile }),
    /clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\): \S+good-client\.key holds no PEM certificate/);
});

test('a replaced client certificate is used for new connections (the files are re-read)', async () => {
  // Start with a certificate the server does not trust, in files the test then replaces the way a
  // Secret update or cert-manager does: new content renamed over the old files.
  const certFile = dir.write('client.crt', rogue.certPem);
  const keyFile = dir.write('client.key', rogue.keyPem);
  const logs = makeLogSink('info');
  const sidecar = await startE2eSidecar({ env: envWith({ certFile, keyFile }), logger: logs.logger });
  try {
    const refusedReply = await call(sidecar.proxyPort, '/logicnets/_echo');
    assert.equal(refusedReply.status, 503);
    const [stack] = sidecar.sidecar.stacks;
    assert.ok(stack !== undefined);
    let reloads = 0;
    stack.tls.onChange(() => { reloads += 1; });
    writeFileSync(join(dir.path, 'client.key.new'), good.keyPem);
    writeFileSync(join(dir.path, 'client.crt.new'), good.certPem);
    renameSync(join(dir.path, 'client.key.new'), keyFile);
    renameSync(join(dir.path, 'client.crt.new'), certFile);
    await waitUntil(() => stack.tls.clientCertificate?.startsWith('CN=good-client') === true, 'the new certificate is loaded', 15_000);
    assert.ok(reloads >= 1, 'onChange told of the reload');
    assert.match(logs.text(), /reloaded the TLS files/);
    // The token cache retries after its backoff (a reload does not end it yet): a bounded wait for the first success.
    const giveUpAt = Date.now() + 15_000;
    let reply = await call(sidecar.proxyPort, '/logicnets/_echo');
    while (reply.status !== 200 && Date.now() < giveUpAt) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      reply = await call(sidecar.proxyPort, '/logicnets/_echo');
    }
    assert.equal(reply.status, 200, reply.body.toString());
  } finally {
    await sidecar.close();
  }
});
