/**
 * What the sidecar trusts and shows for TLS: the system CAs, plus an operator's extra CA file,
 * plus an optional client certificate (mTLS). Built once as a secure context: passing `ca` to an
 * agent instead makes Node parse every root certificate again for each new connection (about
 * 20 ms of blocked event loop each).
 */
import { createSecureContext, rootCertificates } from 'node:tls';
import type { SecureContext } from 'node:tls';

/**
 * A secure context trusting the system CAs and `extraCa` (PEM), or `undefined` when there is no
 * extra CA (Node's default context then applies). Verification stays on either way.
 */
export function trustedSecureContext(extraCa: string | undefined): SecureContext | undefined {
  return extraCa === undefined ? undefined : createSecureContext({ ca: [...rootCertificates, extraCa] });
}

/** The TLS material of one upstream. */
export interface TlsMaterial {
  /** Extra trusted CA certificates (PEM), besides the system CAs. */
  readonly ca?: string;
  /** A client certificate (PEM, intermediates may follow) and its key, presented when a server asks. */
  readonly client?: { readonly certPem: string; readonly keyPem: string };
}

/**
 * A secure context for `material`: the system CAs plus `ca`, and the client certificate when
 * there is one; `undefined` when there is neither (Node's default context then applies).
 * Throws when the material cannot be used (e.g. a key that does not fit the certificate).
 */
export function secureContextFor(material: TlsMaterial): SecureContext | undefined {
  if (material.client === undefined) return trustedSecureContext(material.ca);
  return createSecureContext({
    ...(material.ca === undefined ? {} : { ca: [...rootCertificates, material.ca] }),
    cert: material.client.certPem,
    key: material.client.keyPem,
  });
}
