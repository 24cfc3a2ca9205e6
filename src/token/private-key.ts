/**
 * Parsing the server user's RSA private key: PEM (PKCS#8 or PKCS#1, also with literal `\n`
 * escapes) or JWK JSON, checked to be an unencrypted RSA key of at least 2048 bits (RFC 7518 3.3).
 * Error messages name where the key came from and what is wrong, never the key's content.
 * Loading it from a file and reloading it is token/key-source.ts's job. Pure and synchronous.
 */
import { createPrivateKey } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { errorCode, KeyError, safeWord } from '../lib/errors.js';

/** Smallest RSA modulus accepted, in bits (RFC 7518 3.3). */
export const MIN_RSA_MODULUS_BITS = 2048;

const FIX = `provide the server user's RSA private key (${MIN_RSA_MODULUS_BITS} bits or more) as PEM ` +
  '(BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY) or as a JWK JSON object';

/**
 * Parses and checks a private key. Accepts PEM PKCS#8 (`BEGIN PRIVATE KEY`), PEM PKCS#1
 * (`BEGIN RSA PRIVATE KEY`) and JWK JSON (a single key, or a key set holding exactly one key). A PEM
 * given inline with literal `\n` sequences (as some environment files store it) is accepted too.
 * Throws `KeyError` when the text is not an unencrypted RSA private key of at least 2048 bits; the
 * message names `origin` (a file path or an environment variable) and the problem, never the
 * content. Pure and synchronous.
 */
export function parsePrivateKey(text: string, origin: string): KeyObject {
  const trimmed = text.trim();
  if (trimmed === '') throw new KeyError(`the private key in ${origin} is empty: ${FIX}`);
  const key = trimmed.startsWith('{') ? parseJwk(trimmed, origin) : parsePem(trimmed, origin);
  return checkRsa(key, origin);
}

function parseJwk(text: string, origin: string): KeyObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the input, so it is not passed on.
    throw new KeyError(`the private key in ${origin} starts like JSON but is not valid JSON: ${FIX}`);
  }
  let jwk = parsed as Record<string, unknown>;
  if (Array.isArray(jwk.keys)) {
    if (jwk.keys.length !== 1) {
      throw new KeyError(`the JWK set in ${origin} holds ${jwk.keys.length} keys; it must hold exactly one private key`);
    }
    jwk = jwk.keys[0] as Record<string, unknown>;
  }
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.kty !== 'string') {
    throw new KeyError(`the JSON in ${origin} is not a JWK (no "kty" member): ${FIX}`);
  }
  if (jwk.kty !== 'RSA') {
    throw new KeyError(`the JWK in ${origin} has kty "${safeWord(jwk.kty, 12)}", not "RSA": ${FIX}`);
  }
  if (jwk.d === undefined) {
    throw new KeyError(`the JWK in ${origin} is a public key (no "d" member); the sidecar needs the private key`);
  }
  try {
    return createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (error) {
    throw new KeyError(`the JWK in ${origin} is not a usable RSA private key (${errorCode(error) ?? 'unreadable'}): ${FIX}`);
  }
}

function parsePem(text: string, origin: string): KeyObject {
  // An environment variable often carries the PEM with "\n" escapes instead of line breaks.
  const pem = !text.includes('\n') && text.includes('\\n') ? text.replace(/\\n/g, '\n') : text;
  const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
  if (label === undefined) {
    throw new KeyError(`${origin} holds neither a PEM block (-----BEGIN ...-----) nor JSON: ${FIX}`);
  }
  switch (label) {
    case 'PRIVATE KEY':
    case 'RSA PRIVATE KEY':
      break;
    case 'ENCRYPTED PRIVATE KEY':
      throw new KeyError(`the private key in ${origin} is encrypted with a passphrase; ` +
        'decrypt it first (openssl pkey -in encrypted.pem -out key.pem)');
    case 'PUBLIC KEY':
    case 'RSA PUBLIC KEY':
    case 'CERTIFICATE':
      throw new KeyError(`${origin} holds a ${label.toLowerCase()}, not the private key: ${FIX}`);
    default:
      throw new KeyError(`${origin} holds a PEM block of type "${label}": ${FIX}`);
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new KeyError(`the PEM private key in ${origin} cannot be parsed (${errorCode(error) ?? 'unreadable'}); ` +
      `it may be truncated or damaged: ${FIX}`);
  }
}

function checkRsa(key: KeyObject, origin: string): KeyObject {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new KeyError(`the private key in ${origin} is a ${String(key.asymmetricKeyType).toUpperCase()} key; ` +
      `RS256 needs an RSA key: ${FIX}`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_MODULUS_BITS) {
    throw new KeyError(`the RSA private key in ${origin} has ${bits} bits; RS256 needs ${MIN_RSA_MODULUS_BITS} ` +
      "bits or more: generate a new key pair for the server user");
  }
  return key;
}
