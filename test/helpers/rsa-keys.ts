import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/** One RSA key pair in every format the sidecar reads, plus the public half for verifiers. */
export interface RsaTestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** `-----BEGIN PRIVATE KEY-----` */
  pkcs8Pem: string;
  /** `-----BEGIN RSA PRIVATE KEY-----` */
  pkcs1Pem: string;
  /** The private key as JWK JSON text. */
  jwkJson: string;
  /** The public key as a JWK object (`kty`, `n`, `e`). */
  publicJwk: { kty: string; n: string; e: string };
}

/** Generates a fresh RSA key pair (2048 bits unless told) and exports it in each format. */
export function makeRsaKey(modulusLength = 2048): RsaTestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength });
  const jwk = publicKey.export({ format: 'jwk' });
  return {
    privateKey,
    publicKey,
    pkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    pkcs1Pem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    jwkJson: JSON.stringify(privateKey.export({ format: 'jwk' })),
    publicJwk: { kty: String(jwk.kty), n: String(jwk.n), e: String(jwk.e) },
  };
}

const shared = new Map<number, RsaTestKey>();

/**
 * The `slot`-th RSA-2048 key of this test process, made on first use and the same object after.
 * For tests that need a key, or a few different ones (slots 0, 1, 2...), but not a key that no other
 * test in the file uses: each RSA-2048 key costs about 150 ms of CPU to make.
 */
export function sharedRsaKey(slot: number): RsaTestKey {
  let key = shared.get(slot);
  if (key === undefined) {
    key = makeRsaKey();
    shared.set(slot, key);
  }
  return key;
}
