import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { adminPathAllowed, startAdminServer } from '../../../src/admin/server.js';
import type { AdminServerOptions } from '../../../src/admin/server.js';
import { isLoopbackAddress } from '../../../src/lib/loopback.js';
import type { AdminServer, AdminUpstream } from '../../../src/admin/server.js';
import { ProxyError } from '../../../src/lib/errors.js';
import { Metrics } from '../../../src/lib/metrics.js';
import type { Token, TokenState } from '../../../src/token/token.js';
import { adminOptions } from '../../helpers/admin-options.js';
import { requestText } from '../../helpers/http-text.js';
import type { TextAnswer } from '../../helpers/http-text.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { makeLogSink, secretFragments } from '../../helpers/log-sink.js';

const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
const sink = makeLogSink('trace');

/** A token cache stand-in whose token and state the test sets. */
class FakeTokens {
  token: Token | undefined;
  failures = 0;
  peek(): Token | undefined {
    return this.token;
  }
  state(): TokenState {
    return {
      valid: this.token !== undefined,
      expiresAt: this.token?.expiresAt,
      lastRefreshAt: this.token?.obtainedAt,
      nextRefreshAt: this.token === undefined ? undefined : this.token.expiresAt - 60_000,
      lastError: this.failures === 0
        ? undefined
        : { code: 'token_endpoint_unreachable', message: 'The token endpoint could not be reached.', at: clock.now() - 1000 },
      consecutiveFailures: this.failures,
    };
  }
}

function tokenOf(accessToken: string): Token {
  return { accessToken, tokenType: 'Bearer', obtainedAt: clock.now() - 5000, expiresAt: clock.now() + 3_600_000 };
}

type Answer = TextAnswer;

function call(port: number, method: string, path: string, host = '127.0.0.1'): Promise<Answer> {
  return requestText({ port, method, path, host });
}

/** One request with headers, optionally from a chosen local address (any of 127.0.0.0/8 works on Linux). */
function callWith(port: number, method: string, path: string, options: { host?: string; localAddress?: string; headers?: Record<string, string> }): Promise<Answer> {
  return requestText({ port, method, path, ...options });
}

/** This machine's first non-loopback IPv4 address, if it has one. */
const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

const tokenDir = mkdtempSync(join(tmpdir(), 'ltp-admin-'));
after(() => rmSync(tokenDir, { recursive: true, force: true }));

function json(answer: Answer): Record<string, unknown> {
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  return JSON.parse(answer.body) as Record<string, unknown>;
}

describe('admin server', () => {
  const metrics = new Metrics();
  const first = new FakeTokens();
  const second = new FakeTokens();
  const upstreams: AdminUpstream[] = [
    { name: 'lua5/logicnets', url: 'https://lua5.logicnets.local/logicnets', tokens: first },
    { name: 'lua6/acme', url: 'https://lua6.logicnets.local/acme', tokens: second },
  ];
  const flags = { draining: false, listening: true, requireToken: false, shutdownCalls: 0 };
  let admin: AdminServer;
  let jwt: string;

  before(async () => {
    jwt = await new SignJWT({ scope: 'api.read api.write', secret_claim: 'not shown' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer('https://lua5.logicnets.local/logicnets')
      .setSubject('6c8b6b3e-0f6a-4f4e-9d7e-2f0f7c1d9a11')
      .setAudience('https://lua5.logicnets.local/logicnets')
      .setExpirationTime(Math.floor(clock.now() / 1000) + 3600)
      .sign(new TextEncoder().encode('a test secret that is at least 32 bytes long'));
    admin = await startAdminServer({
      host: '0.0.0.0',
      port: 0,
      logger: sink.logger,
      metrics,
      upstreams,
      get readinessRequireToken() { return flags.requireToken; },
      isDraining: () => flags.draining,
      isListening: () => flags.listening,
      onShutdownRequest: () => { flags.shutdownCalls += 1; },
      clock,
      shutdownTokenFile: join(tokenDir, 'shutdown-token'),
    });
  });
  after(() => admin.close());

  test('/livez and /healthz answer 200 ok, HEAD without a body, never cached', async () => {
    for (const path of ['/livez', '/healthz']) {
      const answer = await call(admin.port, 'GET', path);
      assert.equal(answer.status, 200);
      assert.deepEqual(json(answer), { status: 'ok' });
      assert.equal(answer.headers['cache-control'], 'no-store');
    }
    const head = await call(admin.port, 'HEAD', '/livez');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['cache-control'], 'no-store');
  });

  test('/readyz is 200 while listening and not draining, 503 with reasons otherwise', async () => {
    assert.equal((await call(admin.port, 'GET', '/readyz?verbose')).status, 200);

    flags.draining = true;
    const draining = await call(admin.port, 'GET', '/readyz');
    assert.equal(draining.status, 503);
    const body = json(draining);
    assert.equal(body.status, 'unready');
    assert.deepEqual(body.reasons, ['The sidecar is shutting down.']);
    flags.draining = false;

    flags.listening = false;
    const notListening = await call(admin.port, 'GET', '/readyz');
    assert.equal(notListening.status, 503);
    assert.match(String((json(notListening).reasons as string[])[0]), /not accepting connections/);
    assert.equal(notListening.headers['cache-control'], 'no-store');
    flags.listening = true;

    assert.equal((await call(admin.port, 'GET', '/readyz')).status, 200);
  });

  test('readinessRequireToken: 503 naming each upstream without a usable token, 200 once all have one', async (t) => {
    t.after(() => { flags.requireToken = false; first.token = undefined; second.token = undefined; });
    first.token = undefined;
    second.token = undefined;
    assert.equal((await call(admin.port, 'GET', '/readyz')).status, 200, 'tokens are not required by default');

    flags.requireToken = true;
    const none = await call(admin.port, 'GET', '/readyz');
    assert.equal(none.status, 503);
    assert.deepEqual(json(none).reasons, [
      'Upstream "lua5/logicnets" has no valid access token.',
      'Upstream "lua6/acme" has no valid access token.',
    ]);

    first.token = tokenOf('opaque-token-1');
    const one = await call(admin.port, 'GET', '/readyz');
    assert.equal(one.status, 503);
    assert.deepEqual(json(one).reasons, ['Upstream "lua6/acme" has no valid access token.']);

    second.token = tokenOf('opaque-token-2');
    assert.equal((await call(admin.port, 'GET', '/readyz')).status, 200);
  });

  test('/metrics serves the Prometheus text of the registry', async () => {
    metrics.requestFinished('lua5/logicnets', 201, 0.01);
    const answer = await call(admin.port, 'GET', '/metrics');
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.match(answer.body, /^logicnets_proxy_requests_total\{upstream="lua5\/logicnets",code="201"\} 1$/m);
    assert.match(answer.body, /^process_cpu_user_seconds_total /m);
    const head = await call(admin.port, 'HEAD', '/metrics');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('/status shows token state and the JWT claims, never the token', async (t) => {
    t.after(() => { first.token = undefined; second.token = undefined; second.failures = 0; });
    first.token = tokenOf(jwt);
    second.token = undefined;
    second.failures = 3;
    flags.draining = true;
    t.after(() => { flags.draining = false; });

    const answer = await call(admin.port, 'GET', '/status');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['cache-control'], 'no-store');
    for (const fragment of secretFragments(jwt)) assert.ok(!answer.body.includes(fragment), 'the token leaked into /status');

    const body = json(answer) as { draining: boolean; upstreams: { name: string; url: string; token: Record<string, unknown> }[] };
    assert.equal(body.draining, true);
    assert.deepEqual(body.upstreams.map((u) => [u.name, u.url]), [
      ['lua5/logicnets', 'https://lua5.logicnets.local/logicnets'],
      ['lua6/acme', 'https://lua6.logicnets.local/acme'],
    ]);
    const [withJwt, failing] = body.upstreams;
    assert.ok(withJwt !== undefined && failing !== undefined);
    assert.deepEqual(withJwt.token, {
      valid: true,
      expiresAt: new Date(clock.now() + 3_600_000).toISOString(),
      expiresInSeconds: 3600,
      lastRefreshAt: new Date(clock.now() - 5000).toISOString(),
      nextRefreshAt: new Date(clock.now() + 3_540_000).toISOString(),
      lastError: null,
      consecutiveFailures: 0,
      claims: {
        aud: 'https://lua5.logicnets.local/logicnets',
        exp: Math.floor(clock.now() / 1000) + 3600,
        scope: 'api.read api.write',
        iss: 'https://lua5.logicnets.local/logicnets',
        sub: '6c8b6b3e-0f6a-4f4e-9d7e-2f0f7c1d9a11',
      },
    });
    assert.deepEqual(failing.token, {
      valid: false,
      expiresAt: null,
      expiresInSeconds: null,
      lastRefreshAt: null,
      nextRefreshAt: null,
      lastError: {
        code: 'token_endpoint_unreachable',
        message: 'The token endpoint could not be reached.',
        at: new Date(clock.now() - 1000).toISOString(),
      },
      consecutiveFailures: 3,
    });
  });

  test('/status shows no claims for an opaque token', async (t) => {
    t.after(() => { first.token = undefined; });
    first.token = tokenOf('an-opaque-access-token-value');
    const answer = await call(admin.port, 'GET', '/status');
    assert.ok(!answer.body.includes('an-opaque-access-token-value'));
    const body = json(answer) as { upstreams: { token: Record<string, unknown> }[] };
    assert.equal(body.upstreams[0]?.token.valid, true);
    assert.equal('claims' in (body.upstreams[0]?.token ?? {}), false);
  });

  test('POST /shutdown needs the token the server wrote to its file: 202 and the callback only with it', async () => {
    const file = join(tokenDir, 'shutdown-token');
    const token = readFileSync(file, 'utf8').trim();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
    assert.equal(statSync(file).mode & 0o777, 0o644, 'readable by an app container running as another user');
    const callsBefore = flags.shutdownCalls;

    const missing = await callWith(admin.port, 'POST', '/shutdown', {});
    assert.equal(missing.status, 401);
    assert.equal(json(missing).error, 'unauthorized');
    assert.match(String(missing.headers['www-authenticate']), /^Bearer /);
    for (const wrong of [`${token}x`, token.slice(1), 'x'.repeat(43), '']) {
      const answer = await callWith(admin.port, 'POST', '/shutdown', { headers: { authorization: `Bearer ${wrong}` } });
      assert.equal(answer.status, 401, `token ${JSON.stringify(wrong)}`);
    }
    assert.equal((await callWith(admin.port, 'POST', '/shutdown', { headers: { authorization: `Basic ${token}` } })).status, 401);
    assert.equal(flags.shutdownCalls, callsBefore, 'no callback without the token');

    const answer = await callWith(admin.port, 'POST', '/shutdown', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(answer.status, 202);
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.equal(flags.shutdownCalls, callsBefore + 1);
    assert.ok(!sink.text().includes(token), 'the token is never logged');
  });

  // A service mesh's proxy delivers other pods' requests from a loopback address (Istio: 127.0.0.6):
  // the source address alone must not be enough to stop the sidecar.
  test('a loopback source without the token cannot shut down (what a mesh proxy would look like)', async () => {
    const callsBefore = flags.shutdownCalls;
    const answer = await callWith(admin.port, 'POST', '/shutdown', { localAddress: '127.0.0.6' });
    assert.equal(answer.status, 401);
    assert.equal(flags.shutdownCalls, callsBefore);
    assert.equal((await callWith(admin.port, 'GET', '/status', { localAddress: '127.0.0.6' })).status, 200, 'loopback sees /status');
  });

  test('from a non-loopback address: probes and /metrics answer, /status and /shutdown (even with the token) are 403', { skip: external === undefined ? 'no non-loopback IPv4 address; adminPathAllowed is tested with a table below' : false }, async () => {
    const token = readFileSync(join(tokenDir, 'shutdown-token'), 'utf8').trim();
    for (const path of ['/livez', '/healthz', '/readyz', '/metrics']) {
      assert.equal((await call(admin.port, 'GET', path, external)).status, 200, path);
    }
    const callsBefore = flags.shutdownCalls;
    const status = await call(admin.port, 'GET', '/status', external);
    assert.equal(status.status, 403);
    assert.equal(json(status).error, 'forbidden');
    assert.match(String(json(status).message), /the admin remote-access setting set to true opens it/);
    assert.ok(!status.body.includes('lua5'), 'nothing of the status leaks');
    const shutdown = await callWith(admin.port, 'POST', '/shutdown', { host: external, headers: { authorization: `Bearer ${token}` } });
    assert.equal(shutdown.status, 403);
    assert.equal(flags.shutdownCalls, callsBefore, 'the callback must not run');
  });

  test('unknown paths are 404 and wrong methods 405 with Allow, as JSON errors', async () => {
    const missing = await call(admin.port, 'GET', '/nope');
    assert.equal(missing.status, 404);
    assert.equal(json(missing).error, 'not_found');
    assert.equal(typeof json(missing).message, 'string');
    assert.equal(missing.headers['cache-control'], 'no-store');

    const calls = flags.shutdownCalls;
    const getShutdown = await call(admin.port, 'GET', '/shutdown');
    assert.equal(getShutdown.status, 405);
    assert.equal(getShutdown.headers.allow, 'POST');
    assert.equal(json(getShutdown).error, 'method_not_allowed');
    assert.equal(flags.shutdownCalls, calls);

    const postLivez = await call(admin.port, 'POST', '/livez');
    assert.equal(postLivez.status, 405);
    assert.equal(postLivez.headers.allow, 'GET, HEAD');
    assert.equal((await call(admin.port, 'DELETE', '/metrics')).status, 405);
    assert.equal((await call(admin.port, 'GET', '/__proto__')).status, 404);
  });

  test('the log never holds a token', () => {
    for (const fragment of secretFragments(jwt)) assert.ok(!sink.text().includes(fragment));
    assert.ok(!sink.text().includes('opaque-token-1'));
  });

  test('a port already in use is a config error naming the address', async () => {
    await assert.rejects(
      startAdminServer(adminOptions({ port: admin.port, logger: sink.logger, metrics, clock })),
      (error: unknown) => error instanceof ProxyError && error.code === 'config_invalid'
        && error.message.includes(`0.0.0.0:${admin.port}`) && error.message.includes('EADDRINUSE'),
    );
  });
});

test('isLoopbackAddress accepts 127.0.0.0/8, ::1 and IPv4-mapped loopback only', () => {
  for (const address of ['127.0.0.1', '127.8.9.10', '127.255.255.255', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:127.1.2.3']) {
    assert.equal(isLoopbackAddress(address), true, address);
  }
  for (const address of [undefined, '', 'localhost', '10.0.0.1', '128.0.0.1', '126.255.255.255', '0.0.0.0', '::', '::2',
    '::ffff:10.0.0.1', 'fe80::1', '192.168.1.127', '127.0.0.1.evil']) {
    assert.equal(isLoopbackAddress(address), false, String(address));
  }
});

/** Options for a second admin server in the tests below. */
function otherOptions(overrides: Partial<AdminServerOptions>): AdminServerOptions {
  return adminOptions({ logger: sink.logger, clock, ...overrides });
}

test('without ADMIN_SHUTDOWN_TOKEN_FILE, POST /shutdown is off (403 shutdown_disabled), even from loopback', async (t) => {
  let calls = 0;
  const admin = await startAdminServer(otherOptions({ onShutdownRequest: () => { calls += 1; } }));
  t.after(() => admin.close());
  const answer = await callWith(admin.port, 'POST', '/shutdown', { headers: { authorization: 'Bearer anything' } });
  assert.equal(answer.status, 403);
  assert.equal(json(answer).error, 'shutdown_disabled');
  assert.match(String(json(answer).message), /set the shutdown token file setting to turn it on/);
  assert.equal(calls, 0);
});

test('every start writes a new token, close() removes the file, an unwritable folder is a config error', async () => {
  const file = join(tokenDir, 'rotating-token');
  const first = await startAdminServer(otherOptions({ shutdownTokenFile: file }));
  const one = readFileSync(file, 'utf8');
  await first.close();
  assert.throws(() => statSync(file), /ENOENT/, 'close() removes the token file');
  const second = await startAdminServer(otherOptions({ shutdownTokenFile: file }));
  const two = readFileSync(file, 'utf8');
  await second.close();
  assert.notEqual(one, two);
  await assert.rejects(startAdminServer(otherOptions({ shutdownTokenFile: join(tokenDir, 'missing', 'token') })),
    (error: unknown) => error instanceof ProxyError && error.code === 'config_invalid' && error.message.includes('set the shutdown token file setting to a file in a writable folder'));
});

test('with ADMIN_ALLOW_REMOTE, a non-loopback client gets /status and may shut down with the token', { skip: external === undefined ? 'no non-loopback IPv4 address' : false }, async (t) => {
  let calls = 0;
  const file = join(tokenDir, 'remote-token');
  const admin = await startAdminServer(otherOptions({ allowRemote: true, shutdownTokenFile: file, onShutdownRequest: () => { calls += 1; } }));
  t.after(() => admin.close());
  assert.equal((await call(admin.port, 'GET', '/status', external)).status, 200);
  assert.equal((await callWith(admin.port, 'POST', '/shutdown', { host: external })).status, 401, 'still needs the token');
  const token = readFileSync(file, 'utf8').trim();
  assert.equal((await callWith(admin.port, 'POST', '/shutdown', { host: external, headers: { authorization: `Bearer ${token}` } })).status, 202);
  assert.equal(calls, 1);
});

test('adminPathAllowed: probes and metrics for everyone, /status and /shutdown for loopback unless opened', () => {
  const table: Array<[string, string | undefined, boolean, boolean]> = [
    ['/livez', '10.0.0.7', false, true], ['/healthz', '10.0.0.7', false, true], ['/readyz', '::ffff:10.0.0.7', false, true],
    ['/metrics', '10.0.0.7', false, true], ['/metrics', undefined, false, true],
    ['/status', '127.0.0.1', false, true], ['/status', '127.0.0.6', false, true], ['/status', '::1', false, true],
    ['/status', '::ffff:127.0.0.1', false, true], ['/status', '10.0.0.7', false, false], ['/status', '::ffff:10.0.0.7', false, false],
    ['/status', 'fe80::1', false, false], ['/status', undefined, false, false], ['/status', '10.0.0.7', true, true],
    ['/shutdown', '127.0.0.1', false, true], ['/shutdown', '192.168.1.127', false, false], ['/shutdown', '0.0.0.0', false, false],
    ['/shutdown', '10.0.0.7', true, true],
  ];
  for (const [path, address, allowRemote, expected] of table) {
    assert.equal(adminPathAllowed(path, address, allowRemote), expected, `${path} from ${String(address)} allowRemote=${allowRemote}`);
  }
});
