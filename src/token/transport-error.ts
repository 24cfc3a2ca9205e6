/**
 * Naming what went wrong on the way to the token endpoint: a socket, DNS or TLS error of the
 * token request becomes a retryable `TokenEndpointError` whose sentence tells an operator what to
 * check (the CA file, the host name, http vs https, the network). The answer's own failures are
 * read in token/response.ts. Pure.
 */
import { TokenEndpointError } from '../lib/errors.js';

const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'INVALID_CA', 'CERT_CHAIN_TOO_LONG',
]);

/** TLS alerts a server sends when it wants a client certificate it did not get, or does not accept the one it got (mTLS). */
const TLS_CLIENT_CERTIFICATE_REFUSED = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
]);

/** The `code` of a Node.js socket, DNS or TLS error (e.g. `ECONNREFUSED`), or `UNKNOWN`. Pure. */
export function transportErrorCode(error: unknown): string {
  return typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'UNKNOWN';
}

/**
 * The `TokenEndpointError` for a transport error with `code` (see `transportErrorCode`):
 * `token_endpoint_tls`, `token_endpoint_timeout` or `token_endpoint_unreachable`, always
 * retryable, with `error` as its cause. `where` is the endpoint's `host:port` and `hostname` the
 * token URL's host name, both for the message. Pure.
 */
export function transportFailure(code: string, error: unknown, where: string, hostname: string): TokenEndpointError {
  const details = { retryable: true, cause: error };
  if (TLS_UNTRUSTED.has(code)) {
    return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is not ` +
      `trusted (${code}): if the server uses a private or company CA, set LOGICNETS_CA_FILE to that CA's PEM certificate`,
    details);
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is expired ` +
      `or not valid yet (${code}): the server's certificate must be renewed, or this machine's clock is wrong`, details);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is not ` +
      `issued for the host name "${hostname}": use a host name the certificate names in LOGICNETS_TOKEN_URL`, details);
  }
  // Over TLS 1.2 Node reports the server's alert as EPROTO, the alert named only in the message.
  const alert = code === 'EPROTO' && error instanceof Error
    && /alert (handshake failure|certificate required|bad certificate|unknown ca|access denied)/i.test(error.message);
  if (TLS_CLIENT_CERTIFICATE_REFUSED.has(code) || alert) {
    return new TokenEndpointError('token_endpoint_tls', `the token endpoint ${where} refused the TLS handshake for want of ` +
      `an acceptable client certificate (${code}): it requires mTLS; set LOGICNETS_CLIENT_CERT_FILE and ` +
      'LOGICNETS_CLIENT_KEY_FILE to a certificate it trusts (and check that it has not expired)', details);
  }
  if (code === 'ERR_EGRESS_PROXY') {
    // The agent's message names the proxy (without credentials) and what it did.
    return new TokenEndpointError('token_endpoint_unreachable', `on the way to the token endpoint ${where}, ` +
      `${(error as Error).message}; check HTTPS_PROXY / NO_PROXY or the upstream's egressProxy`, details);
  }
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    return new TokenEndpointError('token_endpoint_tls', `the TLS handshake with the token endpoint ${where} failed ` +
      `(${code}): check that this port serves HTTPS (use http:// for a plain HTTP port)`, details);
  }
  switch (code) {
    case 'ECONNREFUSED':
      return new TokenEndpointError('token_endpoint_unreachable', `the token endpoint ${where} refused the ` +
        'connection (ECONNREFUSED): check the host and port in LOGICNETS_TOKEN_URL and that the server is running', details);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new TokenEndpointError('token_endpoint_unreachable', `the host name of the token endpoint ${where} ` +
        `cannot be resolved (${code}): check the host in LOGICNETS_TOKEN_URL and this machine's DNS`, details);
    case 'ECONNRESET':
    case 'EPIPE':
      return new TokenEndpointError('token_endpoint_unreachable', `the connection to the token endpoint ${where} was ` +
        `closed before a complete answer came (${code}): the server, a proxy or a firewall cut it; check ` +
        'LOGICNETS_TOKEN_URL (http vs https), and, where the server requires mTLS, that it accepts the client ' +
        'certificate (LOGICNETS_CLIENT_CERT_FILE): it cuts the connection when it does not', details);
    case 'ETIMEDOUT':
      return new TokenEndpointError('token_endpoint_timeout', `connecting to the token endpoint ${where} timed out ` +
        '(ETIMEDOUT): check that it is reachable from here (proxy, firewall)', details);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new TokenEndpointError('token_endpoint_unreachable', `there is no network route to the token endpoint ` +
        `${where} (${code}): check LOGICNETS_TOKEN_URL and the network`, details);
    default:
      return new TokenEndpointError('token_endpoint_unreachable', `calling the token endpoint ${where} failed ` +
        `(${code}): check LOGICNETS_TOKEN_URL and the network`, details);
  }
}
