import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { jwtVerify } from 'jose';
import { CLIENT_ASSERTION_TYPE, privateKeyJwt } from '../../../src/token/assertion.js';
import { TokenEndpointError } from '../../../src/lib/errors.js';
import type { TokenEndpointFailure } from '../../../src/lib/errors.js';
import { TokenEndpointClient } from '../../../src/token/endpoint.js';
import type { TokenEndpointOptions } from '../../../src/token/endpoint.js';
import { parseRetryAfter } from '../../../src/token/response.js';
import { makeLogSink, secretFragments } from '../../helpers/log-sink.js';
import type { LogSink } from '../../helpers/log-sink.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { makeRsaKey } from '../../helpers/rsa-keys.js';
import type { RsaTestKey } from '../../helpers/rsa-keys.js';
import { makeTestPki } from '../../helpers/tls.js';
import type { TestPki } from '../../helpers/tls.js';

const CLIENT_ID = '4664FD8C-9CEC-A8A2-D666-02A352A492A1';
const AUDIENCE = 'https://lua5.logicnets.local/logicnets';
const TTL = 120;
const PATH = '/logicnets/oauth2token';

/** One request as the fake token endpoint received it. */
interface Received {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** The token request parameters, from the query (GET) or the body (POST). */
  params: URLSearchParams;
  /** Whether the request came on a connection that had carried an earlier request. */
  reusedConnection: boolean;
}

type Responder = (received: Received, res: ServerResponse, req: IncomingMessage) => void | Promise<void>;

/**
 * A token endpoint that checks every client assertion with jose against the registered public
 * key (RS256, iss, sub, aud, exp - iat = TTL, unique jti, nonce header) and answers with
 * `respond`, by default a fresh Bearer token.
 */
class FakeTokenEndpoint {
  readonly server: Server;
  readonly received: Received[] = [];
  readonly assertions: string[] = [];
  readonly issuedTokens: string[] = [];
  /** Assertion checks that failed; a test asserts it stays empty. */
  readonly problems: string[] = [];
  respond: Responder = (_received, res) => this.grant(res);
  readonly #jtis = new Set<string>();
  readonly #seenSockets = new WeakSet<Socket>();
  readonly #publicKey: RsaTestKey['publicKey'];
  readonly #clock: ManualClock;

  private constructor(server: Server, publicKey: RsaTestKey['publicKey'], clock: ManualClock) {
    this.server = server;
    this.#publicKey = publicKey;
    this.#clock = clock;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res));
  }

  static async start(publicKey: RsaTestKey['publicKey'], clock: ManualClock, pki?: TestPki): Promise<FakeTokenEndpoint> {
    const server = pki === undefined
      ? createHttpServer()
      : createHttpsServer({ cert: pki.serverCertPem, key: pki.serverKeyPem });
    const fake = new FakeTokenEndpoint(server, publicKey, clock);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(host = '127.0.0.1'): string {
    const scheme = this.server instanceof Object && 'setSecureContext' in this.server ? 'https' : 'http';
    return `${scheme}://${host}:${this.port}${PATH}`;
  }

  /** Answers with a fresh token (and remembers it, to look for it in logs). */
  grant(res: ServerResponse, extra: Record<string, unknown> = {}): void {
    const accessToken = `opaque-access-token-${this.issuedTokens.length}-${'x'.repeat(24)}`;
    this.issuedTokens.push(accessToken);
    this.json(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: 3600, ...extra });
  }

  json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    const params = req.method === 'POST' ? new URLSearchParams(body) : url.searchParams;
    const reusedConnection = this.#seenSockets.has(req.socket);
    this.#seenSockets.add(req.socket);
    const received: Received = {
      method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body, params,
      reusedConnection,
    };
    this.received.push(received);
    await this.#checkAssertion(params);
    await this.respond(received, res, req);
  }

  async #checkAssertion(params: URLSearchParams): Promise<void> {
    const assertion = params.get('client_assertion');
    if (assertion === null) return;
    this.assertions.push(assertion);
    try {
      assert.equal(params.get('grant_type'), 'client_credentials');
      assert.equal(params.get('client_assertion_type'), CLIENT_ASSERTION_TYPE);
      const { payload, protectedHeader } = await jwtVerify(assertion, this.#publicKey, {
        algorithms: ['RS256'], issuer: CLIENT_ID, subject: CLIENT_ID, audience: AUDIENCE,
        currentDate: new Date(this.#clock.now()), requiredClaims: ['iat', 'exp', 'jti'],
      });
      assert.equal(typeof payload.aud, 'string');
      assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), TTL);
      assert.ok(!this.#jtis.has(String(payload.jti)), 'jti must be unique');
      this.#jtis.add(String(payload.jti));
      assert.equal(typeof protectedHeader.nonce, 'string');
      assert.equal(protectedHeader.crit, undefined);
    } catch (error) {
      this.problems.push(String(error));
    }
  }
}

describe('TokenEndpointClient', () => {
  let key: RsaTestKey;
  let clock: ManualClock;
  let fake: FakeTokenEndpoint;
  let sink: LogSink;
  let clients: TokenEndpointClient[] = [];

  before(async () => {
    key = makeRsaKey();
    clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
    fake = await FakeTokenEndpoint.start(key.publicKey, clock);
    sink = makeLogSink('trace');
  });
  afterEach(() => {
    for (const c of clients) c.close();
    clients = [];
    fake.respond = (_received, res) => fake.grant(res);
  });
  after(async () => {
    await fake.close();
    assert.deepEqual(fake.problems, [], 'every assertion the fake received was valid');
    const logged = sink.text();
    const secrets = [...fake.assertions, ...fake.issuedTokens, key.pkcs8Pem, key.pkcs1Pem]
      .flatMap((s) => secretFragments(s));
    for (const secret of secrets) assert.ok(!logged.includes(secret), 'the trace log holds no token, assertion or key');
  });

  function makeClient(overrides: Partial<TokenEndpointOptions> = {}): TokenEndpointClient {
    const c = new TokenEndpointClient({
      tokenUrl: fake.url(),
      method: 'POST',
      clientAuth: privateKeyJwt({ current: () => key.privateKey },
        { issuer: CLIENT_ID, subject: CLIENT_ID, audience: AUDIENCE, ttlSeconds: TTL }, clock),
      clock,
      logger: sink.logger,
      timeoutMs: 5000,
      defaultLifetimeSeconds: 600,
      ...overrides,
    });
    clients.push(c);
    return c;
  }

  async function expectFailure(promise: Promise<unknown>, code: TokenEndpointFailure,
    expected: { message?: RegExp; retryable?: boolean; httpStatus?: number; oauthError?: string; retryAfterMs?: number } = {},
  ): Promise<TokenEndpointError> {
    let caught: unknown;
    await assert.rejects(promise, (error: unknown) => {
      caught = error;
      return true;
    });
    assert.ok(caught instanceof TokenEndpointError, `expected a TokenEndpointError, got ${String(caught)}`);
    const error = caught;
    assert.equal(error.code, code, error.message);
    if (expected.message) assert.match(error.message, expected.message);
    for (const field of ['retryable', 'httpStatus', 'oauthError', 'retryAfterMs'] as const) {
      if (field in expected) assert.equal(error[field], expected[field], `${field} of: ${error.message}`);
    }
    for (const secret of [...fake.assertions, ...fake.issuedTokens].flatMap((s) => secretFragments(s))) {
      assert.ok(!error.message.includes(secret), 'an error message never holds the assertion or a token');
    }
    return error;
  }

  describe('requests', () => {
    it('POSTs a form body with grant_type, the assertion and scope, and returns the token', async () => {
      fake.respond = (_r, res) => fake.grant(res, { scope: 'api' });
      const token = await makeClient({ scope: 'api' }).fetchToken();
      const received = fake.received.at(-1)!;
      assert.equal(received.method, 'POST');
      assert.equal(received.path, PATH);
      assert.equal([...received.query].length, 0, 'nothing in the query of a POST');
      assert.equal(received.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.equal(received.headers.accept, 'application/json');
      assert.equal(received.headers['user-agent'], 'logicnets-token-proxy');
      assert.deepEqual([...received.params.keys()].sort(),
        ['client_assertion', 'client_assertion_type', 'grant_type', 'scope']);
      assert.equal(received.params.get('scope'), 'api');
      assert.equal(token.accessToken, fake.issuedTokens.at(-1));
      assert.equal(token.tokenType, 'Bearer');
      assert.equal(token.scope, 'api');
      assert.equal(token.obtainedAt, clock.now());
      assert.equal(token.expiresAt, clock.now() + 3600_000);
    });

    it('GETs with the parameters in the query (keeping a query the URL already has) and no body', async () => {
      await makeClient({ method: 'GET', tokenUrl: `${fake.url()}?tenant=acme` }).fetchToken();
      const received = fake.received.at(-1)!;
      assert.equal(received.method, 'GET');
      assert.equal(received.body, '');
      assert.equal(received.headers['content-type'], undefined);
      assert.equal(received.query.get('tenant'), 'acme');
      assert.equal(received.query.get('grant_type'), 'client_credentials');
      assert.equal(received.query.get('client_assertion_type'), CLIENT_ASSERTION_TYPE);
      assert.ok(received.query.get('client_assertion'));
      assert.equal(received.query.get('scope'), null, 'no scope unless configured');
    });

    it('signs a fresh assertion for every request', async () => {
      const c = makeClient();
      const countBefore = fake.assertions.length;
      await c.fetchToken();
      await c.fetchToken();
      await c.fetchToken();
      const sent = fake.assertions.slice(countBefore);
      assert.equal(new Set(sent).size, 3);
    });

    it('retries once, with a fresh assertion, when the server closed a kept-alive connection', async () => {
      const c = makeClient();
      await c.fetchToken();
      const countBefore = fake.received.length;
      let dropped = 0;
      fake.respond = (received, res, req) => {
        if (received.reusedConnection && dropped === 0) {
          dropped++;
          req.socket.destroy();
          return;
        }
        fake.grant(res);
      };
      const token = await c.fetchToken();
      assert.equal(dropped, 1, 'the kept-alive connection was reused and dropped');
      assert.equal(token.accessToken, fake.issuedTokens.at(-1));
      const retried = fake.assertions.slice(-2);
      assert.equal(fake.received.length - countBefore, 2);
      assert.notEqual(retried[0], retried[1]);
    });

    it('exchangeToken reports the Date header of its own answer, success or failure', async () => {
      const c = makeClient();
      fake.respond = (_r, res) => fake.grant(res);
      const ok = await c.exchangeToken();
      assert.ok(ok.token !== undefined && ok.error === undefined);
      assert.ok(ok.responseDate !== undefined && Math.abs(ok.responseDate - Date.now()) < 60_000);
      fake.respond = (_r, res) => fake.json(res, 400, { error: 'invalid_grant' }, { date: 'Tue, 01 Jan 2030 00:00:00 GMT' });
      const failed = await c.exchangeToken();
      assert.equal(failed.token, undefined);
      assert.ok(failed.error instanceof TokenEndpointError);
      assert.equal(failed.responseDate, Date.UTC(2030, 0, 1));
    });

    it('keeps no per-call state: concurrent exchanges each get their own Date', async () => {
      const c = makeClient();
      let n = 0;
      fake.respond = (_r, res) => {
        n += 1;
        const date = n === 1 ? 'Tue, 01 Jan 2030 00:00:00 GMT' : 'Wed, 01 Jan 2031 00:00:00 GMT';
        const delay = n === 1 ? 50 : 0;
        setTimeout(() => fake.json(res, 400, { error: 'invalid_grant' }, { date }), delay);
      };
      const [first, second] = await Promise.all([c.exchangeToken(), c.exchangeToken()]);
      // Whichever arrived first, each call reports its own answer's Date, not the other's.
      assert.deepEqual([first.responseDate, second.responseDate].sort(), [Date.UTC(2030, 0, 1), Date.UTC(2031, 0, 1)]);
    });
  });

  describe('lifetimes', () => {
    it('reads expires_in as a number or a numeric string', async () => {
      fake.respond = (_r, res) => fake.grant(res, { expires_in: '120' });
      assert.equal((await makeClient().fetchToken()).expiresAt, clock.now() + 120_000);
    });

    it('uses the exp of a JWT access token when expires_in is missing', async () => {
      const exp = Math.floor(clock.now() / 1000) + 900;
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const jwtToken = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub: 'x', exp })}.${'s'.repeat(43)}`;
      fake.respond = (_r, res) => fake.json(res, 200, { access_token: jwtToken, token_type: 'Bearer' });
      const token = await makeClient().fetchToken();
      assert.equal(token.expiresAt, exp * 1000);
      fake.issuedTokens.push(jwtToken);
    });

    it('falls back to the default lifetime for an opaque token without expires_in (missing or null)', async () => {
      fake.respond = (_r, res) => fake.json(res, 200, { access_token: 'opaque-token-without-expiry-123456', token_type: 'bearer' });
      assert.equal((await makeClient().fetchToken()).expiresAt, clock.now() + 600_000);
      fake.respond = (_r, res) => fake.json(res, 200, { access_token: 'opaque-token-with-null-expiry-123456', token_type: 'BEARER', expires_in: null });
      assert.equal((await makeClient({ defaultLifetimeSeconds: 30 }).fetchToken()).expiresAt, clock.now() + 30_000);
      fake.issuedTokens.push('opaque-token-without-expiry-123456', 'opaque-token-with-null-expiry-123456');
    });

    it('refuses an expires_in that is present but zero, negative, not a number or not finite (RFC 6749 5.1)', async () => {
      for (const bad of [0, -1, -0.5, 'soon', '', '1e3', true, {}, [], '-5']) {
        fake.respond = (_r, res) => fake.json(res, 200, { access_token: 'opaque-token-bad-expiry-123456', token_type: 'Bearer', expires_in: bad });
        await expectFailure(makeClient().fetchToken(), 'token_response_invalid', {
          retryable: false, httpStatus: 200, message: /expires_in .*not a positive number of seconds/,
        });
      }
      fake.respond = (_r, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"access_token":"opaque-token-bad-expiry-123456","token_type":"Bearer","expires_in":1e999}');
      };
      await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { retryable: false, httpStatus: 200 });
      fake.issuedTokens.push('opaque-token-bad-expiry-123456');
    });

    it('caps a lifetime longer than a day: expires_in and a JWT exp', async () => {
      const day = 24 * 3600 * 1000;
      for (const expiresIn of [86_401, 1e13, '99999999999']) {
        fake.respond = (_r, res) => fake.grant(res, { expires_in: expiresIn });
        assert.equal((await makeClient().fetchToken()).expiresAt, clock.now() + day);
      }
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const jwtToken = `${b64({ alg: 'RS256' })}.${b64({ sub: 'x', exp: 1e20 })}.${'s'.repeat(43)}`;
      fake.respond = (_r, res) => fake.json(res, 200, { access_token: jwtToken, token_type: 'Bearer' });
      assert.equal((await makeClient().fetchToken()).expiresAt, clock.now() + day);
      fake.issuedTokens.push(jwtToken);
    });

    it('refuses a JWT access token whose exp has passed when there is no expires_in', async () => {
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      for (const exp of [Math.floor(clock.now() / 1000) - 1, 0, -1e20]) {
        const jwtToken = `${b64({ alg: 'RS256' })}.${b64({ sub: 'x', exp })}.${'s'.repeat(43)}`;
        fake.respond = (_r, res) => fake.json(res, 200, { access_token: jwtToken, token_type: 'Bearer' });
        await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { retryable: false, message: /exp has passed.*clock/ });
        fake.issuedTokens.push(jwtToken);
      }
    });

    it('refuses an access_token that is not RFC 6750 b64token syntax, without quoting it', async () => {
      for (const bad of ['abc def', 'abc\r\nX-Injected: 1', 'a,b', 'tab\there', 'nul\u0000x', '=abc', 'a=b', 'caf\u00e9', ' ', 'abc\n']) {
        fake.respond = (_r, res) => fake.json(res, 200, { access_token: bad, token_type: 'Bearer', expires_in: 60 });
        const error = await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { retryable: false, message: /RFC 6750/ });
        if (bad.trim().length >= 3) assert.ok(!error.message.includes(bad));
      }
      for (const good of ['abc', 'a-b.c_d~e+f/g', 'abc==', 'A9']) {
        fake.respond = (_r, res) => fake.json(res, 200, { access_token: good, token_type: 'Bearer', expires_in: 60 });
        assert.equal((await makeClient().fetchToken()).accessToken, good);
      }
    });
  });

  describe('failures', () => {
    it('invalid_client: not retryable, quotes the server and tells what to check', async () => {
      fake.respond = (_r, res) => fake.json(res, 401, { error: 'invalid_client', error_description: 'unknown client' });
      const error = await expectFailure(makeClient().fetchToken(), 'token_request_rejected', {
        retryable: false, httpStatus: 401, oauthError: 'invalid_client',
        message: /HTTP 401, invalid_client: "unknown client".*the client id.*issuer.*audience.*private key matches/,
      });
      assert.equal(error.oauthErrorDescription, 'unknown client');
    });

    it('invalid_grant is retryable and hints at the clock; other RFC 6749 errors are not retryable', async () => {
      fake.respond = (_r, res) => fake.json(res, 400, { error: 'invalid_grant' });
      await expectFailure(makeClient().fetchToken(), 'token_request_rejected',
        { retryable: true, oauthError: 'invalid_grant', message: /clock/ });
      for (const [oauthError, hint] of [['unsupported_grant_type', /oauth2token endpoint/], ['invalid_scope', /the token scope/],
        ['unauthorized_client', /client credentials grant/], ['invalid_request', /the token request method/]] as const) {
        fake.respond = (_r, res) => fake.json(res, 400, { error: oauthError });
        await expectFailure(makeClient().fetchToken(), 'token_request_rejected', { retryable: false, oauthError, message: hint });
      }
    });

    it('never repeats the assertion when the server echoes it in error_description', async () => {
      fake.respond = (received, res) =>
        fake.json(res, 400, { error: 'invalid_grant', error_description: `bad assertion ${received.params.get('client_assertion')}` });
      const error = await expectFailure(makeClient({ method: 'GET' }).fetchToken(), 'token_request_rejected');
      assert.match(error.message, /bad assertion \[redacted\]/);
      assert.ok(!error.oauthErrorDescription?.includes(fake.assertions.at(-1)!));
    });

    it('an HTML page (404 or 200) is not JSON: asks whether the URL is the oauth2token endpoint', async () => {
      for (const status of [404, 200]) {
        fake.respond = (_r, res) => {
          res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
          res.end('<html><body>Not the token endpoint</body></html>');
        };
        const error = await expectFailure(makeClient().fetchToken(), 'token_response_invalid', {
          httpStatus: status, retryable: false,
          message: new RegExp(`HTTP ${status} \\(text/html\\), not JSON: is the token URL the oauth2token endpoint\\?`),
        });
        assert.ok(!error.message.includes('<html>'), 'the body is never quoted');
      }
    });

    it('an empty body', async () => {
      fake.respond = (_r, res) => { res.writeHead(200).end(); };
      await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { httpStatus: 200, message: /empty body/ });
    });

    it('a 5xx from a gateway is retryable and carries Retry-After in seconds', async () => {
      fake.respond = (_r, res) => {
        res.writeHead(503, { 'content-type': 'text/html', 'retry-after': '7' });
        res.end('<h1>503 Service Unavailable</h1>');
      };
      await expectFailure(makeClient().fetchToken(), 'token_endpoint_unreachable',
        { httpStatus: 503, retryable: true, retryAfterMs: 7000, message: /HTTP 503/ });
    });

    it('429 with Retry-After as an HTTP date, measured against the server\'s Date', async () => {
      fake.respond = (_r, res) => fake.json(res, 429, { message: 'slow down' }, {
        date: 'Wed, 01 Jan 2031 00:00:00 GMT', 'retry-after': 'Wed, 01 Jan 2031 00:00:30 GMT',
      });
      await expectFailure(makeClient().fetchToken(), 'token_request_rejected',
        { httpStatus: 429, retryable: true, retryAfterMs: 30_000, message: /rate limiting.*30 s/ });
      assert.equal(parseRetryAfter('120', 0), 120_000);
      assert.equal(parseRetryAfter('soon', 0), undefined);
    });

    it('a redirect is not followed', async () => {
      fake.respond = (_r, res) => { res.writeHead(302, { location: 'https://login.example/sso?session=abc' }).end(); };
      const error = await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { httpStatus: 302, message: /redirect to https:\/\/login\.example\/sso/ });
      assert.ok(!error.message.includes('session=abc'));
    });

    // Regression: a malformed Location made `new URL` throw, reported as a retryable internal error.
    it('a redirect with an unparseable Location is still an invalid response, not an internal error', async () => {
      fake.respond = (_r, res) => { res.writeHead(302, { location: 'http://[::1' }).end(); };
      await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { httpStatus: 302, retryable: false, message: /redirect to an unparseable Location/ });
    });

    it('a 2xx without access_token, or with another token_type, is invalid', async () => {
      fake.respond = (_r, res) => fake.json(res, 200, { token_type: 'Bearer', expires_in: 60 });
      await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { retryable: false, message: /without an access_token/ });
      fake.respond = (_r, res) => fake.json(res, 200, { access_token: 'mac-token-value-1234567890', token_type: 'mac' });
      await expectFailure(makeClient().fetchToken(), 'token_response_invalid', { message: /type "mac"; only Bearer/ });
      fake.issuedTokens.push('mac-token-value-1234567890');
    });

    it('an answer larger than the cap is abandoned (declared length and chunked)', async () => {
      fake.respond = (_r, res) => fake.json(res, 200, { access_token: 'a'.repeat(5000), token_type: 'Bearer' });
      await expectFailure(makeClient({ maxResponseBytes: 1000 }).fetchToken(), 'token_response_invalid', { message: /more than 1000 bytes/ });
      fake.respond = (_r, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        for (let i = 0; i < 20; i++) res.write(' '.repeat(100));
        res.end('{}');
      };
      await expectFailure(makeClient({ maxResponseBytes: 1000 }).fetchToken(), 'token_response_invalid', { message: /more than 1000 bytes/ });
    });

    it('no answer within the time limit', async () => {
      fake.respond = () => undefined;
      await expectFailure(makeClient({ timeoutMs: 150 }).fetchToken(), 'token_endpoint_timeout',
        { retryable: true, message: new RegExp(`127\\.0\\.0\\.1:${fake.port} did not answer within 150 ms`) });
    });

    it('a caller abort rejects with the caller\'s reason, not an endpoint error', async () => {
      fake.respond = () => undefined;
      const controller = new AbortController();
      const pending = makeClient().fetchToken(controller.signal);
      setTimeout(() => controller.abort(new Error('caller gave up')), 20);
      await assert.rejects(pending, /caller gave up/);
      const aborted = AbortSignal.abort(new Error('already'));
      await assert.rejects(makeClient().fetchToken(aborted), /already/);
    });

    it('a connection reset', async () => {
      fake.respond = (_r, _res, req) => { req.socket.destroy(); };
      await expectFailure(makeClient().fetchToken(), 'token_endpoint_unreachable',
        { message: new RegExp(`127\\.0\\.0\\.1:${fake.port} was closed before a complete answer came \\(ECONNRESET\\)`) });
    });

    it('connection refused and an unknown host name', async () => {
      const probe = createNetServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const closedPort = (probe.address() as AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
      await expectFailure(makeClient({ tokenUrl: `http://127.0.0.1:${closedPort}${PATH}` }).fetchToken(),
        'token_endpoint_unreachable', { message: new RegExp(`127\\.0\\.0\\.1:${closedPort} refused the connection`) });
      await expectFailure(makeClient({ tokenUrl: 'https://nonexistent.invalid/logicnets/oauth2token' }).fetchToken(),
        'token_endpoint_unreachable', { message: /nonexistent\.invalid:443 cannot be resolved/ });
    });

    it('an https URL pointing at a plain http port is a TLS failure', async () => {
      await expectFailure(makeClient({ tokenUrl: fake.url().replace('http:', 'https:') }).fetchToken(),
        'token_endpoint_tls', { message: /TLS handshake .* failed/ });
    });
  });

  describe('over HTTPS', () => {
    let pki: TestPki;
    let secure: FakeTokenEndpoint;
    before(async () => {
      pki = makeTestPki();
      secure = await FakeTokenEndpoint.start(key.publicKey, clock, pki);
    });
    after(async () => {
      await secure.close();
      pki.cleanup();
      assert.deepEqual(secure.problems, []);
    });

    it('gets a token when the test CA is passed', async () => {
      for (const host of ['127.0.0.1', 'localhost']) {
        const token = await makeClient({ tokenUrl: secure.url(host), ca: pki.caCertPem }).fetchToken();
        assert.equal(token.accessToken, secure.issuedTokens.at(-1));
        fake.issuedTokens.push(token.accessToken);
      }
    });

    it('refuses an untrusted certificate and says to set the CA file', async () => {
      const countBefore = secure.received.length;
      await expectFailure(makeClient({ tokenUrl: secure.url() }).fetchToken(), 'token_endpoint_tls', {
        message: new RegExp(`127\\.0\\.0\\.1:${secure.port} is not trusted \\(.+\\).*set the CA file`),
      });
      assert.equal(secure.received.length, countBefore, 'nothing was sent to an untrusted server');
    });
  });

  it('refuses a token URL that is not http(s)', () => {
    assert.throws(() => makeClient({ tokenUrl: 'ftp://example.com/token' }), /the token URL must start with https:\/\//);
    assert.throws(() => makeClient({ tokenUrl: 'not a url' }), /the token URL is not a valid absolute URL/);
  });

  it('logs the URL without its query at trace level', () => {
    const lines = sink.entries().filter((e) => e.msg === 'requesting an access token');
    assert.ok(lines.length > 0);
    for (const line of lines) assert.ok(!String(line.url).includes('?'));
    assert.ok(!sink.text().includes('client_assertion='));
  });
});
