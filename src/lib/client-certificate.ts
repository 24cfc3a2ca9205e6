/**
 * A TLS client certificate and its private key (mTLS towards an ingress that requires one): the
 * checks that decide whether a pair can be used, so a wrong file stops start-up (and a broken
 * reload keeps the previous pair) instead of failing every handshake later. Pure; messages never
 * contain key material.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/** A pair that passed `checkClientCertificate`. */
export interface ClientCertificate {
  /** PEM: the client certificate, optionally followed by intermediates. */
  readonly certPem: string;
  /** PEM: its private key (unencrypted). */
  readonly keyPem: string;
  /** `subject CN=..., issuer CN=..., valid until ...`, for logs and `check`. */
  readonly description: string;
  /** Epoch ms after which the certificate is no longer valid. */
  readonly validTo: number;
}

/** What is wrong with a pair: which half (`cert`, `key`) or the two together (`pair`), and a sentence. */
export interface ClientCertificateProblem {
  readonly which: 'cert' | 'key' | 'pair';
  readonly message: string;
}

/**
 * Checks that `certPem` holds an X.509 certificate (the first one is the client's), `keyPem` an
 * unencrypted private key, and that the key belongs to the certificate. Returns the pair, or the
 * problem. Pure.
 */
export function checkClientCertificate(certPem: string, keyPem: string): ClientCertificate | ClientCertificateProblem {
  let cert: X509Certificate;
  try {
    if (!certPem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate');
    cert = new X509Certificate(certPem);
  } catch {
    return { which: 'cert', message: 'holds no PEM certificate (-----BEGIN CERTIFICATE-----) that can be read' };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    const encrypted = /ENCRYPTED/.test(keyPem) || /passphrase/i.test((error as Error).message);
    return {
      which: 'key',
      message: encrypted
        ? 'holds an encrypted private key; give the key unencrypted (a passphrase is not supported)'
        : 'holds no private key that can be read (PEM PKCS#8, PKCS#1 or SEC1)',
    };
  }
  if (!cert.checkPrivateKey(key)) {
    return { which: 'pair', message: 'the certificate and the private key do not belong together (the key is not the certificate\'s)' };
  }
  const validTo = Date.parse(cert.validTo);
  return {
    certPem,
    keyPem,
    validTo,
    description: `${oneLine(cert.subject)}, issued by ${oneLine(cert.issuer)}, valid until ${new Date(validTo).toISOString()}`,
  };
}

/** Whether `result` is a problem rather than a usable pair. */
export function isCertificateProblem(result: ClientCertificate | ClientCertificateProblem): result is ClientCertificateProblem {
  return 'which' in result;
}

function oneLine(name: string): string {
  return name.split('\n').filter((part) => part !== '').join(', ');
}
