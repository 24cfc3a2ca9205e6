// The settings of issue 10's egress proxy and client certificate: where a proxy comes from and how
// it is shown, `none`, bad values naming their setting without echoing credentials, the loop guard,
// and the client certificate files checked at start-up. A separate file from load.test.ts so the
// two can change independently.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';
import { makeWorkDir } from '../../helpers/e2e-stack.js';
import { makeClientCertificate, makeTestPki } from '../../helpers/tls.js';
import type { TestClientCertificate, TestPki } from '../../helpers/tls.js';
import { problemsOf } from '../../helpers/config-problems.js';

const dir = makeWorkDir('ltp-config-egress-');
const keyFile = dir.write('key.pem', '-----BEGIN PRIVATE KEY-----\nnot checked here\n-----END PRIVATE KEY-----\n');
const base = {
  LOGICNETS_URL: 'https://lua5.logicnets.local/logicnets',
  LOGICNETS_CLIENT_ID: 'client',
  LOGICNETS_PRIVATE_KEY_FILE: keyFile,
};
let pki: TestPki;
let a: TestClientCertificate;
let b: TestClientCertificate;

before(() => {
  pki = makeTestPki();
  a = makeClientCertificate(pki, 'a');
  b = makeClientCertificate(pki, 'b');
});
after(() => {
  pki.cleanup();
  dir.cleanup();
});

test('HTTPS_PROXY applies to the upstream and the token endpoint, shown without credentials', () => {
  const [u] = loadConfig({ env: { ...base, HTTPS_PROXY: 'http://user:pw@proxy.corp:3128' } }).upstreams;
  assert.equal(u?.egress?.api.proxyUrl, 'http://user:pw@proxy.corp:3128/');
  assert.equal(u?.egress?.api.description, 'via http://***@proxy.corp:3128 (HTTPS_PROXY)');
  assert.equal(u?.egress?.token.description, 'via http://***@proxy.corp:3128 (HTTPS_PROXY)');
  const [direct] = loadConfig({ env: base }).upstreams;
  assert.deepEqual(direct?.egress?.api, { proxyUrl: undefined, description: 'direct (no https_proxy set)', warning: undefined });
});

test('NO_PROXY is decided per destination (API and token endpoint may differ)', () => {
  const [u] = loadConfig({
    env: { ...base, LOGICNETS_TOKEN_URL: 'https://idp.corp/token', https_proxy: 'proxy.corp:3128', no_proxy: '.logicnets.local' },
  }).upstreams;
  assert.equal(u?.egress?.api.description, 'direct (no_proxy lists lua5.logicnets.local)');
  assert.equal(u?.egress?.token.description, 'via http://proxy.corp:3128 (https_proxy)');
});

test('LOGICNETS_EGRESS_PROXY overrides the environment; none means direct', () => {
  const env = { ...base, HTTPS_PROXY: 'http://proxy.corp:3128' };
  const [explicit] = loadConfig({ env: { ...env, LOGICNETS_EGRESS_PROXY: 'http://other.corp:8080' } }).upstreams;
  assert.equal(explicit?.egress?.api.description, 'via http://other.corp:8080 (egressProxy (LOGICNETS_EGRESS_PROXY))');
  const [none] = loadConfig({ env: { ...env, LOGICNETS_EGRESS_PROXY: 'none' } }).upstreams;
  assert.equal(none?.egress?.api.proxyUrl, undefined);
  assert.equal(none?.egress?.api.description, 'direct (egressProxy (LOGICNETS_EGRESS_PROXY)=none)');
});

test('each config-file upstream has its own egressProxy', () => {
  const file = join(dir.path, 'two.yaml');
  writeFileSync(file, stringify({
    upstreams: [
      { url: 'https://a.corp/x', clientId: 'a', privateKeyFile: keyFile, egressProxy: 'http://p.corp:1' },
      { url: 'https://b.corp/y', clientId: 'b', privateKeyFile: keyFile, egressProxy: 'none' },
      { url: 'https://c.corp/z', clientId: 'c', privateKeyFile: keyFile },
    ],
  }));
  const upstreams = loadConfig({ env: { HTTPS_PROXY: 'http://env.corp:3128' }, configFile: file }).upstreams;
  assert.deepEqual(upstreams.map((u) => u.egress?.api.description), [
    'via http://p.corp:1 (upstreams[0].egressProxy (config file))',
    'direct (upstreams[1].egressProxy (config file)=none)',
    'via http://env.corp:3128 (HTTPS_PROXY)',
  ]);
});

test('bad proxy values are named and never echoed', () => {
  const problems = problemsOf(() => loadConfig({ env: { ...base, LOGICNETS_EGRESS_PROXY: 'socks5://u:s3cret@p:1080' } }));
  assert.deepEqual(problems, ['egressProxy (LOGICNETS_EGRESS_PROXY): must be an http:// or https:// proxy URL, not socks5:// (SOCKS proxies are not supported)']);
  const fromEnv = problemsOf(() => loadConfig({ env: { ...base, https_proxy: 'http://u:s3cret@proxy.corp:3128/some/path' } }));
  assert.deepEqual(fromEnv, ['https_proxy: must be just scheme, host and port (and credentials), without a path or query']);
  // HTTP_PROXY is never used for an https upstream, so a value meant for another program is no problem.
  assert.equal(loadConfig({ env: { ...base, HTTP_PROXY: 'not a url at all' } }).upstreams.length, 1);
});

test('a proxy setting naming the own listener: ignored with a warning from the environment, refused when explicit', () => {
  const [u] = loadConfig({ env: { ...base, LISTEN_PORT: '18080', HTTPS_PROXY: 'http://localhost:18080' } }).upstreams;
  assert.equal(u?.egress?.api.proxyUrl, undefined);
  assert.match(u?.egress?.api.warning ?? '', /^HTTPS_PROXY \(http:\/\/localhost:18080\) names this sidecar's own listener, so it is ignored/);
  const problems = problemsOf(() => loadConfig({ env: { ...base, LISTEN_HOST: '0.0.0.0', LISTEN_PORT: '18080', LOGICNETS_EGRESS_PROXY: 'http://127.0.0.1:18080' } }));
  assert.ok(problems.some((p) => /^egressProxy \(LOGICNETS_EGRESS_PROXY\): http:\/\/127\.0\.0\.1:18080 is this sidecar's own listener \(listenHost \(LISTEN_HOST\) and listenPort \(LISTEN_PORT\)\)/.test(p)), problems.join('\n'));
});

test('client certificate files: both or neither, readable, a certificate, a key, and a matching pair', () => {
  const [u] = loadConfig({ env: { ...base, LOGICNETS_CLIENT_CERT_FILE: a.certFile, LOGICNETS_CLIENT_KEY_FILE: a.keyFile } }).upstreams;
  assert.equal(u?.clientCertFile, a.certFile);
  assert.equal(u?.clientKeyFile, a.keyFile);
  const cases: [Record<string, string>, RegExp][] = [
    [{ LOGICNETS_CLIENT_CERT_FILE: a.certFile }, /^clientKeyFile \(LOGICNETS_CLIENT_KEY_FILE\): is required when clientCertFile/],
    [{ LOGICNETS_CLIENT_KEY_FILE: a.keyFile }, /^clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\): is required when clientKeyFile/],
    [{ LOGICNETS_CLIENT_CERT_FILE: a.certFile, LOGICNETS_CLIENT_KEY_FILE: b.keyFile }, /^clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\): the certificate in \S+a\.crt does not match the private key in \S+b\.key/],
    [{ LOGICNETS_CLIENT_CERT_FILE: join(dir.path, 'gone.crt'), LOGICNETS_CLIENT_KEY_FILE: a.keyFile }, /^clientCertFile \(LOGICNETS_CLIENT_CERT_FILE\): \S+gone\.crt does not exist/],
    [{ LOGICNETS_CLIENT_CERT_FILE: a.certFile, LOGICNETS_CLIENT_KEY_FILE: a.certFile }, /^clientKeyFile \(LOGICNETS_CLIENT_KEY_FILE\): \S+a\.crt holds no private key/],
  ];
  for (const [env, pattern] of cases) {
    const problems = problemsOf(() => loadConfig({ env: { ...base, ...env } }));
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', pattern);
  }
});
