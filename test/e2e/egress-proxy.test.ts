// The sidecar's own connections through an egress proxy, end to end: a real CONNECT proxy (npm
// `proxy`) on loopback in front of the HTTPS LogicNets emulator, whose made-up host names
// (`logicnets.test`, `idp.test`) only the proxy resolves. The whole path goes through the tunnel:
// the token request and the proxied API call, in gateway and forward-proxy mode, with TLS verified
// end to end against the made-up name with the test CA. Also: NO_PROXY per destination, a
// per-upstream `egressProxy` overriding the environment, proxy credentials never logged or shown,
// and a proxy setting that names the sidecar's own listener.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { stringify } from 'yaml';
import { runCheck } from '../../src/commands/check.js';
import type { Emulator } from '../../src/emulator/emulator.js';
import { ConfigError } from '../../src/lib/errors.js';
import {
  call, closedPort, echoedToken, freePorts, makeServerUser, makeWorkDir, startE2eEmulator, startE2eSidecar,
} from '../helpers/e2e-stack.js';
import type { E2eSidecar } from '../helpers/e2e-stack.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import type { ConnectProxy } from '../helpers/connect-proxy.js';
import { makeLogSink } from '../helpers/log-sink.js';
import type { LogSink } from '../helpers/log-sink.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';

const dir = makeWorkDir();
const user = makeServerUser(dir);
const credentials = { user: 'proxy-user', password: 'pr0xy-s3cret-pw' };
const basic = Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64');

let pki: TestPki;
let emulator: Emulator;
let proxy: ConnectProxy;

before(async () => {
  pki = makeTestPki(['logicnets.test', 'idp.test']);
  emulator = await startE2eEmulator({ pki, users: [user] });
  proxy = await startConnectProxy({ hosts: { 'logicnets.test': '127.0.0.1', 'idp.test': '127.0.0.1' }, credentials });
});

after(async () => {
  await proxy?.close();
  await emulator?.close();
  pki?.cleanup();
  dir.cleanup();
});

/** The sidecar's environment for the emulator under the made-up name, plus `extra`. */
function envFor(extra: Record<string, string>, ca = pki): Record<string, string> {
  return {
    LOGICNETS_URL: `https://logicnets.test:${emulator.port}/logicnets`,
    LOGICNETS_CLIENT_ID: user.clientId,
    LOGICNETS_PRIVATE_KEY_FILE: user.keyFile,
    LOGICNETS_CA_FILE: ca.caCertFile,
    // The emulator wants its own URL as the audience, whatever host name reaches it.
    LOGICNETS_TOKEN_AUDIENCE: emulator.audience,
    LISTEN_HOST: '127.0.0.1',
    LISTEN_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    ...extra,
  };
}

/** Runs `check` with `env` and returns its exit code and lines. */
async function check(env: Record<string, string>): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runCheck({ env, write: (line) => lines.push(line) });
  return { code, lines };
}

function assertNoCredentials(text: string, where: string): void {
  assert.ok(!text.includes(credentials.password), `${where} shows the proxy password`);
  assert.ok(!text.includes(basic), `${where} shows the Proxy-Authorization value`);
  assert.ok(!text.includes(`${credentials.user}:`), `${where} shows the proxy user with its password`);
}

interface Echo {
  headers: Record<string, string | undefined>;
  clientId: string;
}

describe('through the CONNECT proxy (HTTPS_PROXY with credentials)', () => {
  let sidecar: E2eSidecar;
  let logs: LogSink;
  before(async () => {
    proxy.connects.length = 0;
    logs = makeLogSink('trace');
    sidecar = await startE2eSidecar({ env: envFor({ HTTPS_PROXY: proxy.url(credentials) }), logger: logs.logger });
  });
  after(() => sidecar?.close());

  test('gateway mode: the token request and the API call both go through the tunnel', async () => {
    const reply = await call(sidecar.proxyPort, '/logicnets/_echo');
    assert.equal(reply.status, 200, reply.body.toString());
    const echo = reply.json<Echo>();
    assert.equal(echo.headers.host, `logicnets.test:${emulator.port}`);
    assert.equal(echo.clientId, user.clientId);
    assert.equal(decodeJwt(echoedToken(echo)).iss, emulator.url, 'a token the emulator issued, fetched through the proxy');
    assert.equal(emulator.stats.tokenRequests >= 1, true);
    const targets = new Set(proxy.connects.map((c) => c.target));
    assert.deepEqual([...targets], [`logicnets.test:${emulator.port}`], 'every connection was a tunnel to the made-up name');
    assert.ok(proxy.connects.length >= 2, 'one tunnel for the token endpoint, one for the API');
    assert.ok(proxy.connects.every((c) => c.proxyAuthorization === `Basic ${basic}`), 'the credentials go as Proxy-Authorization');
  });

  test('forward-proxy mode: the same path', async () => {
    const before_ = proxy.connects.length;
    const reply = await call(sidecar.proxyPort, `http://logicnets.test:${emulator.port}/logicnets/_echo`);
    assert.equal(reply.status, 200, reply.body.toString());
    assert.equal(reply.json<Echo>().headers.host, `logicnets.test:${emulator.port}`);
    // A pooled tunnel may be reused; either way nothing went around the proxy (the name resolves nowhere else).
    assert.ok(proxy.connects.length >= before_);
  });

  test('the credentials appear nowhere: logs, /status, check', async () => {
    const status = await call(sidecar.adminPort, '/status');
    assertNoCredentials(status.body.toString(), '/status');
    assertNoCredentials(logs.text(), 'the log');
    assert.match(logs.text(), new RegExp(`via http://\\*\\*\\*@127\\.0\\.0\\.1:${proxy.port} \\(HTTPS_PROXY\\)`), 'the start-up line names the proxy, redacted');
    const { code, lines } = await check(envFor({ HTTPS_PROXY: proxy.url(credentials) }));
    assert.equal(code, 0, lines.join('\n'));
    const egress = lines.find((l) => l.includes('egress'));
    assert.match(egress ?? '', new RegExp(`ok +egress +token endpoint and API via http://\\*\\*\\*@127\\.0\\.0\\.1:${proxy.port} \\(HTTPS_PROXY\\)`));
    assertNoCredentials(lines.join('\n'), 'check');
  });
});

test('TLS through the tunnel is checked against the destination\'s name, not the proxy\'s', async () => {
  // This CA's server certificate names localhost and 127.0.0.1 (where the tunnel ends), not logicnets.test.
  const otherPki = makeTestPki();
  const otherEmulator = await startE2eEmulator({ pki: otherPki, users: [user] });
  try {
    const { code, lines } = await check({
      ...envFor({ HTTPS_PROXY: proxy.url(credentials) }, otherPki),
      LOGICNETS_URL: `https://logicnets.test:${otherEmulator.port}/logicnets`,
      LOGICNETS_TOKEN_AUDIENCE: otherEmulator.audience,
    });
    assert.equal(code, 1);
    assert.match(lines.join('\n'), /FAILED +token request +the TLS certificate of the token endpoint logicnets\.test:\d+ is not issued for the host name "logicnets\.test"/);
    assert.equal(otherEmulator.stats.tokenRequests, 0);
  } finally {
    await otherEmulator.close();
    otherPki.cleanup();
  }
});

test('NO_PROXY is applied per destination: a listed API host goes direct while the token endpoint is tunnelled', async () => {
  proxy.connects.length = 0;
  const sidecar = await startE2eSidecar({
    env: envFor({
      HTTPS_PROXY: proxy.url(credentials),
      no_proxy: `example.org, logicnets.test:${emulator.port}`,
      LOGICNETS_TOKEN_URL: `https://idp.test:${emulator.port}/logicnets/oauth2token`,
    }),
  });
  try {
    for (const target of ['/logicnets/_echo', `http://logicnets.test:${emulator.port}/logicnets/_echo`]) {
      const reply = await call(sidecar.proxyPort, target);
      // Directly, this machine cannot resolve the made-up name: proof that the tunnel was not used.
      assert.equal(reply.status, 502, `${target}: ${reply.body.toString()}`);
      assert.equal(reply.json<{ error: string }>().error, 'upstream_dns', target);
    }
    assert.ok(proxy.connects.length >= 1);
    assert.deepEqual([...new Set(proxy.connects.map((c) => c.target))], [`idp.test:${emulator.port}`], 'only the token endpoint was tunnelled');
  } finally {
    await sidecar.close();
  }
  const { lines } = await check(envFor({ HTTPS_PROXY: proxy.url(credentials), NO_PROXY: '.test' }));
  assert.match(lines.join('\n'), /egress +token endpoint and API direct \(NO_PROXY lists logicnets\.test\)/);
});

test('a per-upstream egressProxy in the config file overrides HTTPS_PROXY', async () => {
  proxy.connects.length = 0;
  const file = dir.write('egress.yaml', stringify({
    listenHost: '127.0.0.1', listenPort: 0, adminHost: '127.0.0.1', adminPort: 0,
    upstreams: [{
      url: `https://logicnets.test:${emulator.port}/logicnets`,
      clientId: user.clientId,
      privateKeyFile: user.keyFile,
      caFile: pki.caCertFile,
      tokenAudience: emulator.audience,
      egressProxy: proxy.url(credentials),
    }],
  }));
  // The environment's proxy is a closed port: used, it would fail every request.
  const sidecar = await startE2eSidecar({ env: { HTTPS_PROXY: `http://127.0.0.1:${await closedPort()}` }, configFile: file });
  try {
    const reply = await call(sidecar.proxyPort, '/logicnets/_echo');
    assert.equal(reply.status, 200, reply.body.toString());
    assert.ok(proxy.connects.length >= 2);
  } finally {
    await sidecar.close();
  }
});

test('wrong proxy credentials: the 407 is named, the password is not', async () => {
  const wrong = { user: credentials.user, password: 'wr0ng-pw-guess' };
  const logs = makeLogSink('trace');
  const sidecar = await startE2eSidecar({ env: envFor({ HTTPS_PROXY: proxy.url(wrong) }), logger: logs.logger });
  try {
    const reply = await call(sidecar.proxyPort, '/logicnets/_echo');
    assert.equal(reply.status, 503, reply.body.toString());
    assert.equal(reply.json<{ error: string }>().error, 'token_unavailable');
    const status = (await call(sidecar.adminPort, '/status')).body.toString();
    for (const [where, text] of [['/status', status], ['the log', logs.text()], ['the answer', reply.body.toString()]] as const) {
      assert.ok(!text.includes(wrong.password), `${where} shows the password`);
    }
    assert.match(logs.text(), /refused its credentials .*407 Proxy Authentication Required/);
  } finally {
    await sidecar.close();
  }
  const { lines } = await check(envFor({ HTTPS_PROXY: proxy.url(wrong) }));
  const text = lines.join('\n');
  assert.match(text, /FAILED +token request +on the way to the token endpoint logicnets\.test:\d+, the egress proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+ refused its credentials/);
  assert.ok(!text.includes(wrong.password));
});

describe('a proxy setting that names the sidecar\'s own listener', () => {
  test('HTTP_PROXY exported for the app in the same shell changes nothing', async () => {
    const [port] = await freePorts(1);
    const sidecar = await startE2eSidecar({
      env: envFor({ LISTEN_PORT: String(port), HTTP_PROXY: `http://127.0.0.1:${port}`, HTTPS_PROXY: proxy.url(credentials) }),
    });
    try {
      assert.equal((await call(sidecar.proxyPort, '/logicnets/_echo')).status, 200);
    } finally {
      await sidecar.close();
    }
  });

  test('HTTPS_PROXY naming the listener is ignored with a warning: no loop, the answer comes', async () => {
    const [port] = await freePorts(1);
    const logs = makeLogSink('info');
    const sidecar = await startE2eSidecar({
      env: envFor({ LISTEN_PORT: String(port), HTTPS_PROXY: `localhost:${port}` }),
      logger: logs.logger,
    });
    try {
      const warning = logs.entries().find((e) => e.level === 'warn' && /HTTPS_PROXY \(http:\/\/localhost:\d+\) names this sidecar's own listener/.test(String(e.msg)));
      assert.ok(warning, logs.text());
      // Direct, the made-up name does not resolve: a prompt 503 rather than a request going round in circles.
      const reply = await call(port as number, '/logicnets/_echo');
      assert.equal(reply.status, 503, reply.body.toString());
      const requests = logs.entries().filter((e) => e.msg === 'request');
      assert.equal(requests.length, 1, 'the sidecar saw only the client\'s request, never one from itself');
    } finally {
      await sidecar.close();
    }
  });

  test('LOGICNETS_EGRESS_PROXY naming the listener stops start-up, naming the setting', async () => {
    const [port] = await freePorts(1);
    await assert.rejects(
      startE2eSidecar({ env: envFor({ LISTEN_PORT: String(port), LOGICNETS_EGRESS_PROXY: `http://u:p4ss@[::1]:${port}` }) }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /egressProxy \(LOGICNETS_EGRESS_PROXY\): http:\/\/\*\*\*@\[::1\]:\d+ is this sidecar's own listener/);
        assert.ok(!error.message.includes('p4ss'));
        return true;
      },
    );
  });
});
