import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { decodeJwt, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWTPayload } from 'jose';
import { createDeterministicStream, startEmulator } from '../../../src/emulator/emulator.js';
import type { Emulator } from '../../../src/emulator/emulator.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { makeLogSink, secretFragments } from '../../helpers/log-sink.js';
import { makeTestPki } from '../../helpers/tls.js';
import type { TestPki } from '../../helpers/tls.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const CLIENT_ID = '4664FD8C-9CEC-A8A2-D666-02A352A492A1';
const ISSUER_CLIENT_ID = 'client-with-issuer';

/**
 * The client keys, made once for the file and registered with each emulator below (an RSA-2048 key
 * costs about 150 ms of CPU): `client` (a jose pair), `other` (a key no emulator knows) and `issuer`
 * (a Node KeyObject pair).
 */
let clientKeys: Promise<{
  client: Awaited<ReturnType<typeof generateKeyPair>>;
  other: CryptoKey;
  issuer: ReturnType<typeof generateKeyPairSync>;
}> | undefined;
function fileClientKeys(): NonNullable<typeof clientKeys> {
  clientKeys ??= (async () => ({
    client: await generateKeyPair('RS256'),
    other: (await generateKeyPair('RS256')).privateKey,
    issuer: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  }))();
  return clientKeys;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json(): Record<string, unknown>;
}

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
}

/** One request on a fresh connection; trusts `ca` for HTTPS. */
function send(url: string, ca: string | undefined, options: RequestOptions = {}): Promise<Reply> {
  const target = new URL(url);
  const lib = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(target, { method: options.method ?? 'GET', headers: options.headers, agent: false, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown> });
      });
    });
    req.on('error', reject);
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error('client timeout')));
    }
    req.end(options.body);
  });
}

/** Hashes a download without keeping it. */
function hashDownload(url: string, ca: string | undefined, token: string): Promise<{ status: number; length: string | undefined; bytes: number; sha256: string }> {
  const target = new URL(url);
  const lib = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(target, { headers: { Authorization: `Bearer ${token}` }, agent: false, ca }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length; });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], bytes, sha256: hash.digest('hex') }));
    });
    req.on('error', reject);
  });
}

async function hashStream(stream: AsyncIterable<Buffer>): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) { hash.update(chunk); bytes += chunk.length; }
  return { bytes, sha256: hash.digest('hex') };
}

for (const scheme of ['http', 'https'] as const) {
  describe(`LogicNets emulator over ${scheme}`, () => {
    let pki: TestPki | undefined;
    let ca: string | undefined;
    let emulator: Emulator;
    let clientKey: CryptoKey;
    let clientPublicPem: string;
    let otherKey: CryptoKey;
    let issuerClientKey: ReturnType<typeof generateKeyPairSync>['privateKey'];
    const clock = new ManualClock();
    const sink = makeLogSink('trace');
    const secrets: string[] = [];
    const nowSeconds = (): number => Math.floor(clock.now() / 1000);

    before(async () => {
      if (scheme === 'https') {
        pki = makeTestPki();
        ca = pki.caCertPem;
      }
      const keys = await fileClientKeys();
      const pair = keys.client;
      clientKey = pair.privateKey;
      clientPublicPem = await exportSPKI(pair.publicKey);
      otherKey = keys.other;
      // A second client registered with a Node KeyObject (its private half: the emulator keeps only the public one).
      const nodePair = keys.issuer;
      issuerClientKey = nodePair.privateKey;
      emulator = await startEmulator({
        tls: pki ? { cert: pki.serverCertPem, key: pki.serverKeyPem } : undefined,
        clients: [
          { clientId: CLIENT_ID, publicKey: await exportJWK(pair.publicKey) },
          { clientId: ISSUER_CLIENT_ID, publicKey: nodePair.privateKey, issuer: 'https://client.org' },
        ],
        clock,
        logger: sink.logger,
      });
    });

    after(async () => {
      await emulator.close();
      pki?.cleanup();
    });

    /** An assertion as the tutorial describes it; `edit` changes claims (undefined deletes one). */
    async function assertion(edit: Partial<Record<keyof JWTPayload, unknown>> = {}, key: CryptoKey | typeof issuerClientKey = clientKey): Promise<string> {
      const iat = nowSeconds();
      const claims: Record<string, unknown> = { aud: emulator.url, sub: CLIENT_ID, iss: CLIENT_ID, iat, exp: iat + 300, jti: randomUUID(), ...edit };
      for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
      const jwt = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', nonce: randomUUID() }).sign(key);
      secrets.push(jwt);
      return jwt;
    }

    function tokenQuery(jwt: string, extra: Record<string, string> = {}): string {
      return new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: jwt, ...extra }).toString();
    }

    async function getToken(jwt: string, extra: Record<string, string> = {}): Promise<Reply> {
      return send(`${emulator.tokenUrl}?${tokenQuery(jwt, extra)}`, ca);
    }

    async function postToken(body: string, contentType = 'application/x-www-form-urlencoded'): Promise<Reply> {
      return send(emulator.tokenUrl, ca, { method: 'POST', headers: { 'Content-Type': contentType }, body });
    }

    async function freshToken(): Promise<string> {
      const reply = await getToken(await assertion());
      assert.equal(reply.status, 200, reply.body.toString());
      const token = reply.json().access_token as string;
      secrets.push(token);
      return token;
    }

    function assertOAuthError(reply: Reply, status: number, error: string, description?: RegExp): void {
      assert.equal(reply.status, status, reply.body.toString());
      assert.equal(reply.headers['cache-control'], 'no-store');
      assert.match(String(reply.headers['content-type']), /^application\/json/);
      const body = reply.json();
      assert.equal(body.error, error);
      assert.equal(typeof body.error_description, 'string');
      if (description) assert.match(body.error_description as string, description);
    }

    test('url and tokenUrl name the scheme, the port and the company', () => {
      assert.equal(emulator.url, `${scheme}://127.0.0.1:${emulator.port}/logicnets`);
      assert.equal(emulator.tokenUrl, `${emulator.url}/oauth2token`);
      assert.equal(emulator.audience, emulator.url);
    });

    test('GET with query parameters answers an RFC 6749 token the API accepts', async () => {
      const reply = await getToken(await assertion());
      assert.equal(reply.status, 200, reply.body.toString());
      assert.equal(reply.headers['cache-control'], 'no-store');
      assert.match(String(reply.headers['content-type']), /^application\/json/);
      const body = reply.json();
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 300);
      const token = body.access_token as string;
      secrets.push(token);
      const claims = decodeJwt(token);
      assert.equal(claims.sub, CLIENT_ID);
      assert.equal(claims.aud, emulator.url);
      assert.equal(claims.exp, nowSeconds() + 300);

      const api = await send(`${emulator.url}/WebAPIExample/function_1?a=1&a=2&b=x`, ca, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(api.status, 200);
      assert.deepEqual(api.json(), {
        ok: true, company: 'logicnets', path: '/logicnets/WebAPIExample/function_1', method: 'GET',
        query: { a: ['1', '2'], b: 'x' }, clientId: CLIENT_ID, bodyBytes: 0,
        bodySha256: createHash('sha256').digest('hex'),
      });
    });

    test('POST with a form body answers a token carrying the requested scope', async () => {
      const reply = await postToken(tokenQuery(await assertion(), { scope: 'api read' }), 'application/x-www-form-urlencoded; charset=utf-8');
      assert.equal(reply.status, 200, reply.body.toString());
      const body = reply.json();
      assert.equal(body.scope, 'api read');
      secrets.push(body.access_token as string);
      assert.equal(decodeJwt(body.access_token as string).scope, 'api read');
    });

    test('the Date header follows the injected clock', async () => {
      const reply = await send(`${emulator.url}/x`, ca);
      assert.equal(reply.headers.date, new Date(clock.now()).toUTCString());
    });

    test('an assertion signed with another key is refused as invalid_client', async () => {
      assertOAuthError(await getToken(await assertion({}, otherKey)), 401, 'invalid_client', /signature/);
    });

    test('an unknown sub is refused as invalid_client', async () => {
      assertOAuthError(await getToken(await assertion({ sub: 'nobody' })), 401, 'invalid_client', /nobody/);
    });

    test('a client_id parameter that differs from sub is refused', async () => {
      assertOAuthError(await getToken(await assertion(), { client_id: 'someone-else' }), 401, 'invalid_client', /client_id/);
    });

    test('a wrong aud is refused, naming the expected one', async () => {
      assertOAuthError(await getToken(await assertion({ aud: 'https://lua5.logicnets.local/other' })), 401, 'invalid_client', /aud/);
      assertOAuthError(await getToken(await assertion({ aud: `${emulator.url}/` })), 401, 'invalid_client', /aud/);
      assertOAuthError(await getToken(await assertion({ aud: [emulator.url, 'x'] })), 401, 'invalid_client', /single string/);
    });

    test('an expired assertion is refused, and one within the clock tolerance accepted', async () => {
      const iat = nowSeconds() - 400;
      assertOAuthError(await getToken(await assertion({ iat, exp: nowSeconds() - 61 })), 401, 'invalid_client', /expired/);
      assert.equal((await getToken(await assertion({ iat, exp: nowSeconds() - 30 }))).status, 200);
    });

    test('an iat in the future beyond the tolerance is refused', async () => {
      const iat = nowSeconds() + 120;
      assertOAuthError(await getToken(await assertion({ iat, exp: iat + 60 })), 401, 'invalid_client', /iat/);
    });

    test('an assertion living longer than the maximum is refused', async () => {
      assertOAuthError(await getToken(await assertion({ exp: nowSeconds() + 3601 })), 401, 'invalid_client', /3600/);
    });

    for (const claim of ['jti', 'exp', 'iat', 'sub', 'aud', 'iss'] as const) {
      test(`an assertion without ${claim} is refused`, async () => {
        assertOAuthError(await getToken(await assertion({ [claim]: undefined })), 401, 'invalid_client');
      });
    }

    test('a replayed jti is refused, while a fresh one is accepted', async () => {
      const jwt = await assertion();
      assert.equal((await getToken(jwt)).status, 200);
      assertOAuthError(await getToken(jwt), 401, 'invalid_client', /jti/);
      assertOAuthError(await getToken(await assertion({ jti: decodeJwt(jwt).jti })), 401, 'invalid_client', /jti/);
      assert.equal((await getToken(await assertion())).status, 200);
    });

    test('alg HS256 is refused, also with the public key as the secret', async () => {
      for (const secret of ['a shared secret that is long enough to sign', clientPublicPem]) {
        const hs = await new SignJWT({ aud: emulator.url, sub: CLIENT_ID, iss: CLIENT_ID, jti: randomUUID() })
          .setProtectedHeader({ alg: 'HS256' }).setIssuedAt(nowSeconds()).setExpirationTime(nowSeconds() + 60)
          .sign(new TextEncoder().encode(secret));
        assertOAuthError(await getToken(hs), 401, 'invalid_client', /RS256/);
      }
    });

    test('alg none and garbage are refused', async () => {
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: CLIENT_ID })).toString('base64url')}.`;
      assertOAuthError(await getToken(none), 401, 'invalid_client', /RS256/);
      assertOAuthError(await getToken('not-a-jwt'), 401, 'invalid_client');
    });

    test('a configured issuer must match iss; a client registered with a KeyObject works', async () => {
      const ok = await assertion({ sub: ISSUER_CLIENT_ID, iss: 'https://client.org' }, issuerClientKey);
      assert.equal((await getToken(ok)).status, 200);
      const bad = await assertion({ sub: ISSUER_CLIENT_ID, iss: ISSUER_CLIENT_ID }, issuerClientKey);
      assertOAuthError(await getToken(bad), 401, 'invalid_client', /iss/);
    });

    test('the request parameters are checked', async () => {
      const jwt = await assertion();
      assertOAuthError(await getToken(jwt, { grant_type: 'password' }), 400, 'unsupported_grant_type');
      assertOAuthError(await send(`${emulator.tokenUrl}?client_assertion_type=${encodeURIComponent(JWT_BEARER)}`, ca), 400, 'invalid_request', /grant_type/);
      assertOAuthError(await getToken(jwt, { client_assertion_type: 'urn:other' }), 400, 'invalid_request', /client_assertion_type/);
      assertOAuthError(await send(`${emulator.tokenUrl}?${tokenQuery(jwt)}&grant_type=client_credentials`, ca), 400, 'invalid_request', /repeated/);
      const noAssertion = new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER });
      assertOAuthError(await send(`${emulator.tokenUrl}?${noAssertion.toString()}`, ca), 400, 'invalid_request', /client_assertion/);
    });

    test('POST needs a form body of bounded size; other methods are refused', async () => {
      const jwt = await assertion();
      assertOAuthError(await postToken(JSON.stringify({ grant_type: 'client_credentials' }), 'application/json'), 415, 'invalid_request');
      assertOAuthError(await postToken(`${tokenQuery(jwt)}&pad=${'x'.repeat(70 * 1024)}`), 413, 'invalid_request');
      const put = await send(emulator.tokenUrl, ca, { method: 'PUT' });
      assertOAuthError(put, 405, 'invalid_request');
      assert.equal(put.headers.allow, 'GET, POST');
      // A POST carries its parameters in the body, not in the query.
      assertOAuthError(await send(`${emulator.tokenUrl}?${tokenQuery(jwt)}`, ca, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '' }), 400, 'invalid_request');
    });

    test('the API answers 403 without a Bearer token, 401 with a bogus one, 200 with a valid one', async () => {
      const url = `${emulator.url}/WebAPIExample/function_1`;
      const none = await send(url, ca);
      assert.equal(none.status, 403);
      assert.equal(none.json().error, 'forbidden');
      assert.equal((await send(url, ca, { headers: { Authorization: 'Basic dXNlcjpwYXNz' } })).status, 403);
      const bogus = await send(url, ca, { headers: { Authorization: 'Bearer not.a.token' } });
      assert.equal(bogus.status, 401);
      assert.match(String(bogus.headers['www-authenticate']), /^Bearer .*error="invalid_token"/);
      assert.equal(bogus.json().error, 'invalid_token');
      const token = await freshToken();
      const body = Buffer.from('{"hello":"LogicNets"}');
      const ok = await send(url, ca, { method: 'POST', headers: { Authorization: `bearer ${token}`, 'Content-Type': 'application/json' }, body });
      assert.equal(ok.status, 200);
      assert.equal(ok.json().method, 'POST');
      assert.equal(ok.json().bodyBytes, body.length);
      assert.equal(ok.json().bodySha256, createHash('sha256').update(body).digest('hex'));
    });

    test('revokeAll makes issued tokens unknown; new tokens work', async () => {
      const token = await freshToken();
      const url = `${emulator.url}/WebAPIExample/function_1`;
      assert.equal((await send(url, ca, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
      emulator.revokeAll();
      const revoked = await send(url, ca, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(revoked.status, 401);
      assert.match(String(revoked.headers['www-authenticate']), /error="invalid_token"/);
      assert.equal((await send(url, ca, { headers: { Authorization: `Bearer ${await freshToken()}` } })).status, 200);
    });

    test('a token expires with the clock', async () => {
      const token = await freshToken();
      const url = `${emulator.url}/WebAPIExample/function_1`;
      await clock.advance(299_000);
      assert.equal((await send(url, ca, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
      await clock.advance(1_000);
      assert.equal((await send(url, ca, { headers: { Authorization: `Bearer ${token}` } })).status, 401);
    });

    test('paths outside the company answer 404 JSON', async () => {
      for (const path of ['/', '/other/oauth2token', '/logicnets', '/logicnetsx/a']) {
        const reply = await send(`${scheme}://127.0.0.1:${emulator.port}${path}`, ca);
        assert.equal(reply.status, 404, path);
        assert.equal(reply.json().error, 'not_found');
      }
    });

    test('_echo returns the headers it received and the body hash and length', async () => {
      const token = await freshToken();
      const body = Buffer.alloc(300_000, 7);
      const reply = await send(`${emulator.url}/_echo?q=1`, ca, { method: 'PUT', headers: { Authorization: `Bearer ${token}`, 'X-Custom': 'yes' }, body });
      assert.equal(reply.status, 200);
      const echo = reply.json();
      const headers = echo.headers as Record<string, string>;
      assert.equal(headers['x-custom'], 'yes');
      assert.equal(headers['content-length'], String(body.length));
      assert.equal(echo.url, '/logicnets/_echo?q=1');
      assert.equal(echo.bodyBytes, body.length);
      assert.equal(echo.bodySha256, createHash('sha256').update(body).digest('hex'));
      assert.ok(Array.isArray(echo.rawHeaders));
      assert.equal((await send(`${emulator.url}/_echo`, ca)).status, 403);
    });

    test('_download streams N deterministic bytes with a Content-Length', async () => {
      const token = await freshToken();
      const bytes = 1_000_003;
      const first = await hashDownload(`${emulator.url}/_download?bytes=${bytes}`, ca, token);
      const second = await hashDownload(`${emulator.url}/_download?bytes=${bytes}`, ca, token);
      assert.equal(first.status, 200);
      assert.equal(first.length, String(bytes));
      assert.equal(first.bytes, bytes);
      assert.equal(second.sha256, first.sha256);
      assert.deepEqual(await hashStream(createDeterministicStream(bytes)), { bytes, sha256: first.sha256 });
      const seeded = await hashDownload(`${emulator.url}/_download?bytes=${bytes}&seed=2`, ca, token);
      assert.notEqual(seeded.sha256, first.sha256);
      assert.equal((await hashDownload(`${emulator.url}/_download?bytes=0`, ca, token)).bytes, 0);
      assert.equal((await hashDownload(`${emulator.url}/_download?bytes=-1`, ca, token)).status, 400);
    });

    test('_slow answers after the wait, _status with the asked status', async () => {
      const token = await freshToken();
      const slow = await send(`${emulator.url}/_slow?ms=20`, ca, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(slow.status, 200);
      assert.equal(slow.json().waitedMs, 20);
      const status = await send(`${emulator.url}/_status?code=503`, ca, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(status.status, 503);
    });

    test('token endpoint faults: a status with body and Retry-After, reset, hang, then recovery', async () => {
      const start = { ...emulator.stats };
      emulator.setTokenEndpointFault({ status: 503, body: '<html>down</html>', contentType: 'text/html', retryAfter: 7 });
      const down = await getToken(await assertion());
      assert.equal(down.status, 503);
      assert.equal(down.headers['retry-after'], '7');
      assert.equal(down.headers['content-type'], 'text/html');
      assert.equal(down.body.toString(), '<html>down</html>');

      emulator.setTokenEndpointFault({ status: 502 });
      const empty = await postToken(tokenQuery(await assertion()));
      assert.equal(empty.status, 502);
      assert.equal(empty.body.length, 0);

      emulator.setTokenEndpointFault('reset');
      await assert.rejects(getToken(await assertion()), (error: NodeJS.ErrnoException) => {
        assert.match(String(error.code ?? error.message), /ECONNRESET|socket hang up/);
        return true;
      });

      emulator.setTokenEndpointFault('hang');
      await assert.rejects(send(`${emulator.tokenUrl}?${tokenQuery(await assertion())}`, ca, { timeoutMs: 200 }), /client timeout/);

      emulator.setTokenEndpointFault(null);
      assert.equal((await getToken(await assertion())).status, 200);
      assert.equal(emulator.stats.tokenRequests - start.tokenRequests, 5);
      assert.equal(emulator.stats.tokenFailures - start.tokenFailures, 4);
    });

    test('stats count token requests, failures and API requests', async () => {
      const start = { ...emulator.stats };
      await getToken(await assertion());
      await getToken('garbage');
      await send(`${emulator.url}/a`, ca);
      assert.deepEqual(emulator.stats, {
        tokenRequests: start.tokenRequests + 2,
        tokenFailures: start.tokenFailures + 1,
        apiRequests: start.apiRequests + 1,
      });
    });

    test('logs at trace never contain a token or an assertion', () => {
      const text = sink.text();
      assert.ok(sink.entries().length > 0, 'the emulator logged something');
      assert.ok(secrets.length > 10);
      for (const secret of secrets) {
        for (const fragment of secretFragments(secret)) assert.ok(!text.includes(fragment), 'a secret reached the log');
      }
    });
  });
}

describe('LogicNets emulator lifecycle', () => {
  test('close() ends hanging token requests and keep-alive connections', async () => {
    const emulator = await startEmulator({ clients: [], company: 'acme' });
    assert.match(emulator.url, /^http:\/\/127\.0\.0\.1:\d+\/acme$/);
    emulator.setTokenEndpointFault('hang');
    const hanging = send(`${emulator.tokenUrl}?grant_type=client_credentials`, undefined);
    const agent = new http.Agent({ keepAlive: true });
    const idle = await new Promise<number>((resolve, reject) => {
      http.get(`${emulator.url}/x`, { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
    });
    assert.equal(idle, 403);
    while (emulator.stats.tokenRequests === 0) await new Promise((resolve) => setImmediate(resolve));
    await emulator.close();
    await assert.rejects(hanging);
    await emulator.close(); // twice is harmless
    agent.destroy();
  });

  test('a custom audience is what assertions must carry', async () => {
    const { privateKey, publicKey } = (await fileClientKeys()).client;
    const emulator = await startEmulator({ clients: [{ clientId: 'c', publicKey: await exportJWK(publicKey) }], audience: 'https://lua5.logicnets.local/logicnets' });
    try {
      const now = Math.floor(Date.now() / 1000);
      const sign = (aud: string): Promise<string> => new SignJWT({ aud, sub: 'c', iss: 'c', iat: now, exp: now + 60, jti: randomUUID() })
        .setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
      const query = (jwt: string): string => new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: jwt }).toString();
      assert.equal((await send(`${emulator.tokenUrl}?${query(await sign('https://lua5.logicnets.local/logicnets'))}`, undefined)).status, 200);
      assert.equal((await send(`${emulator.tokenUrl}?${query(await sign(emulator.url))}`, undefined)).status, 401);
    } finally {
      await emulator.close();
    }
  });

  test('assertionType and requiredTokenParams: the typ header and extra parameters a token request must carry', async () => {
    const { privateKey, publicKey } = (await fileClientKeys()).client;
    const emulator = await startEmulator({
      clients: [{ clientId: 'c', publicKey: await exportJWK(publicKey) }],
      assertionType: 'client-authentication+jwt',
      requiredTokenParams: { audience: 'api://lua5', resource: 'https://lua5.logicnets.local/' },
    });
    try {
      const now = Math.floor(Date.now() / 1000);
      const sign = (typ: string): Promise<string> => new SignJWT({ aud: emulator.url, sub: 'c', iss: 'c', iat: now, exp: now + 60, jti: randomUUID() })
        .setProtectedHeader({ alg: 'RS256', typ }).sign(privateKey);
      const query = (jwt: string, extra: Record<string, string>): string =>
        new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: jwt, ...extra }).toString();
      const both = { audience: 'api://lua5', resource: 'https://lua5.logicnets.local/' };
      const ok = await send(`${emulator.tokenUrl}?${query(await sign('client-authentication+jwt'), both)}`, undefined);
      assert.equal(ok.status, 200);
      const posted = await send(emulator.tokenUrl, undefined, {
        method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: query(await sign('client-authentication+jwt'), both),
      });
      assert.equal(posted.status, 200, 'the form of a POST is read too');
      const wrongTyp = await send(`${emulator.tokenUrl}?${query(await sign('JWT'), both)}`, undefined);
      assert.equal(wrongTyp.status, 401);
      assert.match(String(wrongTyp.json().error_description), /typ header must be client-authentication\+jwt/);
      const noResource = await send(`${emulator.tokenUrl}?${query(await sign('client-authentication+jwt'), { audience: 'api://lua5' })}`, undefined);
      assert.equal(noResource.status, 400);
      assert.equal(noResource.json().error, 'invalid_target');
      const wrongAudience = await send(`${emulator.tokenUrl}?${query(await sign('client-authentication+jwt'), { ...both, audience: 'x' })}`, undefined);
      assert.equal(wrongAudience.json().error, 'invalid_request');
    } finally {
      await emulator.close();
    }
  });

  test('a client key that is not RSA is refused at start', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await assert.rejects(startEmulator({ clients: [{ clientId: 'c', publicKey }] }), /RSA/);
  });
});
