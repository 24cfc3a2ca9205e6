// The examples in config/ are loaded through the real config loader, so they cannot rot.
// Only the file paths they name (a Secret mount, a CA bundle) are pointed at files this test makes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { makeClientCertificate, makeTestPki } from '../helpers/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'ltp-examples-'));
const keyFile = join(dir, 'private-key.pem');
writeFileSync(keyFile, 'placeholder: the config loader checks the file exists; the key loader checks its content\n');
const pki = makeTestPki();
test.after(() => {
  pki.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const client = makeClientCertificate(pki, 'example-client');

/** Points the example's absolute paths at the files made here. */
function localise(text: string): string {
  return text
    .replace(/\/[\w/.-]+\/tls\.crt/g, client.certFile)
    .replace(/\/[\w/.-]+\/tls\.key/g, client.keyFile)
    .replace(/\/var\/run\/secrets\/logicnets\/[\w/.-]+/g, keyFile)
    .replace(/\/etc\/ssl\/private-ca\/ca\.pem/g, pki.caCertFile);
}

/** Reads KEY=VALUE lines of an env file, skipping comments and blanks (as `set -a; . file` would). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Z_][A-Z0-9_]*)=(.*)$/);
    if (m?.[1] !== undefined) env[m[1]] = m[2] ?? '';
  }
  return env;
}

test('config/logicnets.env.example describes one upstream with the tutorial values', () => {
  const env = parseEnvFile(localise(readFileSync('config/logicnets.env.example', 'utf8')));
  const config = loadConfig({ env });
  assert.equal(config.upstreams.length, 1);
  assert.equal(config.upstreams[0]?.url, 'https://lua5.logicnets.local/logicnets');
  assert.equal(config.upstreams[0]?.tokenMethod, 'GET');
  assert.equal(config.listenHost, '127.0.0.1');
});

test('config/logicnets.env.example with its commented settings enabled is still valid', () => {
  const text = localise(readFileSync('config/logicnets.env.example', 'utf8')).replace(/^#(LOGICNETS_[A-Z_]+=)/gm, '$1');
  const config = loadConfig({ env: parseEnvFile(text) });
  assert.equal(config.upstreams[0]?.clientIssuer, 'https://client.org');
  assert.equal(config.upstreams[0]?.caFile, pki.caCertFile);
  assert.equal(config.upstreams[0]?.clientCertFile, client.certFile);
  assert.equal(config.upstreams[0]?.egress?.api.description, 'via http://proxy.corp.example:3128 (egressProxy (LOGICNETS_EGRESS_PROXY))');
});

test('config/two-upstreams.yaml describes two upstreams that route unambiguously', () => {
  const file = join(dir, 'two-upstreams.yaml');
  writeFileSync(file, localise(readFileSync('config/two-upstreams.yaml', 'utf8')));
  const config = loadConfig({ env: {}, configFile: file });
  assert.deepEqual(config.upstreams.map((u) => [u.name, u.tokenMethod, u.tokenUrl]), [
    ['production', 'GET', 'https://lua5.logicnets.local/logicnets/oauth2token'],
    ['sales', 'POST', 'https://lua6.logicnets.local/sales/oauth2token'],
  ]);
  assert.equal(config.readinessRequireToken, true);
  assert.equal(config.upstreams[1]?.egress?.api.proxyUrl, 'http://proxy.corp.example:3128/');
  assert.equal(config.upstreams[1]?.clientKeyFile, client.keyFile);
});
