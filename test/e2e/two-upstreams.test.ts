// Several upstreams from a YAML config file, end to end: each request reaches the right LogicNets
// emulator with a token that emulator issued, in gateway and forward-proxy mode. Two companies on
// one host, and two hosts (localhost and 127.0.0.1).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { stringify } from 'yaml';
import type { Emulator } from '../../src/emulator/emulator.js';
import {
  call, echoedToken, makeServerUser, makeWorkDir, metricValue, scrapeMetrics, startE2eEmulator, startE2eSidecar,
} from '../helpers/e2e-stack.js';
import type { E2eSidecar, ServerUser } from '../helpers/e2e-stack.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';

const dir = makeWorkDir();
const logicnetsUser = makeServerUser(dir, 'logicnets');
const salesUser = makeServerUser(dir, 'sales');
const otherUser = makeServerUser(dir, 'other');

let pki: TestPki;
/** Company `logicnets` on 127.0.0.1. */
let logicnets: Emulator;
/** Company `sales` on 127.0.0.1: a second company on the same host. */
let sales: Emulator;
/** Company `logicnets` again, on another installation: only the host tells it apart. */
let other: Emulator;

before(async () => {
  pki = makeTestPki();
  [logicnets, sales, other] = await Promise.all([
    startE2eEmulator({ pki, users: [logicnetsUser], company: 'logicnets' }),
    startE2eEmulator({ pki, users: [salesUser], company: 'sales' }),
    startE2eEmulator({ pki, users: [otherUser], company: 'logicnets' }),
  ]);
});

after(async () => {
  await Promise.all([logicnets?.close(), sales?.close(), other?.close()]);
  pki?.cleanup();
  dir.cleanup();
});

interface Echo {
  company: string;
  path: string;
  clientId: string;
  headers: Record<string, string | undefined>;
}

/** One `upstreams` entry for `emulator`, reached under `host` (the emulator listens on 127.0.0.1). */
function entry(name: string, emulator: Emulator, user: ServerUser, host: string, method: 'GET' | 'POST'): Record<string, unknown> {
  const company = new URL(emulator.url).pathname;
  return {
    name,
    url: `https://${host}:${emulator.port}${company}`,
    clientId: user.clientId,
    privateKeyFile: user.keyFile,
    caFile: pki.caCertFile,
    tokenMethod: method,
    // The emulator wants its own URL as the audience, whatever host name reaches it.
    tokenAudience: emulator.audience,
  };
}

/** Starts a sidecar from a YAML file listing `upstreams`. */
async function sidecarFor(file: string, upstreams: Record<string, unknown>[]): Promise<E2eSidecar> {
  const path = dir.write(file, stringify({ listenPort: 0, adminPort: 0, adminHost: '127.0.0.1', logLevel: 'silent', upstreams }));
  return startE2eSidecar({ env: {}, configFile: path });
}

/** Sends `target` through the sidecar and checks it reached `emulator` as `user` with a token `emulator` issued. */
async function reaches(sidecar: E2eSidecar, target: string, emulator: Emulator, user: ServerUser, host: string, headers?: Record<string, string>): Promise<void> {
  const apiBefore = emulator.stats.apiRequests;
  const reply = await call(sidecar.proxyPort, target, { headers });
  assert.equal(reply.status, 200, `${target}: ${reply.body.toString()}`);
  const echo = reply.json<Echo>();
  assert.equal(echo.company, new URL(emulator.url).pathname.slice(1), target);
  assert.equal(echo.clientId, user.clientId, `${target} carries the token of that upstream's server user`);
  assert.equal(decodeJwt(echoedToken(echo)).iss, emulator.url, `${target} carries a token of that emulator`);
  assert.equal(echo.headers.host, `${host}:${emulator.port}`);
  assert.equal(emulator.stats.apiRequests, apiBefore + 1, `${target} reached that emulator`);
}

describe('two companies on one host', () => {
  let sidecar: E2eSidecar;
  before(async () => {
    sidecar = await sidecarFor('one-host.yaml', [
      entry('logicnets', logicnets, logicnetsUser, '127.0.0.1', 'GET'),
      entry('sales', sales, salesUser, '127.0.0.1', 'POST'),
    ]);
  });
  after(() => sidecar?.close());

  test('gateway mode: the company path picks the upstream', async () => {
    await reaches(sidecar, '/logicnets/_echo', logicnets, logicnetsUser, '127.0.0.1');
    await reaches(sidecar, '/sales/_echo', sales, salesUser, '127.0.0.1');
    await reaches(sidecar, '/logicnets/WebAPIExample/../_echo', logicnets, logicnetsUser, '127.0.0.1');
  });

  test('forward-proxy mode: host, port and company pick the upstream', async () => {
    await reaches(sidecar, `http://127.0.0.1:${logicnets.port}/logicnets/_echo`, logicnets, logicnetsUser, '127.0.0.1');
    await reaches(sidecar, `http://127.0.0.1:${sales.port}/sales/_echo`, sales, salesUser, '127.0.0.1');
    const crossed = await call(sidecar.proxyPort, `http://127.0.0.1:${logicnets.port}/sales/_echo`);
    assert.equal(crossed.status, 403, 'the sales company is not served on the logicnets port');
    assert.equal(crossed.json<{ error: string }>().error, 'destination_not_configured');
    const unknown = await call(sidecar.proxyPort, '/hr/_echo');
    assert.equal(unknown.status, 403, 'a company no upstream serves');
  });

  test('each upstream has its own token cache and metrics', async () => {
    assert.equal(logicnets.stats.tokenRequests, 1);
    assert.equal(sales.stats.tokenRequests, 1);
    const metrics = await scrapeMetrics(sidecar.adminPort);
    for (const name of ['logicnets', 'sales']) {
      assert.equal(metricValue(metrics, 'logicnets_proxy_token_requests_total', { upstream: name, result: 'success' }), 1, name);
      assert.ok((metricValue(metrics, 'logicnets_proxy_requests_total', { upstream: name, code: '200' }) ?? 0) >= 2, name);
    }
    assert.equal(metricValue(metrics, 'logicnets_proxy_requests_total', { upstream: 'none', code: '403' }), 2, 'the two refused requests');
    const status = (await call(sidecar.adminPort, '/status')).json<{ upstreams: { name: string; token: { valid: boolean } }[] }>();
    assert.deepEqual(status.upstreams.map((u) => [u.name, u.token.valid]), [['logicnets', true], ['sales', true]]);
  });
});

describe('two hosts', () => {
  test('localhost and 127.0.0.1 with different companies, in both modes', async () => {
    const sidecar = await sidecarFor('two-hosts.yaml', [
      entry('on-localhost', logicnets, logicnetsUser, 'localhost', 'POST'),
      entry('on-loopback-ip', sales, salesUser, '127.0.0.1', 'GET'),
    ]);
    try {
      await reaches(sidecar, '/logicnets/_echo', logicnets, logicnetsUser, 'localhost');
      await reaches(sidecar, '/sales/_echo', sales, salesUser, '127.0.0.1');
      await reaches(sidecar, `http://localhost:${logicnets.port}/logicnets/_echo`, logicnets, logicnetsUser, 'localhost');
      await reaches(sidecar, `http://127.0.0.1:${sales.port}/sales/_echo`, sales, salesUser, '127.0.0.1');
      const wrongHost = await call(sidecar.proxyPort, `http://127.0.0.1:${logicnets.port}/logicnets/_echo`);
      assert.equal(wrongHost.status, 403, 'the logicnets upstream is configured for localhost, not 127.0.0.1');
    } finally {
      await sidecar.close();
    }
  });

  test('the same company on two hosts: forward mode goes by the URL\'s host, gateway mode by the Host header', async () => {
    const sidecar = await sidecarFor('same-company.yaml', [
      entry('first', logicnets, logicnetsUser, 'localhost', 'GET'),
      entry('second', other, otherUser, '127.0.0.1', 'GET'),
    ]);
    try {
      await reaches(sidecar, `http://localhost:${logicnets.port}/logicnets/_echo`, logicnets, logicnetsUser, 'localhost');
      await reaches(sidecar, `http://127.0.0.1:${other.port}/logicnets/_echo`, other, otherUser, '127.0.0.1');
      // Gateway mode goes by the Host header (a legacy app pointed at the sidecar through /etc/hosts
      // sends the installation's name); a Host naming neither is refused, never guessed.
      await reaches(sidecar, '/logicnets/_echo', logicnets, logicnetsUser, 'localhost', { host: `localhost:${sidecar.proxyPort}` });
      await reaches(sidecar, '/logicnets/_echo', other, otherUser, '127.0.0.1', { host: `127.0.0.1:${sidecar.proxyPort}` });
      const apiBefore = logicnets.stats.apiRequests + other.stats.apiRequests;
      const unnamed = await call(sidecar.proxyPort, '/logicnets/_echo', { headers: { host: 'sidecar.internal:8080' } });
      assert.equal(unnamed.status, 400);
      assert.equal(unnamed.json<{ error: string }>().error, 'bad_request');
      assert.match(unnamed.json<{ message: string }>().message, /several upstreams.*"first".*"second"/);
      assert.equal(logicnets.stats.apiRequests + other.stats.apiRequests, apiBefore, 'neither installation was called');
    } finally {
      await sidecar.close();
    }
  });
});
