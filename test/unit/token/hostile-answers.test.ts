// No hostile token-endpoint answer crashes the process or poisons the cache (issue 8, token half).
//
// The invariant, checked for a table of known-bad answers and for a seeded random generator of
// several hundred more, each served by a real HTTP token endpoint on loopback to the real endpoint
// client and token cache:
// - no `unhandledRejection` or `uncaughtException` fires (listeners installed for the whole file);
// - `token()` either resolves with a token that can be sent (RFC 6750 b64token, type Bearer, a
//   finite expiry in the future and at most a day away) or rejects with `TokenUnavailableError`;
// - an answer that must be refused (an access_token that is not b64token, an expires_in present but
//   not a positive number, a non-Bearer token_type, a body over the cap, a non-2xx status) is
//   refused, and afterwards nothing but a sendable token is cached (`peek()`).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../../src/lib/clock.js';
import { TokenUnavailableError } from '../../../src/lib/errors.js';
import { createLogger } from '../../../src/lib/logger.js';
import { CachingTokenSource } from '../../../src/token/cache.js';
import { TokenEndpointClient } from '../../../src/token/endpoint.js';
import type { Token } from '../../../src/token/token.js';
import { seededRandom as prng } from '../../helpers/seeded-random.js';

const DAY_MS = 24 * 3600 * 1000;
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const jwtWith = (payload: Record<string, unknown>): string => `${b64({ alg: 'RS256', typ: 'at+jwt' })}.${b64(payload)}.${'s'.repeat(43)}`;

/** What the endpoint answers: a status, headers and the raw body (so malformed JSON can be sent). */
interface HostileAnswer {
  readonly name: string;
  readonly status: number;
  readonly body: string | Buffer;
  readonly contentType?: string;
  /** Must the sidecar refuse it? `undefined`: either way, as long as the invariant holds. */
  readonly refuse?: boolean;
}

const json = (name: string, body: unknown, refuse?: boolean, status = 200): HostileAnswer =>
  ({ name, status, body: JSON.stringify(body), contentType: 'application/json', refuse });

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The known-bad answers of issues 8 and 9, and their neighbours. */
function table(): HostileAnswer[] {
  const ok = 'good-token-abcdefgh';
  return [
    json('expires_in 1e13 (capped)', { access_token: ok, token_type: 'Bearer', expires_in: 1e13 }, false),
    json('expires_in 1e308 (capped)', { access_token: ok, token_type: 'Bearer', expires_in: 1e308 }, false),
    { name: 'expires_in 1e999 (Infinity)', status: 200, contentType: 'application/json', refuse: true,
      body: `{"access_token":"${ok}","token_type":"Bearer","expires_in":1e999}` },
    json('expires_in 0', { access_token: ok, token_type: 'Bearer', expires_in: 0 }, true),
    json('expires_in -1', { access_token: ok, token_type: 'Bearer', expires_in: -1 }, true),
    json('expires_in "soon"', { access_token: ok, token_type: 'Bearer', expires_in: 'soon' }, true),
    json('expires_in true', { access_token: ok, token_type: 'Bearer', expires_in: true }, true),
    json('expires_in {}', { access_token: ok, token_type: 'Bearer', expires_in: {} }, true),
    json('expires_in 2 days (capped)', { access_token: ok, token_type: 'Bearer', expires_in: 172_800 }, false),
    json('JWT exp 1e20, no expires_in (capped)', { access_token: jwtWith({ exp: 1e20 }), token_type: 'Bearer' }, false),
    json('JWT exp -1e20, no expires_in', { access_token: jwtWith({ exp: -1e20 }), token_type: 'Bearer' }, true),
    json('JWT exp in the past, no expires_in', { access_token: jwtWith({ exp: nowSeconds() - 10 }), token_type: 'Bearer' }, true),
    json('JWT exp "x", no expires_in (default lifetime)', { access_token: jwtWith({ exp: 'x' }), token_type: 'Bearer' }, false),
    json('access_token with CR LF', { access_token: 'abc\r\nX-Injected: yes', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token with LF', { access_token: 'abc\ndef', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token with a space', { access_token: 'abc def', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token with a comma', { access_token: 'abc,def', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token with NUL', { access_token: 'abc\u0000def', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token with DEL', { access_token: 'abc\u007fdef', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token non-ASCII', { access_token: 'caf\u00e9', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token empty', { access_token: '', token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token a number', { access_token: 12345678, token_type: 'Bearer', expires_in: 60 }, true),
    json('access_token null', { access_token: null, token_type: 'Bearer', expires_in: 60 }, true),
    json('token_type mac', { access_token: ok, token_type: 'mac', expires_in: 60 }, true),
    json('token_type DPoP', { access_token: ok, token_type: 'DPoP', expires_in: 60 }, true),
    json('token_type 5', { access_token: ok, token_type: 5, expires_in: 60 }, true),
    { name: 'a body over 1 MiB', status: 200, contentType: 'application/json', refuse: true,
      body: JSON.stringify({ access_token: ok, token_type: 'Bearer', expires_in: 60, pad: 'x'.repeat(1_100_000) }) },
    { name: 'truncated JSON', status: 200, contentType: 'application/json', refuse: true, body: '{"access_token":"abc' },
    { name: 'a JSON array', status: 200, contentType: 'application/json', refuse: true, body: '[1,2,3]' },
    { name: 'HTML', status: 200, contentType: 'text/html', refuse: true, body: '<html>login</html>' },
    json('error 500 with a token in it', { access_token: ok, token_type: 'Bearer', expires_in: 60 }, true, 500),
    json('a 302', {}, true, 302),
  ];
}


const ABSENT = Symbol('absent');

/** One random answer: a mix of good and hostile members, statuses and bodies. */
function randomAnswer(random: () => number, index: number): HostileAnswer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const controls = ['\r', '\n', '\t', ' ', ',', '"', '\u0000', '\u001b', '\u007f', '\u2028', ';', '\\'];
  const tokenChars = 'ABCxyz019-._~+/';
  const randomToken = (): string => {
    let out = '';
    const length = 1 + Math.floor(random() * 40);
    for (let i = 0; i < length; i++) out += random() < 0.1 ? pick(controls) : pick([...tokenChars]);
    return out + (random() < 0.2 ? '==' : '');
  };
  const accessToken = pick<unknown>([
    randomToken(), randomToken(), 'good-token-abcdefgh', 'good-token-abcdefgh', 'good-token-abcdefgh', '', null, 42, ['a'], { a: 1 }, ABSENT,
    jwtWith({ exp: pick([1e20, -1, nowSeconds() + 60, nowSeconds() - 60, 'x', null, 1e308, 0]) }),
    'x'.repeat(1 + Math.floor(random() * 5000)),
  ]);
  const tokenType = pick<unknown>(['Bearer', 'Bearer', 'Bearer', 'bearer', 'BEARER', 'mac', '', null, 5, ABSENT, 'Bearer ', 'DPoP']);
  const expiresIn = pick<unknown>([
    ABSENT, null, 0, -1, -0.001, 1, 2, 3, 59.5, 3600, '3600', ' 60 ', '1e3', 'abc', 1e13, 1e308, 86_400, 86_401,
    true, [], {}, '', '-5', Number.MAX_SAFE_INTEGER,
  ]);
  const body: Record<string, unknown> = {};
  if (accessToken !== ABSENT) body.access_token = accessToken;
  if (tokenType !== ABSENT) body.token_type = tokenType;
  if (expiresIn !== ABSENT) body.expires_in = expiresIn;
  if (random() < 0.2) body.scope = pick(['read', '\r\nX: y', 42, null]);
  if (random() < 0.1) body.error = pick(['invalid_client', 'x\r\ny', 5]);
  const status = pick([200, 200, 200, 200, 201, 204, 302, 400, 401, 429, 500, 503]);
  const shape = random();
  const text = shape < 0.85 ? JSON.stringify(body)
    : shape < 0.9 ? JSON.stringify(body).slice(0, Math.floor(random() * 30))
      : shape < 0.95 ? JSON.stringify([body]) : '';
  const refuse = status < 200 || status >= 300 || shape >= 0.85
    || typeof accessToken !== 'string' || !B64TOKEN.test(accessToken)
    || (tokenType !== ABSENT && (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer'))
    || (expiresIn !== ABSENT && expiresIn !== null
      && !(typeof expiresIn === 'number' ? expiresIn > 0 : typeof expiresIn === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(expiresIn) && Number(expiresIn) > 0))
    ? true : undefined;
  return { name: `random #${index}`, status, body: text, contentType: pick(['application/json', 'text/plain', 'application/json; charset=utf-8']), refuse };
}

describe('hostile token endpoint answers', () => {
  let server: Server;
  let current: HostileAnswer;
  const crashes: unknown[] = [];
  const onCrash = (error: unknown): void => {
    crashes.push(error);
  };

  before(async () => {
    process.on('unhandledRejection', onCrash);
    process.on('uncaughtException', onCrash);
    server = createServer((_req, res: ServerResponse) => {
      const headers: Record<string, string> = { 'content-type': current.contentType ?? 'application/json' };
      if (current.status === 302) headers.location = 'https://elsewhere.example/token';
      res.writeHead(current.status, headers).end(current.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    // Let any stray promise callbacks run before judging.
    await new Promise((resolve) => setTimeout(resolve, 50));
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
    assert.deepEqual(crashes, [], 'no unhandled rejection or uncaught exception');
  });

  const logger = createLogger({ level: 'silent' });

  /** Runs one answer through a fresh endpoint client and cache, two callers at once; checks the invariant. */
  async function check(answer: HostileAnswer): Promise<'accepted' | 'refused'> {
    current = answer;
    const endpoint = new TokenEndpointClient({
      tokenUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
      method: 'POST',
      clientAuth: (params) => {
        params.set('client_assertion', 'an-assertion-standing-in-for-a-signed-one');
        return Promise.resolve();
      },
      clock: systemClock,
      logger,
      timeoutMs: 5000,
      defaultLifetimeSeconds: 300,
    });
    const cache = new CachingTokenSource({ name: 'hostile', fetch: (signal) => endpoint.fetchToken(signal), clock: systemClock, logger });
    try {
      const outcomes = await Promise.allSettled([cache.token(), cache.token()]);
      const results = new Set<string>();
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') {
          assertSendable(outcome.value, answer.name);
          results.add('accepted');
        } else {
          assert.ok(outcome.reason instanceof TokenUnavailableError, `${answer.name}: ${String(outcome.reason)}`);
          assert.equal(outcome.reason.status, 503);
          results.add('refused');
        }
      }
      assert.equal(results.size, 1, `${answer.name}: both callers got the same outcome`);
      const result = [...results][0] as 'accepted' | 'refused';
      if (answer.refuse === true) assert.equal(result, 'refused', `${answer.name} must be refused`);
      if (answer.refuse === false) assert.equal(result, 'accepted', `${answer.name} must be accepted`);
      const cached = cache.peek();
      if (result === 'refused') assert.equal(cached, undefined, `${answer.name}: nothing cached`);
      else assertSendable(cached as Token, `${answer.name} (cached)`);
      assert.ok(cache.state().lastError === undefined || result === 'refused');
      return result;
    } finally {
      cache.close();
      endpoint.close();
    }
  }

  function assertSendable(token: Token, name: string): void {
    assert.ok(B64TOKEN.test(token.accessToken), `${name}: b64token`);
    assert.equal(token.tokenType, 'Bearer');
    assert.ok(Number.isFinite(token.expiresAt), `${name}: finite expiry`);
    assert.ok(token.expiresAt > Date.now(), `${name}: not expired`);
    assert.ok(token.expiresAt <= token.obtainedAt + DAY_MS + 1000, `${name}: at most a day`);
    assert.doesNotThrow(() => new Date(token.expiresAt).toISOString());
  }

  it('the table: each known-bad answer is refused (or capped) and the process stays alive', async () => {
    for (const answer of table()) await check(answer);
  });

  it('400 seeded random answers keep the invariant (seed in the failure message)', async () => {
    const seed = Number(process.env.HOSTILE_SEED ?? 20261203);
    const random = prng(seed);
    const tally = { accepted: 0, refused: 0 };
    for (let i = 0; i < 400; i++) {
      const answer = randomAnswer(random, i);
      try {
        tally[await check(answer)] += 1;
      } catch (error) {
        throw new Error(`seed ${seed}, case ${i} (${JSON.stringify(String(answer.body).slice(0, 200))}, HTTP ${answer.status}): ${(error as Error).message}`, { cause: error });
      }
    }
    assert.ok(tally.accepted >= 10 && tally.refused >= 100, `a useful mix: ${JSON.stringify(tally)}`);
  });
});
