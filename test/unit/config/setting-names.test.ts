// Lower layers say what is wrong in their own terms; the loader, which knows where each upstream
// setting came from, names it: an environment variable, or `upstreams[N].key` in a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/load.js';
import { transportFailure } from '../../../src/token/transport-error.js';

const dir = mkdtempSync(join(tmpdir(), 'ltp-names-'));
const keyFile = join(dir, 'key.pem');
test.after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(keyFile, '-----BEGIN PRIVATE KEY-----\nnot checked here\n-----END PRIVATE KEY-----\n');

const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

test('an upstream from the environment names the environment variable', () => {
  const [upstream] = loadConfig({ env: { LOGICNETS_URL: 'https://a.test/co', LOGICNETS_CLIENT_ID: 'a', LOGICNETS_PRIVATE_KEY_FILE: keyFile } }).upstreams;
  assert.ok(upstream?.settingName);
  assert.match(transportFailure('ECONNREFUSED', refused, 'a.test:443', 'a.test', upstream.settingName).message,
    /check the host and port in tokenUrl \(LOGICNETS_TOKEN_URL\)/);
});

test('the second upstream of a file names upstreams[1], not an environment variable', () => {
  const file = join(dir, 'two.yaml');
  writeFileSync(file, ['upstreams:',
    '  - url: https://a.test/one', '    clientId: a', `    privateKeyFile: ${keyFile}`,
    '  - url: https://b.test/two', '    clientId: b', `    privateKeyFile: ${keyFile}`].join('\n'));
  const upstream = loadConfig({ env: {}, configFile: file }).upstreams[1];
  assert.ok(upstream?.settingName);
  const message = transportFailure('ECONNREFUSED', refused, 'b.test:443', 'b.test', upstream.settingName).message;
  assert.match(message, /check the host and port in upstreams\[1\]\.tokenUrl/);
  assert.doesNotMatch(message, /LOGICNETS_/);
});

test('without names the token path uses its own words', () => {
  assert.match(transportFailure('ECONNREFUSED', refused, 'a.test:443', 'a.test').message, /check the host and port in the token URL/);
});
