/**
 * The client assertion (RFC 7523 section 3, OpenID Connect Core section 9 `private_key_jwt`): an
 * RS256-signed JWT that authenticates the server user at the token endpoint, shaped like the
 * LogicNets tutorial's (a `nonce` header, `iss`, `sub`, `aud`, `iat`, `exp`, `jti`).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { JWTHeaderParameters } from 'jose';
import type { Clock } from '../lib/clock.js';
import type { ClientAuth } from './token.js';

/** The `client_assertion_type` of a JWT client assertion (RFC 7523 2.2). */
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * The `typ` header values an assertion may carry: `JWT` (LogicNets' tutorial) or
 * `client-authentication+jwt` (RFC 10070, which servers that follow it may require).
 */
export const ASSERTION_TYPES = ['JWT', 'client-authentication+jwt'] as const;
/** One of `ASSERTION_TYPES`. */
export type AssertionType = (typeof ASSERTION_TYPES)[number];

/** What goes into an assertion besides the generated `iat`, `exp`, `jti` and `nonce`. */
export interface AssertionClaims {
  /** `iss`: the client id, or the issuer LogicNets was told about. */
  readonly issuer: string;
  /** `sub`: the server user's client id. */
  readonly subject: string;
  /** `aud`: the authorization server's identity, sent as one string. */
  readonly audience: string;
  /** Lifetime in seconds: `exp` = `iat` + `ttlSeconds`. A positive integer. */
  readonly ttlSeconds: number;
  /** Optional `kid` header. */
  readonly keyId?: string;
  /** The `typ` header; default `JWT`. */
  readonly type?: AssertionType;
}

/**
 * Signs a fresh client assertion with `key` (RS256). Every call makes a new one: a new random
 * `nonce` header (16 random bytes, base64url), a new `jti` (a random UUID), and `iat` taken from
 * `clock` (whole seconds). The header is `{ alg: 'RS256', typ, nonce, kid? }` (`typ` from
 * `claims.type`, default `JWT`), never with `crit`. Safe to call concurrently. Rejects with a
 * `RangeError` for a non-positive or fractional TTL, an empty `iss`/`sub`/`aud` or an unknown type, and with jose's error for a key RS256 cannot use.
 */
export async function signClientAssertion(key: KeyObject, claims: AssertionClaims, clock: Clock): Promise<string> {
  if (!Number.isSafeInteger(claims.ttlSeconds) || claims.ttlSeconds <= 0) {
    throw new RangeError(`the assertion lifetime must be a positive whole number of seconds, not ${claims.ttlSeconds}`);
  }
  for (const [name, value] of [['issuer', claims.issuer], ['subject', claims.subject], ['audience', claims.audience]]) {
    if (typeof value !== 'string' || value === '') throw new RangeError(`the assertion ${name} must be a non-empty string`);
  }
  const typ = claims.type ?? 'JWT';
  if (!ASSERTION_TYPES.includes(typ)) throw new RangeError(`the assertion type must be one of ${ASSERTION_TYPES.join(', ')}`);
  const iat = Math.floor(clock.now() / 1000);
  const header: JWTHeaderParameters = { alg: 'RS256', typ, nonce: randomBytes(16).toString('base64url') };
  if (claims.keyId !== undefined && claims.keyId !== '') header.kid = claims.keyId;
  return new SignJWT({})
    .setProtectedHeader(header)
    .setIssuer(claims.issuer)
    .setSubject(claims.subject)
    .setAudience(claims.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + claims.ttlSeconds)
    .setJti(randomUUID())
    .sign(key);
}

/**
 * Client authentication by JWT assertion (RFC 7523 2.2, OIDC `private_key_jwt`): for each token
 * request signs a fresh assertion with the key `keys.current()` returns at that moment (so a
 * reloaded key is used at once) and sets `client_assertion_type` and `client_assertion` on the
 * request parameters. Adds no headers. Safe for concurrent use.
 */
export function privateKeyJwt(keys: { current(): KeyObject }, claims: AssertionClaims, clock: Clock): ClientAuth {
  return async (params) => {
    const assertion = await signClientAssertion(keys.current(), claims, clock);
    params.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
    params.set('client_assertion', assertion);
  };
}
