/**
 * The one table that classifies Node.js socket, DNS and TLS error codes, for every caller (the
 * token endpoint client and the proxy's error answers), so the same failure gets the same name on
 * both paths. Each caller turns a kind into its own error and sentence; `errorCode` (lib/errors.ts)
 * finds the code. Pure.
 */

/** The `code` of every error about the egress proxy itself (unreachable, refusing the tunnel). */
export const EGRESS_PROXY_ERROR = 'ERR_EGRESS_PROXY';

/** What kind of failure a network error code means. */
export type NetworkErrorKind =
  /** The host answered the connection attempt with a refusal (nothing listens on the port). */
  | 'refused'
  /** No route to the host, or the address is not usable from here. */
  | 'unreachable'
  /** The connection was closed or broken before a complete answer. */
  | 'reset'
  /** The host name could not be resolved. */
  | 'dns'
  /** Connecting timed out. */
  | 'timeout'
  /** The server's certificate was not accepted; `certificate` says why. */
  | 'tls_certificate'
  /** The TLS handshake failed otherwise (often: the port does not serve TLS). */
  | 'tls_protocol'
  /** The server refused the handshake for want of an acceptable client certificate (mTLS). */
  | 'client_certificate'
  /** The egress proxy could not be reached or refused the tunnel (`ERR_EGRESS_PROXY`). */
  | 'egress_proxy'
  /** The answer was not valid HTTP. */
  | 'http_protocol'
  /** Any other code. */
  | 'other';

/** Why a server certificate was not accepted. */
export type CertificateProblem =
  /** Not signed by a trusted CA (self-signed, private CA, incomplete chain). */
  | 'untrusted'
  /** Expired, or not valid yet (or this machine's clock is wrong). */
  | 'expired'
  /** Not issued for the host name that was called. */
  | 'host_name'
  /** Otherwise unusable (bad signature, wrong purpose, chain too long). */
  | 'invalid';

/** How `classifyNetworkError` names a code. */
export interface NetworkErrorClass {
  readonly kind: NetworkErrorKind;
  /** Set when `kind` is `tls_certificate`. */
  readonly certificate?: CertificateProblem;
}

const BY_CODE: ReadonlyMap<string, NetworkErrorClass> = new Map<string, NetworkErrorClass>([
  ...codes('refused', 'ECONNREFUSED'),
  ...codes('unreachable', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL'),
  ...codes('reset', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'),
  ...codes('dns', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA'),
  ...codes('timeout', 'ETIMEDOUT', 'ESOCKETTIMEDOUT'),
  ...codes('egress_proxy', EGRESS_PROXY_ERROR),
  ...certificates('untrusted', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA'),
  ...certificates('expired', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'),
  ...certificates('host_name', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH'),
  ...certificates('invalid', 'CERT_SIGNATURE_FAILURE', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
    'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_CHAIN_TOO_LONG', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE'),
  // TLS alerts a server sends when it wants a client certificate it did not get, or does not
  // accept the one it got.
  ...codes('client_certificate', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
    'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
    'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
    'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR'),
]);

function codes(kind: NetworkErrorKind, ...list: string[]): [string, NetworkErrorClass][] {
  const named = { kind };
  return list.map((code) => [code, named]);
}

function certificates(certificate: CertificateProblem, ...list: string[]): [string, NetworkErrorClass][] {
  const named = { kind: 'tls_certificate' as const, certificate };
  return list.map((code) => [code, named]);
}

const INVALID_CERTIFICATE: NetworkErrorClass = { kind: 'tls_certificate', certificate: 'invalid' };
const CLIENT_CERTIFICATE: NetworkErrorClass = { kind: 'client_certificate' };
const TLS_PROTOCOL: NetworkErrorClass = { kind: 'tls_protocol' };
const HTTP_PROTOCOL: NetworkErrorClass = { kind: 'http_protocol' };
const OTHER: NetworkErrorClass = { kind: 'other' };

/** Over TLS 1.2 Node reports a server's alert as `EPROTO`, the alert named only in the message. */
const CLIENT_CERTIFICATE_ALERT = /alert (handshake failure|certificate required|bad certificate|unknown ca|access denied)/i;

/**
 * Classifies a Node.js network error `code` (see `errorCode`); `message`, the error's own text, is
 * read only to tell a client-certificate alert inside an `EPROTO`. Pure.
 */
export function classifyNetworkError(code: string, message = ''): NetworkErrorClass {
  const known = BY_CODE.get(code);
  if (known !== undefined) return known;
  if (code === 'EPROTO' && CLIENT_CERTIFICATE_ALERT.test(message)) return CLIENT_CERTIFICATE;
  if (code.startsWith('CERT_') || code.startsWith('ERR_TLS_CERT')) return INVALID_CERTIFICATE;
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return TLS_PROTOCOL;
  if (code.startsWith('HPE_')) return HTTP_PROTOCOL;
  return OTHER;
}
