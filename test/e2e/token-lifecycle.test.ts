// The token lifecycle end to end (issue 9 and the token half of issue 8): the real sidecar in front
// of the LogicNets emulator over real sockets. A fixed key works at once (symlink swap and in-place
// rewrite), an always-401 upstream costs at most two token requests, short-lived tokens cause no
// failed request, the RFC 10070 typ and extra-parameter settings reach the server, hostile token
// answers become 503 JSON with nothing forwarded, and the token metrics exist from start-up.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  call, makeServerUser, makeWorkDir, metricValue, scrapeMetrics, sidecarEnv, startE2eEmulator, startE2eSidecar,
} from '../helpers/e2e-stack.js';
import type { E2eSidecar } from '../helpers/e2e-stack.js';
import type { Emulator } from '../../src/emulator/emulator.js';
import { makeRsaKey } from '../helpers/rsa-keys.js';
import { waitUntil } from '../helpers/wait-until.js';

const dir = makeWorkDir('ltp-lifecycle-');
after(() => dir.cleanup());

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a sidecar with `env` on top of the usual test environment for `emulator` and `user`. */
async function sidecarFor(emulator: Emulator, user: ReturnType<typeof makeServerUser>, env: Record<string, string> = {}): Promise<E2eSidecar> {
  return startE2eSidecar({ env: { ...sidecarEnv(emulator, user), ...env } });
}

/** Calls the proxy until it answers 200, every 50 ms; returns how long that took after `since`. */
async function msUntil200(sidecar: E2eSidecar, since: number, limitMs: number): Promise<number> {
  for (;;) {
    const reply = await call(sidecar.proxyPort, '/logicnets/WebAPIExample/function_1', { limitMs: 5000 });
    if (reply.status === 200) return Date.now() - since;
    if (Date.now() - since > limitMs) assert.fail(`still ${reply.status} ${reply.body.toString()} after ${limitMs} ms`);
    await sleep(50);
  }
}

describe('a fixed key ends an invalid_client outage at once', () => {
  for (const how of ['a Kubernetes ..data symlink swap', 'an in-place rewrite'] as const) {
    it(`${how}: 200 within 2 s of the reload`, async () => {
      const user = makeServerUser(dir);
      const wrong = makeRsaKey();
      // The key file the sidecar reads, laid out as the kubelet lays out a Secret volume.
      const secretDir = join(dir.path, `secret-${user.clientId}`);
      mkdirSync(secretDir);
      let keyFile: string;
      if (how === 'a Kubernetes ..data symlink swap') {
        mkdirSync(join(secretDir, '..2026_a'));
        writeFileSync(join(secretDir, '..2026_a', 'key.pem'), wrong.pkcs8Pem, { mode: 0o600 });
        symlinkSync('..2026_a', join(secretDir, '..data'));
        symlinkSync(join('..data', 'key.pem'), join(secretDir, 'key.pem'));
        keyFile = join(secretDir, 'key.pem');
      } else {
        keyFile = join(secretDir, 'key.pem');
        writeFileSync(keyFile, wrong.pkcs8Pem, { mode: 0o600 });
      }
      const emulator = await startE2eEmulator({ users: [user] });
      const sidecar = await sidecarFor(emulator, user, { LOGICNETS_PRIVATE_KEY_FILE: keyFile });
      try {
        await waitUntil(() => emulator.stats.tokenFailures >= 1, 'the first token request failed');
        const refused = await call(sidecar.proxyPort, '/logicnets/WebAPIExample/function_1');
        assert.equal(refused.status, 503);
        assert.equal(refused.json<{ error: string }>().error, 'token_unavailable');
        assert.match(refused.json<{ message: string }>().message, /invalid_client/);
        await sleep(300); // the cache is now waiting out its slow retry (60 s) for invalid_client

        const swappedAt = Date.now();
        if (how === 'a Kubernetes ..data symlink swap') {
          mkdirSync(join(secretDir, '..2026_b'));
          writeFileSync(join(secretDir, '..2026_b', 'key.pem'), user.key.pkcs8Pem, { mode: 0o600 });
          symlinkSync('..2026_b', join(secretDir, '..data_tmp'));
          renameSync(join(secretDir, '..data_tmp'), join(secretDir, '..data')); // atomic, as the kubelet does
        } else {
          writeFileSync(keyFile, user.key.pkcs8Pem);
        }
        const took = await msUntil200(sidecar, swappedAt, 5000);
        assert.ok(took < 2000, `200 came ${took} ms after the key changed`);
        assert.ok(emulator.stats.tokenRequests <= 4, `${emulator.stats.tokenRequests} token requests`);
        const metrics = await scrapeMetrics(sidecar.adminPort);
        const name = sidecar.config.upstreams[0]!.name;
        assert.equal(metricValue(metrics, 'logicnets_proxy_token_request_failures_total', { upstream: name, reason: 'invalid_client' }), 1);
        assert.equal(metricValue(metrics, 'logicnets_proxy_token_valid', { upstream: name }), 1);
      } finally {
        await sidecar.close();
        await emulator.close();
      }
    });
  }
});

describe('an upstream that answers 401 to every token', () => {
  it('20 requests cost at most 2 token requests, and the 401s reach the client', async () => {
    const user = makeServerUser(dir);
    const emulator = await startE2eEmulator({ users: [user] });
    const sidecar = await sidecarFor(emulator, user);
    try {
      await waitUntil(() => emulator.stats.tokenRequests >= 1 && sidecar.sidecar.stacks[0]!.tokens.peek() !== undefined, 'the first token');
      for (let i = 0; i < 20; i++) {
        const reply = await call(sidecar.proxyPort, '/logicnets/_status?code=401');
        assert.equal(reply.status, 401, `request ${i}`);
      }
      assert.ok(emulator.stats.tokenRequests <= 2, `${emulator.stats.tokenRequests} token requests for 20 requests`);
      const metrics = await scrapeMetrics(sidecar.adminPort);
      const name = sidecar.config.upstreams[0]!.name;
      assert.equal(metricValue(metrics, 'logicnets_proxy_token_forced_refreshes_total', { upstream: name }), 1);
      // A real revocation still recovers: the floor passed (a short floor here), one forced refresh gets a new token.
    } finally {
      await sidecar.close();
      await emulator.close();
    }
  });

  it('with a short floor, a revoked token is replaced after a 401 and the request succeeds', async () => {
    const user = makeServerUser(dir);
    const emulator = await startE2eEmulator({ users: [user] });
    const sidecar = await sidecarFor(emulator, user, { TOKEN_FORCED_REFRESH_FLOOR: '0' });
    try {
      assert.equal((await call(sidecar.proxyPort, '/logicnets/x')).status, 200);
      emulator.revokeAll();
      assert.equal((await call(sidecar.proxyPort, '/logicnets/x')).status, 200, 'resent with a new token');
      assert.equal(emulator.stats.tokenRequests, 2);
    } finally {
      await sidecar.close();
      await emulator.close();
    }
  });
});

describe('short-lived tokens', () => {
  it('3 s tokens for 7 s: every request 200, about one token request per lifetime', async () => {
    const user = makeServerUser(dir);
    const emulator = await startE2eEmulator({ users: [user], tokenLifetimeSeconds: 3 });
    const sidecar = await sidecarFor(emulator, user);
    try {
      const start = Date.now();
      let requests = 0;
      while (Date.now() - start < 7000) {
        const reply = await call(sidecar.proxyPort, '/logicnets/x');
        assert.equal(reply.status, 200, `after ${Date.now() - start} ms: ${reply.body.toString()}`);
        requests += 1;
        await sleep(50);
      }
      assert.ok(requests > 20);
      // 7 s / 3 s lifetimes, refreshed a third of the lifetime ahead: about 4; never a storm.
      assert.ok(emulator.stats.tokenRequests <= 7, `${emulator.stats.tokenRequests} token requests`);
      assert.equal(emulator.stats.tokenFailures, 0);
    } finally {
      await sidecar.close();
      await emulator.close();
    }
  });
});

describe('RFC 10070 typ and extra token request parameters against the emulator', () => {
  for (const method of ['GET', 'POST'] as const) {
    it(`${method}: the server that requires them gives a token only with the settings`, async () => {
      const user = makeServerUser(dir);
      const emulator = await startEmulatorRequiring(user);
      const configured = await sidecarFor(emulator, user, {
        LOGICNETS_TOKEN_METHOD: method,
        LOGICNETS_ASSERTION_TYP: 'client-authentication+jwt',
        LOGICNETS_TOKEN_PARAMS: 'audience=api%3A%2F%2Flua5&resource=https%3A%2F%2Flua5.logicnets.local%2F',
        LOG_LEVEL: 'silent',
      });
      const bare = await sidecarFor(emulator, user, { LOGICNETS_TOKEN_METHOD: method });
      try {
        assert.equal((await call(configured.proxyPort, '/logicnets/x')).status, 200);
        const refused = await call(bare.proxyPort, '/logicnets/x');
        assert.equal(refused.status, 503);
        assert.equal(emulator.stats.apiRequests, 1, 'nothing forwarded without a token');
      } finally {
        await configured.close();
        await bare.close();
        await emulator.close();
      }
    });
  }

  it('parameters the sidecar sets itself are refused at start-up, without echoing values', async () => {
    const user = makeServerUser(dir);
    const emulator = await startE2eEmulator({ users: [user] });
    try {
      await assert.rejects(sidecarFor(emulator, user, { LOGICNETS_TOKEN_PARAMS: 'resource=x&client_assertion=sekrit-value' }),
        (error: Error) => /tokenParams \(LOGICNETS_TOKEN_PARAMS\).*client_assertion/.test(error.message) && !error.message.includes('sekrit'));
      await assert.rejects(sidecarFor(emulator, user, { LOGICNETS_ASSERTION_TYP: 'at+jwt' }), /LOGICNETS_ASSERTION_TYP/);
    } finally {
      await emulator.close();
    }
  });
});

function startEmulatorRequiring(user: ReturnType<typeof makeServerUser>): Promise<Emulator> {
  return import('../../src/emulator/emulator.js').then(({ startEmulator }) => startEmulator({
    clients: [{ clientId: user.clientId, publicKey: user.key.publicKey }],
    assertionType: 'client-authentication+jwt',
    requiredTokenParams: { audience: 'api://lua5', resource: 'https://lua5.logicnets.local/' },
  }));
}

describe('hostile token answers through the sidecar', () => {
  it('each becomes 503 JSON with nothing forwarded, or a capped token; the process stays alive', async () => {
    const crashes: unknown[] = [];
    const onCrash = (error: unknown): void => {
      crashes.push(error);
    };
    process.on('unhandledRejection', onCrash);
    process.on('uncaughtException', onCrash);
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const cases: { name: string; body: string; forwarded: boolean }[] = [
      { name: 'expires_in 1e13', body: JSON.stringify({ access_token: 'unknown-to-the-api-1', token_type: 'Bearer', expires_in: 1e13 }), forwarded: true },
      { name: 'JWT exp 1e20', body: JSON.stringify({ access_token: `${b64({ alg: 'none' })}.${b64({ exp: 1e20 })}.sig`, token_type: 'Bearer' }), forwarded: true },
      { name: 'CR LF in the token', body: JSON.stringify({ access_token: 'abc\r\nX-Injected: 1', token_type: 'Bearer', expires_in: 60 }), forwarded: false },
      { name: 'a space in the token', body: JSON.stringify({ access_token: 'abc def', token_type: 'Bearer', expires_in: 60 }), forwarded: false },
      { name: 'expires_in 0', body: JSON.stringify({ access_token: 'abc', token_type: 'Bearer', expires_in: 0 }), forwarded: false },
      { name: 'expires_in "x"', body: JSON.stringify({ access_token: 'abc', token_type: 'Bearer', expires_in: 'x' }), forwarded: false },
      { name: 'token_type mac', body: JSON.stringify({ access_token: 'abc', token_type: 'mac', expires_in: 60 }), forwarded: false },
      { name: 'a 2 MiB body', body: JSON.stringify({ access_token: 'abc', token_type: 'Bearer', expires_in: 60, pad: 'x'.repeat(2 << 20) }), forwarded: false },
    ];
    let current = cases[0]!;
    const hostile = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(current.body));
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    const user = makeServerUser(dir);
    const emulator = await startE2eEmulator({ users: [user] });
    try {
      for (const hostileCase of cases) {
        current = hostileCase;
        const before = emulator.stats.apiRequests;
        const sidecar = await sidecarFor(emulator, user, {
          LOGICNETS_TOKEN_URL: `http://127.0.0.1:${(hostile.address() as AddressInfo).port}/token`,
        });
        try {
          const reply = await call(sidecar.proxyPort, '/logicnets/x');
          if (hostileCase.forwarded) {
            assert.equal(reply.status, 401, `${hostileCase.name}: the capped token was used; the API does not know it`);
          } else {
            assert.equal(reply.status, 503, hostileCase.name);
            assert.equal(reply.json<{ error: string }>().error, 'token_unavailable', hostileCase.name);
            assert.equal(emulator.stats.apiRequests, before, `${hostileCase.name}: nothing forwarded`);
          }
          assert.equal(sidecar.sidecar.stacks[0]!.tokens.peek()?.accessToken.includes('\n') ?? false, false);
          const admin = await call(sidecar.adminPort, '/livez');
          assert.equal(admin.status, 200, 'still serving');
        } finally {
          await sidecar.close();
        }
      }
      await sleep(50);
      assert.deepEqual(crashes, []);
    } finally {
      process.off('unhandledRejection', onCrash);
      process.off('uncaughtException', onCrash);
      hostile.closeAllConnections();
      await new Promise((resolve) => hostile.close(resolve));
      await emulator.close();
    }
  });
});

describe('token metrics', () => {
  it('are present from start-up, say why token requests fail, and /metrics passes promtool', async () => {
    const user = makeServerUser(dir);
    const stranger = makeServerUser(dir);
    const emulator = await startE2eEmulator({ users: [user] });
    const sidecar = await sidecarFor(emulator, stranger);
    try {
      const name = sidecar.config.upstreams[0]!.name;
      let metrics = await scrapeMetrics(sidecar.adminPort);
      assert.equal(metricValue(metrics, 'logicnets_proxy_token_valid', { upstream: name }), 0);
      assert.equal(metricValue(metrics, 'logicnets_proxy_token_expiry_timestamp_seconds', { upstream: name }), 0);
      assert.match(metrics, /^logicnets_proxy_build_info\{version="\d+\.\d+\.\d+[^"]*",node="[^"]+"\} 1$/m);
      await waitUntil(() => emulator.stats.tokenFailures >= 1, 'the token request failed');
      await sleep(50);
      metrics = await scrapeMetrics(sidecar.adminPort);
      assert.equal(metricValue(metrics, 'logicnets_proxy_token_request_failures_total', { upstream: name, reason: 'invalid_client' }), 1);
      assert.equal(metricValue(metrics, 'logicnets_proxy_token_valid', { upstream: name }), 0);
      const promtool = [process.env.PROMTOOL_BIN, join(process.cwd(), '.ci/promtool/promtool')]
        .find((candidate) => candidate !== undefined && candidate !== '' && existsSync(candidate));
      if (promtool !== undefined) {
        const result = spawnSync(promtool, ['check', 'metrics'], { input: metrics, encoding: 'utf8', timeout: 30_000 });
        assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
      } else if (process.env.CI) {
        assert.fail('promtool is not installed; .ci/run installs it and exports PROMTOOL_BIN');
      }
    } finally {
      await sidecar.close();
      await emulator.close();
    }
  });
});
