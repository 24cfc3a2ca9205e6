import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, settingsDoc } from '../../../src/config/load.js';
import { problemsOf } from '../../helpers/config-problems.js';

const dir = mkdtempSync(join(tmpdir(), 'ltp-config-'));
const keyFile = join(dir, 'key.pem');
test.after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(keyFile, '-----BEGIN PRIVATE KEY-----\nnot checked here\n-----END PRIVATE KEY-----\n');

const base = {
  LOGICNETS_URL: 'https://lua5.logicnets.local/logicnets/',
  LOGICNETS_CLIENT_ID: '4664FD8C-9CEC-A8A2-D666-02A352A492A1',
  LOGICNETS_PRIVATE_KEY_FILE: keyFile,
};

test('environment variables alone describe one upstream, with the documented defaults', () => {
  const config = loadConfig({ env: base });
  assert.equal(config.upstreams.length, 1);
  const [u] = config.upstreams;
  assert.equal(u?.url, 'https://lua5.logicnets.local/logicnets');
  assert.equal(u?.tokenUrl, 'https://lua5.logicnets.local/logicnets/oauth2token');
  assert.equal(u?.tokenAudience, 'https://lua5.logicnets.local/logicnets');
  assert.equal(u?.clientIssuer, base.LOGICNETS_CLIENT_ID);
  assert.equal(u?.tokenMethod, 'GET');
  assert.equal(u?.assertionTtl, 300);
  assert.equal(u?.name, 'lua5.logicnets.local/logicnets');
  assert.equal(config.listenHost, '127.0.0.1');
  assert.equal(config.listenPort, 8080);
  assert.equal(config.adminHost, '0.0.0.0');
  assert.equal(config.adminPort, 9090);
  assert.equal(config.upstreamTimeout, 60);
  assert.equal(config.shutdownDelay, 0);
  assert.equal(config.shutdownTimeout, 20);
  assert.equal(config.readinessRequireToken, false);
  assert.equal(config.logLevel, 'info');
});

test('overrides from the environment are applied and coerced', () => {
  const config = loadConfig({
    env: {
      ...base, LOGICNETS_TOKEN_METHOD: 'post', LOGICNETS_ASSERTION_TTL: '60', LOGICNETS_CLIENT_ISSUER: 'https://client.org',
      LOGICNETS_TOKEN_URL: 'https://idp.example/token', LOGICNETS_TOKEN_AUDIENCE: 'https://idp.example',
      LISTEN_PORT: '18080', READINESS_REQUIRE_TOKEN: 'true', LOG_LEVEL: 'debug', LOGICNETS_KEY_ID: 'k1',
    },
  });
  const [u] = config.upstreams;
  assert.equal(u?.tokenMethod, 'POST');
  assert.equal(u?.assertionTtl, 60);
  assert.equal(u?.clientIssuer, 'https://client.org');
  assert.equal(u?.tokenUrl, 'https://idp.example/token');
  assert.equal(u?.tokenAudience, 'https://idp.example');
  assert.equal(u?.keyId, 'k1');
  assert.equal(config.listenPort, 18080);
  assert.equal(config.readinessRequireToken, true);
  assert.equal(config.logLevel, 'debug');
});

test('every problem is reported at once, naming the setting and its environment variable', () => {
  const problems = problemsOf(() => loadConfig({
    env: { LOGICNETS_URL: 'ftp://x/y', LOGICNETS_ASSERTION_TTL: '7200', LOGICNETS_TOKEN_METHOD: 'PUT', LISTEN_PORT: 'abc' },
  }));
  const text = problems.join('\n');
  assert.match(text, /url \(LOGICNETS_URL\): must use https:\/\//);
  assert.match(text, /clientId \(LOGICNETS_CLIENT_ID\): it is required/);
  assert.match(text, /privateKeyFile \(LOGICNETS_PRIVATE_KEY_FILE\): a private key is required/);
  assert.match(text, /assertionTtl \(LOGICNETS_ASSERTION_TTL\): must be a whole number of seconds from 1 to 3600/);
  assert.match(text, /tokenMethod \(LOGICNETS_TOKEN_METHOD\): must be GET or POST/);
  assert.match(text, /listenPort \(LISTEN_PORT\)/);
});

test('plain http is refused except towards loopback, and the company path is required', () => {
  assert.match(problemsOf(() => loadConfig({ env: { ...base, LOGICNETS_URL: 'http://lua5.logicnets.local/logicnets' } })).join(),
    /only accepted for loopback/);
  assert.equal(loadConfig({ env: { ...base, LOGICNETS_URL: 'http://127.0.0.1:9/logicnets' } }).upstreams[0]?.url,
    'http://127.0.0.1:9/logicnets');
  assert.match(problemsOf(() => loadConfig({ env: { ...base, LOGICNETS_URL: 'https://lua5.logicnets.local/' } })).join(),
    /must include the company path/);
});

test('a missing key file is named, and an inline key is never echoed', () => {
  assert.match(problemsOf(() => loadConfig({ env: { ...base, LOGICNETS_PRIVATE_KEY_FILE: join(dir, 'nope.pem') } })).join(),
    /LOGICNETS_PRIVATE_KEY_FILE\): .*nope\.pem does not exist/);
  const secret = '-----BEGIN PRIVATE KEY-----SECRETSECRET-----END PRIVATE KEY-----';
  const problems = problemsOf(() => loadConfig({ env: { ...base, LOGICNETS_PRIVATE_KEY: secret, LOGICNETS_ASSERTION_TTL: 'x' } }));
  assert.match(problems.join(), /not both/);
  assert.ok(!problems.join().includes('SECRETSECRET'));
});

test('a YAML file lists several upstreams; camelCase entries get the same defaults', () => {
  const file = join(dir, 'two.yaml');
  writeFileSync(file, [
    'listenPort: 18081',
    'upstreams:',
    '  - name: sales',
    '    url: https://lua5.logicnets.local/sales',
    '    clientId: a',
    `    privateKeyFile: ${keyFile}`,
    '  - url: https://other.logicnets.local/logicnets',
    '    clientId: b',
    `    privateKeyFile: ${keyFile}`,
    '    tokenMethod: post',
  ].join('\n'));
  const config = loadConfig({ env: {}, configFile: file });
  assert.equal(config.listenPort, 18081);
  assert.deepEqual(config.upstreams.map((u) => [u.name, u.tokenUrl, u.tokenMethod]), [
    ['sales', 'https://lua5.logicnets.local/sales/oauth2token', 'GET'],
    ['other.logicnets.local/logicnets', 'https://other.logicnets.local/logicnets/oauth2token', 'POST'],
  ]);
});

test('ambiguous upstreams, unknown keys and mixing file and environment upstreams are refused', () => {
  const file = join(dir, 'ambiguous.json');
  writeFileSync(file, JSON.stringify({
    upstreams: [
      { url: 'https://lua5.logicnets.local/logicnets', clientId: 'a', privateKeyFile: keyFile },
      { url: 'https://lua5.logicnets.local/logicnets/', clientId: 'b', privateKeyFile: keyFile, colour: 'red' },
    ],
    listenPrt: 1,
  }));
  const text = problemsOf(() => loadConfig({ env: { LOGICNETS_URL: 'https://x/y' }, configFile: file })).join('\n');
  assert.match(text, /listenPrt \(config file\): is not a known setting/);
  assert.match(text, /colour \(config file\): is not a known setting/);
  assert.match(text, /LOGICNETS_URL: set while the config file lists upstreams/);
  const ambiguous = problemsOf(() => loadConfig({ env: {}, configFile: file.replace('ambiguous', 'ambiguous2') }));
  assert.match(ambiguous.join(), /CONFIG_FILE .*cannot be read/);
  writeFileSync(join(dir, 'amb3.json'), JSON.stringify({ upstreams: [
    { url: 'https://lua5.logicnets.local/logicnets', clientId: 'a', privateKeyFile: keyFile },
    { url: 'https://lua5.logicnets.local/logicnets', clientId: 'b', privateKeyFile: keyFile, name: 'b' },
  ] }));
  assert.match(problemsOf(() => loadConfig({ env: {}, configFile: join(dir, 'amb3.json') })).join(), /ambiguous/);
});

test('a broken config file is reported with its name', () => {
  const file = join(dir, 'broken.yaml');
  writeFileSync(file, 'upstreams: [\n');
  assert.match(problemsOf(() => loadConfig({ env: {}, configFile: file })).join(), /broken\.yaml\): is not valid YAML/);
});

test('settingsDoc lists every environment variable of the public contract', () => {
  const envs = settingsDoc().map((s) => s.env);
  for (const name of ['LOGICNETS_URL', 'LOGICNETS_CLIENT_ID', 'LOGICNETS_CLIENT_ISSUER', 'LOGICNETS_PRIVATE_KEY_FILE',
    'LOGICNETS_PRIVATE_KEY', 'LOGICNETS_KEY_ID', 'LOGICNETS_TOKEN_URL', 'LOGICNETS_TOKEN_AUDIENCE', 'LOGICNETS_TOKEN_METHOD',
    'LOGICNETS_TOKEN_SCOPE', 'LOGICNETS_ASSERTION_TTL', 'LOGICNETS_CA_FILE', 'LOG_LEVEL', 'CONFIG_FILE', 'LISTEN_HOST',
    'LISTEN_PORT', 'ADMIN_HOST', 'ADMIN_PORT', 'UPSTREAM_TIMEOUT', 'SHUTDOWN_DELAY', 'SHUTDOWN_TIMEOUT', 'READINESS_REQUIRE_TOKEN']) {
    assert.ok(envs.includes(name), `${name} is documented`);
  }
});

// Regression: convict's Boolean read `0`, `no` and `off` as true, so X_FORWARDED=0 turned it on.
test('switches accept true/false/1/0 only; anything else is a problem, not silently true', () => {
  assert.equal(loadConfig({ env: { ...base, X_FORWARDED: '0', READINESS_REQUIRE_TOKEN: '1' } }).xForwarded, false);
  assert.equal(loadConfig({ env: { ...base, READINESS_REQUIRE_TOKEN: 'TRUE' } }).readinessRequireToken, true);
  const text = problemsOf(() => loadConfig({ env: { ...base, X_FORWARDED: 'off', READINESS_REQUIRE_TOKEN: 'yes please' } })).join('\n');
  assert.match(text, /xForwarded \(X_FORWARDED\): must be true or false/);
  assert.match(text, /readinessRequireToken \(READINESS_REQUIRE_TOKEN\): must be true or false/);
});

test('an unparseable URL is named but not echoed (it could carry a secret in its query)', () => {
  const text = problemsOf(() => loadConfig({ env: { ...base, LOGICNETS_TOKEN_URL: 'not a url?secret=hunter2' } })).join('\n');
  assert.match(text, /tokenUrl \(LOGICNETS_TOKEN_URL\): is not a URL/);
  assert.ok(!text.includes('hunter2'));
});

test('any LOGICNETS_* upstream variable next to a file listing upstreams is refused, not ignored', () => {
  const file = join(dir, 'one.json');
  writeFileSync(file, JSON.stringify({ upstreams: [{ url: 'https://lua5.logicnets.local/logicnets', clientId: 'a', privateKeyFile: keyFile }] }));
  assert.match(problemsOf(() => loadConfig({ env: { LOGICNETS_PRIVATE_KEY_FILE: keyFile }, configFile: file })).join(),
    /LOGICNETS_PRIVATE_KEY_FILE: set while the config file lists upstreams/);
});

test('a LISTEN_HOST that is not loopback stops start-up naming it and ALLOW_REMOTE_CLIENTS, unless that is true', () => {
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'proxy.internal', '']) {
    const text = problemsOf(() => loadConfig({ env: { ...base, LISTEN_HOST: host } })).join('\n');
    assert.match(text, /listenHost \(LISTEN_HOST\): .* is not a loopback address/, host);
    assert.match(text, /allowRemoteClients \(ALLOW_REMOTE_CLIENTS\) to true/, host);
  }
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) {
    assert.equal(loadConfig({ env: { ...base, LISTEN_HOST: host } }).allowRemoteClients, false, host);
  }
  const open = loadConfig({ env: { ...base, LISTEN_HOST: '0.0.0.0', ALLOW_REMOTE_CLIENTS: 'true' } });
  assert.equal(open.listenHost, '0.0.0.0');
  assert.equal(open.allowRemoteClients, true);
  const file = join(dir, 'remote.yaml');
  writeFileSync(file, `listenHost: 0.0.0.0\nupstreams:\n  - url: https://lua5.logicnets.local/logicnets\n    clientId: a\n    privateKeyFile: ${keyFile}\n`);
  assert.match(problemsOf(() => loadConfig({ env: {}, configFile: file })).join(),
    /listenHost \(config file\): "0\.0\.0\.0" is not a loopback address.*allowRemoteClients \(ALLOW_REMOTE_CLIENTS\)/);
  assert.equal(loadConfig({ env: { ALLOW_REMOTE_CLIENTS: '1' }, configFile: file }).allowRemoteClients, true);
});

test('the admin settings: loopback-only by default, shutdown off until a token file is named whose folder is writable', () => {
  const config = loadConfig({ env: base });
  assert.equal(config.adminAllowRemote, false);
  assert.equal(config.adminShutdownTokenFile, undefined);
  const tokenFile = join(dir, 'shutdown-token');
  assert.equal(loadConfig({ env: { ...base, ADMIN_SHUTDOWN_TOKEN_FILE: tokenFile, ADMIN_ALLOW_REMOTE: 'true' } }).adminShutdownTokenFile, tokenFile);
  assert.match(problemsOf(() => loadConfig({ env: { ...base, ADMIN_SHUTDOWN_TOKEN_FILE: join(dir, 'nope', 'token') } })).join(),
    /adminShutdownTokenFile \(ADMIN_SHUTDOWN_TOKEN_FILE\): the folder of .*nope\/token does not exist/);
  assert.match(problemsOf(() => loadConfig({ env: { ...base, ADMIN_SHUTDOWN_TOKEN_FILE: dir } })).join(),
    /ADMIN_SHUTDOWN_TOKEN_FILE\): .* is a folder/);
});
