import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { CLIENT_ASSERTION_TYPE, privateKeyJwt, signClientAssertion } from '../../../src/token/assertion.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { sharedRsaKey } from '../../helpers/rsa-keys.js';
import type { RsaTestKey } from '../../helpers/rsa-keys.js';

const claims = {
  issuer: 'https://client.org',
  subject: '4664FD8C-9CEC-A8A2-D666-02A352A492A1',
  audience: 'https://lua5.logicnets.local/logicnets',
  ttlSeconds: 300,
};

describe('signClientAssertion', () => {
  let key: RsaTestKey;
  before(() => {
    key = sharedRsaKey(0);
  });

  it('signs an RS256 JWT shaped like the LogicNets tutorial, verifiable with the public key', async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 3, 4, 5, 6, 789));
    const jwt = await signClientAssertion(key.privateKey, { ...claims, keyId: 'key-1' }, clock);
    const { payload, protectedHeader } = await jwtVerify(jwt, key.publicKey, {
      algorithms: ['RS256'], issuer: claims.issuer, subject: claims.subject, audience: claims.audience,
      currentDate: new Date(clock.now()), requiredClaims: ['iat', 'exp', 'jti'],
    });
    assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'kid', 'nonce', 'typ']);
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(protectedHeader.typ, 'JWT');
    assert.equal(protectedHeader.kid, 'key-1');
    assert.match(String(protectedHeader.nonce), /^[A-Za-z0-9_-]{22}$/, '16 random bytes, base64url');
    assert.equal(typeof payload.aud, 'string', 'aud is one string, not an array');
    assert.equal(payload.iat, Math.floor(Date.UTC(2026, 2, 3, 4, 5, 6) / 1000));
    assert.equal(payload.exp, payload.iat + 300);
    assert.match(String(payload.jti), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(Object.keys(payload).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
  });

  it('makes a fresh nonce and jti on every call, and omits kid when none is set', async () => {
    const clock = new ManualClock();
    const seen = { nonce: new Set<string>(), jti: new Set<string>() };
    for (let i = 0; i < 20; i++) {
      const jwt = await signClientAssertion(key.privateKey, claims, clock);
      const header = decodeProtectedHeader(jwt);
      assert.equal(header.kid, undefined);
      assert.equal(header.crit, undefined);
      const { payload } = await jwtVerify(jwt, key.publicKey, { currentDate: new Date(clock.now()), audience: claims.audience });
      seen.nonce.add(String(header.nonce));
      seen.jti.add(String(payload.jti));
    }
    assert.equal(seen.nonce.size, 20);
    assert.equal(seen.jti.size, 20);
  });

  it('takes iat from the injected clock', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const first = await signClientAssertion(key.privateKey, claims, clock);
    await clock.advance(90_500);
    const second = await signClientAssertion(key.privateKey, claims, clock);
    const iat = (jwt: string) => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { iat: number }).iat;
    assert.equal(iat(first), Date.UTC(2030, 0, 1) / 1000);
    assert.equal(iat(second) - iat(first), 90);
  });

  it('refuses a lifetime that is not a positive whole number and empty claims', async () => {
    const clock = new ManualClock();
    for (const ttlSeconds of [0, -5, 1.5, Number.NaN]) {
      await assert.rejects(signClientAssertion(key.privateKey, { ...claims, ttlSeconds }, clock), RangeError);
    }
    await assert.rejects(signClientAssertion(key.privateKey, { ...claims, subject: '' }, clock), RangeError);
    await assert.rejects(signClientAssertion(key.privateKey, { ...claims, type: 'at+jwt' as 'JWT' }, clock), RangeError);
  });

  it('sets the typ header RFC 10070 recommends when asked (client-authentication+jwt), JWT by default', async () => {
    const clock = new ManualClock();
    const typed = await signClientAssertion(key.privateKey, { ...claims, type: 'client-authentication+jwt' }, clock);
    assert.equal(decodeProtectedHeader(typed).typ, 'client-authentication+jwt');
    const { protectedHeader } = await jwtVerify(typed, key.publicKey, {
      algorithms: ['RS256'], typ: 'client-authentication+jwt', audience: claims.audience, currentDate: new Date(clock.now()),
    });
    assert.equal(protectedHeader.typ, 'client-authentication+jwt');
    assert.equal(decodeProtectedHeader(await signClientAssertion(key.privateKey, claims, clock)).typ, 'JWT');
  });
});

describe('privateKeyJwt', () => {
  it('sets client_assertion_type and a fresh client_assertion signed with the key current at call time', async () => {
    const [first, second] = [sharedRsaKey(0), sharedRsaKey(1)];
    let current = first.privateKey;
    const auth = privateKeyJwt({ current: () => current }, claims, new ManualClock());
    const clock = new ManualClock();

    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers: Record<string, string> = {};
    await auth(params, headers);
    assert.equal(params.get('client_assertion_type'), CLIENT_ASSERTION_TYPE);
    assert.equal(CLIENT_ASSERTION_TYPE, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    assert.deepEqual(headers, {}, 'no headers: the credentials travel as parameters');
    await jwtVerify(params.get('client_assertion')!, first.publicKey, { currentDate: new Date(clock.now()) });

    current = second.privateKey;
    const again = new URLSearchParams();
    await auth(again, {});
    assert.notEqual(again.get('client_assertion'), params.get('client_assertion'));
    await jwtVerify(again.get('client_assertion')!, second.publicKey, { currentDate: new Date(clock.now()) });
    await assert.rejects(jwtVerify(again.get('client_assertion')!, first.publicKey, { currentDate: new Date(clock.now()) }));
  });
});
