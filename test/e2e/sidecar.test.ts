// The sidecar end to end: the real token stack (key file -> assertion -> token endpoint -> cache)
// and the proxy in front of the LogicNets emulator, over real sockets. The emulator serves HTTPS
// with a CA made by the test (LOGICNETS_CA_FILE) unless a test says plain HTTP.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { decodeJwt } from 'jose';
import { createDeterministicStream } from '../../src/emulator/emulator.js';
import { waitFor } from '../helpers/cli.js';
import {
  agentActiveSockets, call, callHashed, closedPort, connectionCount, echoedToken, hashStream, makeServerUser,
  makeWorkDir, metricValue, scrapeMetrics, sidecarEnv, startE2eEmulator, startE2eSidecar, startStack, startTcpGate,
} from '../helpers/e2e-stack.js';
import type { E2eSidecar, Reply, Stack } from '../helpers/e2e-stack.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';
import { waitUntil } from '../helpers/wait-until.js';

const dir = makeWorkDir();
const user = makeServerUser(dir);
const CLIENT_BASIC = 'Basic Y2xpZW50LXVzZXI6Y2xpZW50LXBhc3N3b3Jk';
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;

let pki: TestPki;
/** HTTPS emulator, system clock: shared by the tests that only look at one request at a time. */
let secure: Stack;
/** The same over plain HTTP. */
let plain: Stack;

before(async () => {
  pki = makeTestPki();
  // These stacks revoke tokens again and again to test resends; no forced-refresh floor between
  // them (test/e2e/token-lifecycle.test.ts tests the floor).
  const env = { TOKEN_FORCED_REFRESH_FLOOR: '0' };
  [secure, plain] = await Promise.all([startStack(user, { pki, env }), startStack(user, { env })]);
});

after(async () => {
  await Promise.all([secure?.close(), plain?.close()]);
  pki?.cleanup();
  dir.cleanup();
});

interface Echo {
  company: string;
  path: string;
  method: string;
  query: Record<string, string>;
  clientId: string;
  headers: Record<string, string | undefined>;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Checks what the upstream saw of a proxied request and returns the token it got. */
function assertForwarded(stack: Stack, echo: Echo): string {
  const token = echoedToken(echo);
  assert.match(token, JWT_SHAPE);
  assert.equal(decodeJwt(token).iss, stack.emulator.url, 'a token the emulator issued');
  assert.equal(echo.clientId, user.clientId);
  assert.equal(echo.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization').length, 1,
    'exactly one Authorization header');
  assert.equal(echo.headers['proxy-authorization'], undefined);
  assert.equal(echo.headers.host, `127.0.0.1:${stack.emulator.port}`);
  assert.match(echo.headers.via ?? '', /^1\.1 logicnets-token-proxy$/);
  assert.equal(echo.headers['x-forwarded-for'], undefined);
  return token;
}

function assertSidecarError(reply: Reply, status: number, code: string, proxyStatus: string): void {
  assert.equal(reply.status, status, reply.body.toString());
  assert.match(String(reply.headers['content-type']), /^application\/json/);
  const body = reply.json<{ error: string; message: string }>();
  assert.equal(body.error, code);
  assert.ok(body.message.length > 20 && !/\n\s+at /.test(body.message), 'a sentence, not a stack');
  assert.match(String(reply.headers['proxy-status']), new RegExp(`^logicnets-token-proxy; error=${proxyStatus}; details="`));
}

function curl(args: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args],
      { env: { PATH: process.env.PATH ?? '' } }, (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`curl failed: ${stderr}`));
          return;
        }
        const cut = stdout.lastIndexOf('\n');
        resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
      });
  });
}

/**
 * Moves the manual clock to the planned retry, and no further: a longer jump would also run the
 * retry's own time limit (30 s on the same clock) before its answer could arrive over the network.
 */
async function advanceToRetry(clock: ManualClock, tokens: { state(): { nextRefreshAt: number | undefined } }): Promise<void> {
  const at = tokens.state().nextRefreshAt;
  assert.ok(at !== undefined, 'a retry is planned');
  await clock.advance(at - clock.now());
}

function upstreamName(stack: E2eSidecar): string {
  return (stack.config.upstreams[0] as { name: string }).name;
}

describe('both modes reach the API with the sidecar\'s token', () => {
  for (const [label, get] of [['HTTPS', () => secure], ['plain HTTP', () => plain]] as const) {
    test(`gateway mode over ${label}: client credentials replaced, Host the upstream's, Via added`, async () => {
      const stack = get();
      const reply = await call(stack.proxyPort, '/logicnets/_echo?x=1&y=%20z', {
        headers: { authorization: CLIENT_BASIC, 'proxy-authorization': CLIENT_BASIC, 'x-request-id': 'e2e-gateway' },
      });
      assert.equal(reply.status, 200, reply.body.toString());
      const echo = reply.json<Echo>();
      assertForwarded(stack, echo);
      assert.equal(echo.path, '/logicnets/_echo');
      assert.deepEqual(echo.query, { x: '1', y: ' z' });
      assert.equal(echo.headers['x-request-id'], 'e2e-gateway');
      assert.match(String(reply.headers.via), /logicnets-token-proxy/);
    });

    test(`forward-proxy mode over ${label}: the absolute http:// URL reaches the upstream's scheme`, async () => {
      const stack = get();
      const reply = await call(stack.proxyPort, `http://127.0.0.1:${stack.emulator.port}/logicnets/_echo?q=2`, {
        method: 'PUT', headers: { authorization: CLIENT_BASIC, 'content-type': 'text/plain' }, body: 'put body',
      });
      assert.equal(reply.status, 200, reply.body.toString());
      const echo = reply.json<Echo>();
      assertForwarded(stack, echo);
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.bodySha256, sha256('put body'));
      assert.deepEqual(echo.query, { q: '2' });
    });
  }

  test('forward-proxy mode with `curl -x` as the client', { skip: hasCurl ? false : 'curl is not installed' }, async () => {
    for (const stack of [secure, plain]) {
      const url = `http://127.0.0.1:${stack.emulator.port}/logicnets/_echo`;
      const result = await curl(['-x', stack.proxyUrl, '-H', `Authorization: ${CLIENT_BASIC}`, url]);
      assert.equal(result.status, 200, result.body);
      const echo = JSON.parse(result.body) as Echo;
      assertForwarded(stack, echo);
      assert.equal(echo.headers['proxy-connection'], undefined, 'curl\'s Proxy-Connection is hop-by-hop');
      const gateway = await curl(['-H', `Authorization: ${CLIENT_BASIC}`, `${stack.proxyUrl}/logicnets/_echo`]);
      assert.equal(gateway.status, 200, gateway.body);
    }
  });
});

test('200 concurrent requests on a cold start share one token request', async () => {
  // The token endpoint is reached through a gate that holds the first (and only) token request
  // until all 200 requests wait in the proxy: the start is cold for every one of them.
  const emulator = await startE2eEmulator({ pki, users: [user] });
  const gate = await startTcpGate(emulator.port);
  const tokenUrl = new URL(emulator.tokenUrl);
  tokenUrl.port = String(gate.port);
  let started: E2eSidecar | undefined;
  try {
    started = await startE2eSidecar({
      env: { ...sidecarEnv(emulator, user, pki), LOGICNETS_TOKEN_URL: tokenUrl.href, LOGICNETS_TOKEN_AUDIENCE: emulator.audience },
    });
    const { proxy, stacks } = started.sidecar;
    const { proxyPort } = started;
    await waitUntil(() => gate.held === 1, 'the first token request reached the gate');
    const replies = Promise.all(Array.from({ length: 200 }, (_, i) =>
      call(proxyPort, `/logicnets/WebAPIExample/function_1?i=${i}`, { limitMs: 20_000 })));
    replies.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    await waitUntil(() => proxy.inFlight() === 200, 'all 200 requests wait in the proxy', 15_000);
    assert.equal(stacks[0]!.tokens.peek(), undefined, 'no token yet: the start is cold');
    assert.equal(emulator.stats.tokenRequests, 0);
    assert.equal(emulator.stats.apiRequests, 0, 'nothing was forwarded without a token');

    gate.open();
    const statuses = (await replies).map((r) => r.status);
    assert.deepEqual([...new Set(statuses)], [200]);
    assert.equal(emulator.stats.tokenRequests, 1, 'one token request for all 200');
    assert.equal(gate.connections, 1, 'one connection to the token endpoint');
    assert.equal(emulator.stats.apiRequests, 200);
  } finally {
    await started?.close();
    await gate.close();
    await emulator.close();
  }
});

/** Requests sent back to back by a few workers until stopped; every status and token is recorded. */
class RequestFlow {
  readonly statuses: number[] = [];
  readonly tokens: string[] = [];
  #running = false;
  #workers: Promise<void>[] = [];
  readonly #port: number;

  constructor(port: number) {
    this.#port = port;
  }

  start(workers = 4): void {
    this.#running = true;
    this.#workers = Array.from({ length: workers }, () => this.#work());
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#workers);
  }

  /** Waits (bounded) until `more` further requests finished. */
  async flowFor(more: number): Promise<void> {
    const target = this.statuses.length + more;
    await waitUntil(() => this.statuses.length >= target, `${more} more requests finished`);
  }

  async #work(): Promise<void> {
    while (this.#running) {
      const reply = await call(this.#port, '/logicnets/_echo');
      this.statuses.push(reply.status);
      if (reply.status === 200) this.tokens.push(echoedToken(reply.json<Echo>()));
    }
  }
}

test('the token is refreshed while requests flow (plain HTTP, manual clock): nothing fails, the new token is used', async () => {
  const clock = new ManualClock();
  const stack = await startStack(user, { clock, tokenLifetimeSeconds: 300 });
  const flow = new RequestFlow(stack.proxyPort);
  try {
    const tokens = stack.sidecar.stacks[0]!.tokens;
    await waitUntil(() => tokens.peek() !== undefined, 'the first token arrived');
    const first = tokens.peek()!;
    assert.equal(stack.emulator.stats.tokenRequests, 1);

    flow.start();
    await flow.flowFor(10);
    // To the refresh point (75-85 % of the lifetime, at the latest 30 s before expiry). One step: a
    // longer jump would also run the refresh's own 30 s time limit before its answer could arrive.
    const refreshAt = tokens.state().nextRefreshAt ?? Number.NaN;
    assert.ok(refreshAt > clock.now() && refreshAt < first.expiresAt - 10_000, 'a refresh is planned before expiry');
    await clock.advance(refreshAt - clock.now());
    await waitUntil(() => stack.emulator.stats.tokenRequests === 2 && tokens.peek() !== undefined && tokens.peek() !== first,
      'the background refresh got a new token');
    const second = tokens.peek()!;
    await flow.flowFor(10);
    await flow.stop();
    assert.deepEqual([...new Set(flow.statuses)], [200], 'no request failed during the refresh');
    assert.equal(flow.tokens.at(-1), second.accessToken, 'the refreshed token is in use');

    // Past the first token's expiry: the emulator refuses it now, so only the new one can pass.
    const before2 = flow.statuses.length;
    flow.start();
    await clock.advance(first.expiresAt - clock.now() + 5_000);
    assert.ok(clock.now() > first.expiresAt);
    await flow.flowFor(10);
    await flow.stop();
    assert.deepEqual([...new Set(flow.statuses)], [200]);
    assert.deepEqual([...new Set(flow.tokens.slice(before2))], [second.accessToken]);
    assert.equal(stack.emulator.stats.tokenRequests, 2);
    const metrics = await scrapeMetrics(stack.adminPort);
    assert.equal(metricValue(metrics, 'logicnets_proxy_upstream_retries_total', { upstream: upstreamName(stack) }) ?? 0, 0,
      'no request needed a resend');
  } finally {
    await flow.stop();
    await stack.close();
  }
});

test('a 401 from the API: the request is resent once with a fresh token, its body intact', async () => {
  const name = upstreamName(secure);
  const retries = async (): Promise<number> =>
    metricValue(await scrapeMetrics(secure.adminPort), 'logicnets_proxy_upstream_retries_total', { upstream: name }) ?? 0;
  const warm = await call(secure.proxyPort, '/logicnets/_echo');
  assert.equal(warm.status, 200);
  const oldToken = echoedToken(warm.json<Echo>());
  const retriesBefore = await retries();
  const tokenRequests = secure.emulator.stats.tokenRequests;

  secure.emulator.revokeAll();
  const get = await call(secure.proxyPort, '/logicnets/_echo?after=revoke');
  assert.equal(get.status, 200, get.body.toString());
  const newToken = echoedToken(get.json<Echo>());
  assert.notEqual(newToken, oldToken);
  assert.equal(secure.emulator.stats.tokenRequests, tokenRequests + 1);

  secure.emulator.revokeAll();
  const body = JSON.stringify({ order: 42, lines: ['a', 'b'], note: 'ü' });
  const post = await call(secure.proxyPort, '/logicnets/_echo', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
  });
  assert.equal(post.status, 200, post.body.toString());
  const echo = post.json<Echo>();
  assert.equal(echo.method, 'POST');
  assert.equal(echo.bodyBytes, Buffer.byteLength(body));
  assert.equal(echo.bodySha256, sha256(body));
  assert.notEqual(echoedToken(echo), newToken);
  assert.equal(secure.emulator.stats.tokenRequests, tokenRequests + 2);
  assert.equal(await retries(), retriesBefore + 2);
});

describe('token endpoint down', () => {
  test('503 token_unavailable with Proxy-Status and Retry-After at once, then recovery after the backoff', async () => {
    const clock = new ManualClock();
    const stack = await startStack(user, { pki, clock, fault: { status: 503 } });
    try {
      const tokens = stack.sidecar.stacks[0]!.tokens;
      await waitUntil(() => tokens.state().consecutiveFailures === 1, 'the first token request failed');
      for (const options of [{}, { method: 'POST', body: 'x=1', headers: { 'content-type': 'text/plain' } }]) {
        const reply = await call(stack.proxyPort, '/logicnets/WebAPIExample/function_1', { ...options, limitMs: 5000 });
        assertSidecarError(reply, 503, 'token_unavailable', 'destination_unavailable');
        assert.match(String(reply.headers['retry-after']), /^[1-9]\d*$/);
      }
      assert.equal(stack.emulator.stats.apiRequests, 0, 'nothing was forwarded without a token');

      stack.emulator.setTokenEndpointFault(null);
      await advanceToRetry(clock, tokens);
      await waitUntil(() => tokens.peek() !== undefined, 'the retry got a token');
      const reply = await call(stack.proxyPort, '/logicnets/WebAPIExample/function_1', { limitMs: 5000 });
      assert.equal(reply.status, 200, reply.body.toString());
      assert.equal(stack.emulator.stats.tokenRequests, 2);
    } finally {
      await stack.close();
    }
  });

  test('a hanging token endpoint: 503 after LOGICNETS_TOKEN_TIMEOUT, not a hang', async () => {
    const stack = await startStack(user, { pki, fault: 'hang', env: { LOGICNETS_TOKEN_TIMEOUT: '0.3' } });
    try {
      const reply = await call(stack.proxyPort, '/logicnets/WebAPIExample/function_1', { limitMs: 5000 });
      assertSidecarError(reply, 503, 'token_unavailable', 'destination_unavailable');
      assert.match(String(reply.headers['retry-after']), /^[1-9]\d*$/);
      assert.equal(stack.emulator.stats.apiRequests, 0);
    } finally {
      await stack.close();
    }
  });
});

describe('upstream failures', () => {
  test('an upstream that refuses connections: 502 upstream_refused', async () => {
    const port = await closedPort();
    const sidecar = await startE2eSidecar({
      env: {
        ...sidecarEnv(secure.emulator, user, pki),
        LOGICNETS_URL: `http://127.0.0.1:${port}/logicnets`,
        LOGICNETS_TOKEN_URL: secure.emulator.tokenUrl,
        LOGICNETS_TOKEN_AUDIENCE: secure.emulator.audience,
      },
    });
    try {
      const reply = await call(sidecar.proxyPort, '/logicnets/WebAPIExample/function_1');
      assertSidecarError(reply, 502, 'upstream_refused', 'connection_refused');
      assert.ok(sidecar.sidecar.stacks[0]!.tokens.peek() !== undefined, 'the token was there; the upstream failed');
    } finally {
      await sidecar.close();
    }
  });

  test('a slow upstream: 504 upstream_timeout after UPSTREAM_TIMEOUT, and the next request still works', async () => {
    const sidecar = await startE2eSidecar({ env: { ...sidecarEnv(secure.emulator, user, pki), UPSTREAM_TIMEOUT: '0.3' } });
    try {
      const reply = await call(sidecar.proxyPort, '/logicnets/_slow?ms=2000', { limitMs: 5000 });
      assertSidecarError(reply, 504, 'upstream_timeout', 'http_response_timeout');
      assert.equal((await call(sidecar.proxyPort, '/logicnets/_echo')).status, 200);
    } finally {
      await sidecar.close();
    }
  });
});

describe('clients that go away leave nothing behind', () => {
  const nothingLeft = async (what: string): Promise<void> => {
    const { proxy } = secure.sidecar;
    const { agent } = secure.sidecar.stacks[0]!;
    await waitFor(async () => proxy.inFlight() === 0 && agentActiveSockets(agent) === 0
      && await connectionCount(proxy.server) === 0, what, 5000);
  };

  test('mid-download', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: secure.proxyPort, path: `/logicnets/_download?bytes=${2 ** 30}`, agent: false,
      }, (res) => {
        assert.equal(res.statusCode, 200);
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received >= 1024 * 1024 && !req.destroyed) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (error) => {
        if (!req.destroyed) reject(error);
      });
      req.end();
    });
    await nothingLeft('the proxy and its upstream request to close after the client left mid-download');
  });

  test('mid-upload', async () => {
    const req = http.request({
      host: '127.0.0.1', port: secure.proxyPort, method: 'POST', path: '/logicnets/_echo', agent: false,
      headers: { 'content-length': String(64 * 1024 * 1024), 'content-type': 'application/octet-stream' },
    });
    let answered = false;
    req.on('response', () => { answered = true; });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(1024 * 1024, 1));
    await waitUntil(() => secure.sidecar.proxy.inFlight() === 1 && agentActiveSockets(secure.sidecar.stacks[0]!.agent) === 1,
      'the upload was forwarded to the upstream');
    req.write(Buffer.alloc(1024 * 1024, 2));
    req.destroy();
    await nothingLeft('the proxy and its upstream request to close after the client left mid-upload');
    assert.equal(answered, false);
    assert.equal((await call(secure.proxyPort, '/logicnets/_echo')).status, 200, 'the sidecar still serves');
  });
});

test('64 MiB up and 64 MiB down through the full stack arrive intact', async () => {
  const size = 64 * 1024 * 1024;
  const expected = await hashStream(createDeterministicStream(size, 42));
  const up = await call(secure.proxyPort, '/logicnets/_echo', {
    method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: createDeterministicStream(size, 42), limitMs: 60_000,
  });
  assert.equal(up.status, 200, up.body.toString().slice(0, 300));
  const echo = up.json<Echo>();
  assert.equal(echo.bodyBytes, size);
  assert.equal(echo.bodySha256, expected.sha256);

  const down = await callHashed(secure.proxyPort, `/logicnets/_download?bytes=${size}&seed=42`);
  assert.equal(down.status, 200);
  assert.equal(down.bytes, size);
  assert.equal(down.sha256, expected.sha256);
});

describe('header rules and paths through the full stack', () => {
  test('hop-by-hop fields (and those Connection names) are not forwarded; end-to-end ones are', async () => {
    const reply = await call(secure.proxyPort, '/logicnets/_echo', {
      headers: {
        connection: 'keep-alive, x-hop-named',
        'x-hop-named': 'must not pass',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-connection': 'keep-alive',
        'proxy-authorization': CLIENT_BASIC,
        authorization: 'Bearer the-client-s-own-token',
        'x-end-to-end': 'passes',
        'x-forwarded-for': '10.9.8.7',
      },
    });
    assert.equal(reply.status, 200);
    const echo = reply.json<Echo>();
    const token = assertForwarded(secure, { ...echo, headers: { ...echo.headers, 'x-forwarded-for': undefined } });
    assert.notEqual(token, 'the-client-s-own-token');
    for (const name of ['x-hop-named', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization']) {
      assert.equal(echo.headers[name], undefined, `${name} is not forwarded`);
    }
    assert.equal(echo.headers['x-end-to-end'], 'passes');
    assert.equal(echo.headers['x-forwarded-for'], '10.9.8.7', 'a client\'s own X-Forwarded-For passes untouched');
  });

  test('paths are judged after normalisation: no way out of the company', async () => {
    const before0 = { ...secure.emulator.stats };
    const port = secure.emulator.port;
    for (const target of [
      '/logicnets/../secret',
      '/logicnets/a/../../secret',
      '/logicnets/a%2Fb',
      '/logicnets/%2e%2e/secret',
      `http://127.0.0.1:${port}/logicnets/../secret`,
      `http://127.0.0.1:${port}/logicnets/x%2F..%2F..%2Fsecret`,
    ]) {
      assertSidecarError(await call(secure.proxyPort, target), 400, 'bad_request', 'http_request_error');
    }
    assert.equal(secure.emulator.stats.apiRequests, before0.apiRequests, 'nothing was forwarded');
    const inside = await call(secure.proxyPort, '/logicnets/./WebAPIExample/../_echo');
    assert.equal(inside.status, 200);
    assert.equal(inside.json<Echo>().path, '/logicnets/_echo', 'the normalised path is what is sent');
  });

  test('a destination that is not configured: 403, and no token is used or fetched for it', async () => {
    const before0 = { ...secure.emulator.stats };
    const other = await closedPort();
    for (const target of ['http://example.invalid/logicnets/_echo', `http://127.0.0.1:${other}/logicnets/_echo`,
      `http://localhost:${secure.emulator.port}/logicnets/_echo`]) {
      const reply = await call(secure.proxyPort, target, { headers: { authorization: CLIENT_BASIC } });
      assertSidecarError(reply, 403, 'destination_not_configured', 'destination_not_found');
      assert.doesNotMatch(reply.body.toString(), /eyJ|Bearer/);
    }
    assert.deepEqual(secure.emulator.stats, before0, 'neither the token endpoint nor the API was called');
  });

  test('CONNECT is refused with 405', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: secure.proxyPort, method: 'CONNECT', path: `127.0.0.1:${secure.emulator.port}`, agent: false,
      });
      req.on('connect', (res: http.IncomingMessage, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 405);
  });
});

test('admin endpoints: probes, readiness on the token, /status without the token, /metrics', async () => {
  const clock = new ManualClock();
  const stack = await startStack(user, { pki, clock, fault: { status: 503 }, env: { READINESS_REQUIRE_TOKEN: 'true' } });
  try {
    const admin = stack.adminPort;
    const name = upstreamName(stack);
    const tokens = stack.sidecar.stacks[0]!.tokens;
    assert.equal((await call(admin, '/livez')).status, 200);
    assert.equal((await call(admin, '/healthz')).status, 200);
    const unready = await call(admin, '/readyz');
    assert.equal(unready.status, 503);
    assert.match(JSON.stringify(unready.json()), /no valid access token/);

    await waitUntil(() => tokens.state().consecutiveFailures === 1, 'the first token request failed');
    const failing = (await call(admin, '/status')).json<{ upstreams: { token: { valid: boolean; lastError: { code: string } } }[] }>();
    assert.equal(failing.upstreams[0]?.token.valid, false);
    assert.equal(failing.upstreams[0]?.token.lastError.code, 'token_endpoint_unreachable');

    stack.emulator.setTokenEndpointFault(null);
    await advanceToRetry(clock, tokens);
    await waitUntil(() => tokens.peek() !== undefined, 'the retry got a token');
    assert.equal((await call(admin, '/readyz')).status, 200);

    const echo = await call(stack.proxyPort, '/logicnets/_echo');
    assert.equal(echo.status, 200);
    const token = echoedToken(echo.json<Echo>());
    const claims = decodeJwt(token);

    const statusReply = await call(admin, '/status');
    assert.equal(statusReply.status, 200);
    const text = statusReply.body.toString();
    for (const part of [token, ...token.split('.')]) assert.equal(text.includes(part), false, '/status never shows the token');
    const status = statusReply.json<{
      draining: boolean;
      upstreams: { name: string; url: string; token: { valid: boolean; expiresAt: string; lastError: unknown; claims: { aud: string; exp: number } } }[];
    }>();
    assert.equal(status.draining, false);
    assert.equal(status.upstreams.length, 1);
    const [upstream] = status.upstreams;
    assert.equal(upstream?.name, name);
    assert.equal(upstream?.url, stack.emulator.url);
    assert.equal(upstream?.token.valid, true);
    assert.equal(upstream?.token.lastError, null);
    assert.equal(upstream?.token.claims.aud, stack.emulator.url);
    assert.equal(upstream?.token.claims.exp, claims.exp);
    const expiresAt = Date.parse(upstream?.token.expiresAt ?? '');
    assert.ok(Math.abs(expiresAt - (claims.exp ?? 0) * 1000) < 1000, 'the expiry the token endpoint gave');

    const metrics = await scrapeMetrics(admin);
    assert.equal(metricValue(metrics, 'logicnets_proxy_requests_total', { upstream: name, code: '200' }), 1);
    assert.equal(metricValue(metrics, 'logicnets_proxy_request_duration_seconds_count', { upstream: name }), 1);
    assert.equal(metricValue(metrics, 'logicnets_proxy_token_requests_total', { upstream: name, result: 'success' }), 1);
    assert.equal(metricValue(metrics, 'logicnets_proxy_token_requests_total', { upstream: name, result: 'failure' }), 1);
    assert.equal(metricValue(metrics, 'logicnets_proxy_token_expiry_timestamp_seconds', { upstream: name }), expiresAt / 1000);
    assert.doesNotMatch(metrics, /eyJ/);
  } finally {
    await stack.close();
  }
});
