// The TLS files of an upstream (CA, client certificate and key): re-read when they change, a broken
// change keeps the previous context, listeners hear of each good reload, and a bad start is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TlsSource } from '../../../src/lib/tls-source.js';
import { makeWorkDir } from '../../helpers/e2e-stack.js';
import { makeLogSink } from '../../helpers/log-sink.js';
import { makeClientCertificate, makeTestPki } from '../../helpers/tls.js';
import type { TestClientCertificate, TestPki } from '../../helpers/tls.js';
import { waitUntil } from '../../helpers/wait-until.js';

let pki: TestPki;
let alice: TestClientCertificate;
let bob: TestClientCertificate;
const dir = makeWorkDir('ltp-tls-source-');

before(() => {
  pki = makeTestPki();
  alice = makeClientCertificate(pki, 'alice');
  bob = makeClientCertificate(pki, 'bob');
});
after(() => {
  pki.cleanup();
  dir.cleanup();
});

/** Replaces `file` the way a Secret update does: new content renamed over it. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.new`, text);
  renameSync(`${file}.new`, file);
}

test('a changed pair is loaded, a broken one is refused while the previous stays in use', async () => {
  const certFile = dir.write('client.crt', alice.certPem);
  const keyFile = dir.write('client.key', alice.keyPem);
  const logs = makeLogSink('info');
  const source = await TlsSource.open({ caFile: pki.caCertFile, clientCertFile: certFile, clientKeyFile: keyFile },
    { logger: logs.logger, pollIntervalMs: 20 });
  let changes = 0;
  source.onChange(() => { changes += 1; });
  try {
    const first = source.current();
    assert.equal(first.generation, 0);
    assert.ok(first.context !== undefined);
    assert.match(source.clientCertificate ?? '', /^CN=alice, issued by CN=logicnets-token-proxy test CA/);

    replace(certFile, bob.certPem); // bob's certificate with alice's key: does not fit
    await waitUntil(() => logs.text().includes('do not belong together'), 'the mismatch is reported');
    assert.equal(source.current(), first, 'the previous context stays in use');
    assert.equal(changes, 0);
    assert.ok(!logs.text().includes('PRIVATE KEY'));

    replace(keyFile, bob.keyPem);
    await waitUntil(() => source.current().generation === 1, 'the fitting pair is loaded');
    assert.match(source.clientCertificate ?? '', /^CN=bob,/);
    assert.equal(changes, 1);
    assert.equal(logs.entries().filter((e) => e.level === 'error').length, 1, 'the broken state was reported once');
  } finally {
    source.close();
  }
});

test('without files there is nothing to watch and Node\'s default context applies', async () => {
  const source = await TlsSource.open({}, { logger: makeLogSink().logger });
  assert.deepEqual(source.current(), { context: undefined, generation: 0 });
  assert.equal(source.clientCertificate, undefined);
  source.close();
});

test('an unusable start is refused, naming the file', async () => {
  const logger = makeLogSink().logger;
  await assert.rejects(TlsSource.open({ clientCertFile: alice.certFile, clientKeyFile: bob.keyFile }, { logger }),
    /the client certificate \S+alice\.crt and the key \S+bob\.key: the certificate and the private key do not belong together/);
  await assert.rejects(TlsSource.open({ clientCertFile: join(dir.path, 'none.crt'), clientKeyFile: bob.keyFile }, { logger }),
    /cannot read \S+none\.crt \(ENOENT\)/);
  await assert.rejects(TlsSource.open({ clientCertFile: alice.certFile }, { logger }), /needs both the certificate file and the key file/);
});
