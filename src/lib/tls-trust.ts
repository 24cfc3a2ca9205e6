/**
 * What the sidecar trusts for TLS: the system CAs, plus an operator's extra CA file. Built once
 * per agent as a secure context: passing `ca` to an agent instead makes Node parse every root
 * certificate again for each new connection (about 20 ms of blocked event loop each).
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
