// Lower layers say what is wrong in their own terms; the loader, which knows where each upstream
// setting came from, names it: an environment variable, or `upstreams[N].key` in a file.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { startAdminServer } from '../../../src/admin/server.js';
import { loadConfig } from '../../../src/config/load.js';
import { transportFailure } from '../../../src/token/transport-error.js';
import { createUpstreamStack } from '../../../src/upstream-stack.js';
import { adminOptions } from '../../helpers/admin-options.js';
import { makeLogSink } from '../../helpers/log-sink.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { send, startHarness } from '../../helpers/proxy-harness.js';
import { rawExchange } from '../../helpers/raw-http.js';
import { StaticTokenSource } from '../../helpers/static-token-source.js';

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

// The proxy and the admin server name their settings the same way: the wiring passes the loader's
// names (environment variable or config file), and without them each uses its own words. Each case
// is a real proxy or admin server answering a real request.
describe('the proxy and the admin server, named at the edge', () => {
  const env = { LOGICNETS_URL: 'https://a.test/co', LOGICNETS_CLIENT_ID: 'a', LOGICNETS_PRIVATE_KEY_FILE: keyFile };
  const fromEnv = loadConfig({ env: { ...env, UPSTREAM_TIMEOUT: '0.2', MAX_CONNECTIONS: '1' } });
  const file = join(dir, 'globals.yaml');
  writeFileSync(file, ['upstreamTimeout: 0.2', 'maxConnections: 1', 'adminHost: 127.0.0.1', 'url: https://a.test/co', 'clientId: a', `privateKeyFile: ${keyFile}`].join('\n'));
  const fromFile = loadConfig({ env: {}, configFile: file });
  const cases = [
    { source: 'the environment', names: fromEnv.settingName, timeout: 'upstreamTimeout (UPSTREAM_TIMEOUT)', limit: 'maxConnections (MAX_CONNECTIONS)' },
    { source: 'a config file', names: fromFile.settingName, timeout: 'upstreamTimeout (config file)', limit: 'maxConnections (config file)' },
    { source: 'no names (own words)', names: undefined, timeout: 'the upstream timeout', limit: 'the client connection limit' },
  ];

  for (const { source, names, timeout, limit } of cases) {
    test(`from ${source}: a 504 names ${timeout} and a 503 at the connection cap names ${limit}`, async (t) => {
      const silent = net.createServer(() => undefined); // accepts, never answers
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const port = (silent.address() as AddressInfo).port;
      const h = await startHarness([{ name: 'co', url: `http://127.0.0.1:${port}/co`, tokens: new StaticTokenSource('tok') }],
        { upstreamTimeout: 0.2, maxConnections: 1 }, names);
      t.after(async () => {
        await h.close();
        silent.close();
      });
      const timedOut = await send(h.port, '/co/x');
      assert.equal(timedOut.status, 504);
      const message = timedOut.json<{ message: string }>().message;
      assert.ok(message.includes(`raise ${timeout}`), message);
      if (names === undefined) assert.doesNotMatch(message, /UPSTREAM_TIMEOUT|config file/);

      const held = net.connect(h.port, '127.0.0.1');
      t.after(() => held.destroy());
      await new Promise((resolve) => held.once('connect', resolve));
      const capped = await rawExchange(h.port, 'GET /co/x HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(capped.status, 503);
      const refusal = (JSON.parse(capped.body.toString()) as { message: string }).message;
      assert.ok(refusal.includes(`(${limit})`), refusal);
      const warning = String(h.sink.entries().find((line) => String(line.msg).startsWith('refusing client connections'))?.msg);
      assert.ok(warning.includes(`raise ${limit}`), warning);
    });

    const own = names === undefined;
    const shutdownFile = own ? 'the shutdown token file setting' : 'adminShutdownTokenFile (ADMIN_SHUTDOWN_TOKEN_FILE)';
    const address = own ? 'the admin host and the admin port'
      : `adminHost (${source === 'a config file' ? 'config file' : 'ADMIN_HOST'}) and adminPort (ADMIN_PORT)`;
    test(`from ${source}: the admin server names ${shutdownFile} and ${address}`, async (t) => {
      const options = adminOptions({ host: '127.0.0.1', settingNames: names });
      const server = await startAdminServer(options);
      t.after(() => server.close());
      const answer = await send(server.port, '/shutdown', { method: 'POST' });
      assert.equal(answer.status, 403);
      const message = answer.json<{ message: string }>().message;
      assert.ok(message.includes(`set ${shutdownFile} to turn it on`), message);
      await assert.rejects(startAdminServer({ ...options, port: server.port }),
        (error: Error) => error.message.includes(`set ${address} to a free address`) || assert.fail(error.message));
    });
  }
});

// An inline key is named by the setting that holds it, in start-up errors and in `check`'s key line.
test('an inline private key that is not RSA is named privateKey (LOGICNETS_PRIVATE_KEY) or upstreams[0].privateKey (config file)', async () => {
  const ecPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const keyBody = ecPem.split('\n')[1] ?? ''; // key material: never in a message
  const file = join(dir, 'inline.json');
  writeFileSync(file, JSON.stringify({ upstreams: [{ url: 'https://a.test/co', clientId: 'a', privateKey: ecPem }] }));
  for (const [config, name] of [
    [loadConfig({ env: { LOGICNETS_URL: 'https://a.test/co', LOGICNETS_CLIENT_ID: 'a', LOGICNETS_PRIVATE_KEY: ecPem } }), 'privateKey (LOGICNETS_PRIVATE_KEY)'],
    [loadConfig({ env: {}, configFile: file }), 'upstreams[0].privateKey (config file)'],
  ] as const) {
    const [upstream] = config.upstreams;
    assert.ok(upstream);
    await assert.rejects(createUpstreamStack(upstream, { logger: makeLogSink('info').logger, clock: new ManualClock() }),
      (error: Error) => (error.message.includes(name) && !error.message.includes(keyBody)) || assert.fail(error.message));
  }
});
