/**
 * The LogicNets emulator's check of RFC 7523 client assertions: strict jose verification against
 * the RSA public key registered for the assertion's `sub`, failing with an `invalid_client`
 * `OAuthFailure` that says exactly what is wrong. Shares no code with the sidecar's signing side,
 * so it checks that side independently. Test and demo code only; never logs an assertion.
 */
import { createPublicKey } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import type { Clock } from '../lib/clock.js';
import { invalidClient } from './http.js';

/** A client (LogicNets "server user") the emulator accepts assertions from. */
export interface EmulatorClient {
  /** The client id; the assertion's `sub` selects the client. */
  clientId: string;
  /** The RSA public key (a private key is reduced to its public half). */
  publicKey: KeyObject | JWK;
  /** When set, the assertion's `iss` must equal it. */
  issuer?: string;
}

/** Options of `AssertionVerifier`. */
export interface AssertionVerifierOptions {
  clients: readonly EmulatorClient[];
  /** The `aud` an assertion must carry, read at every check (the emulator's URL is known once it listens). */
  audience: () => string;
  clock: Clock;
  /** Largest accepted `exp - iat` and age of `iat`, in seconds. */
  maxAssertionLifetimeSeconds: number;
  /** Clock skew allowed on `exp`, `iat` and `nbf`, in seconds. */
  clockToleranceSeconds: number;
  /** When set, the assertion's `typ` header must equal it (e.g. RFC 10070's `client-authentication+jwt`). */
  requiredType?: string;
}

/** What a verified assertion says: the client, and the `jti` and `exp` a replay check needs. */
export interface VerifiedAssertion {
  clientId: string;
  jti: string;
  exp: number;
}

/**
 * Verifies client assertions against the registered clients. Holds no state that a check
 * changes, so any number of checks may run at once (the replay check is the caller's).
 */
export class AssertionVerifier {
  readonly #clients = new Map<string, { key: KeyObject; issuer: string | undefined }>();
  readonly #audience: () => string;
  readonly #clock: Clock;
  readonly #maxAssertionLifetime: number;
  readonly #tolerance: number;
  readonly #requiredType: string | undefined;

  /** Registers the clients; throws `TypeError` for a client whose key is not an RSA key. */
  constructor(options: AssertionVerifierOptions) {
    for (const client of options.clients) {
      const key = toPublicKey(client.publicKey);
      if (key.asymmetricKeyType !== 'rsa') throw new TypeError(`The emulator key of client ${client.clientId} must be an RSA key.`);
      this.#clients.set(client.clientId, { key, issuer: client.issuer });
    }
    this.#audience = options.audience;
    this.#clock = options.clock;
    this.#maxAssertionLifetime = options.maxAssertionLifetimeSeconds;
    this.#tolerance = options.clockToleranceSeconds;
    this.#requiredType = options.requiredType;
  }

  /** Verifies a client assertion strictly (RFC 7523 3); rejects with an `OAuthFailure` saying why not. */
  async verify(assertion: string): Promise<VerifiedAssertion> {
    let alg: unknown;
    let typ: unknown;
    let sub: unknown;
    try {
      ({ alg, typ } = decodeProtectedHeader(assertion));
      sub = decodeJwt(assertion).sub;
    } catch {
      throw invalidClient('The client_assertion is not a well-formed signed JWT.');
    }
    if (alg !== 'RS256') throw invalidClient('The client assertion must be signed with RS256.');
    if (this.#requiredType !== undefined && typ !== this.#requiredType) {
      throw invalidClient(`The client assertion typ header must be ${this.#requiredType} (RFC 10070).`);
    }
    if (typeof sub !== 'string' || sub === '') throw invalidClient('The client assertion has no sub claim naming the client.');
    const client = this.#clients.get(sub);
    if (client === undefined) throw invalidClient(`No client with id ${sub} is registered.`);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(assertion, client.key, {
        algorithms: ['RS256'],
        audience: this.#audience(),
        issuer: client.issuer,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti'],
        maxTokenAge: this.#maxAssertionLifetime,
        clockTolerance: this.#tolerance,
        currentDate: new Date(this.#clock.now()),
      }));
    } catch (error) {
      throw invalidClient(this.#describeJoseError(error, sub));
    }
    if (typeof payload.aud !== 'string') throw invalidClient(`The assertion aud claim must be the single string ${this.#audience()}.`);
    const { exp, iat, jti } = payload;
    if (typeof jti !== 'string' || jti === '') throw invalidClient('The assertion jti claim must be a non-empty string.');
    if (typeof exp !== 'number' || typeof iat !== 'number') throw invalidClient('The assertion exp and iat claims must be numbers.');
    if (exp - iat > this.#maxAssertionLifetime) {
      throw invalidClient(`The assertion lives longer than ${this.#maxAssertionLifetime} seconds (exp - iat).`);
    }
    return { clientId: sub, jti, exp };
  }

  #describeJoseError(error: unknown, clientId: string): string {
    const { code, claim, reason } = (error ?? {}) as { code?: string; claim?: string; reason?: string };
    switch (code) {
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return `The assertion signature does not verify with the public key registered for client ${clientId}.`;
      case 'ERR_JWT_EXPIRED':
        return claim === 'iat'
          ? `The assertion iat is more than ${this.#maxAssertionLifetime} seconds in the past.`
          : 'The assertion has expired (exp); check the clock and sign a fresh assertion.';
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        return 'The client assertion must be signed with RS256.';
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        if (reason === 'missing') return `The assertion has no ${claim} claim.`;
        if (claim === 'aud') return `The assertion aud claim must be ${this.#audience()}.`;
        if (claim === 'iss') return `The assertion iss claim must be ${this.#clients.get(clientId)?.issuer ?? ''}.`;
        if (claim === 'iat') return 'The assertion iat is in the future; check the clock.';
        if (claim === 'nbf') return 'The assertion is not valid yet (nbf); check the clock.';
        return `The assertion ${claim} claim is invalid.`;
      default:
        return 'The client_assertion is not a valid signed JWT.';
    }
  }
}

function toPublicKey(key: KeyObject | JWK): KeyObject {
  if (isKeyObject(key)) return key.type === 'public' ? key : createPublicKey(key);
  return createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
}

function isKeyObject(key: KeyObject | JWK): key is KeyObject {
  return (key as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'KeyObject';
}
