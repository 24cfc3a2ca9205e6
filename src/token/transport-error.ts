/**
 * Naming what went wrong on the way to the token endpoint: a socket, DNS or TLS error of the
 * token request (classified by lib/network-errors.ts) becomes a retryable `TokenEndpointError`
 * whose sentence tells an operator what to check (the CA file, the host name, http vs https, the
 * network). The answer's own failures are read in token/response.ts. Pure.
 */
import { TokenEndpointError } from '../lib/errors.js';
import { classifyNetworkError } from '../lib/network-errors.js';
import { TOKEN_SETTING_WORDS } from './setting-names.js';
import type { SettingNames } from './setting-names.js';

/**
 * The `TokenEndpointError` for a transport error with `code` (see `errorCode`):
 * `token_endpoint_tls`, `token_endpoint_timeout` or `token_endpoint_unreachable`, always
 * retryable, with `error` as its cause. `where` is the endpoint's `host:port` and `hostname` the
 * token URL's host name, both for the message; `names` names the settings a hint points at. Pure.
 */
export function transportFailure(code: string, error: unknown, where: string, hostname: string,
  names: SettingNames = TOKEN_SETTING_WORDS): TokenEndpointError {
  const url = names('tokenUrl');
  const details = { retryable: true, cause: error };
  const message = error instanceof Error ? error.message : '';
  const { kind, certificate } = classifyNetworkError(code, message);
  switch (kind) {
    case 'tls_certificate':
      switch (certificate) {
        case 'expired':
          return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is expired ` +
            `or not valid yet (${code}): the server's certificate must be renewed, or this machine's clock is wrong`, details);
        case 'host_name':
          return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is not ` +
            `issued for the host name "${hostname}": use a host name the certificate names in ${url}`, details);
        case 'invalid':
          return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} cannot ` +
            `be verified (${code}): the server's certificate chain is broken or not meant for a TLS server`, details);
        default:
          return new TokenEndpointError('token_endpoint_tls', `the TLS certificate of the token endpoint ${where} is not ` +
            `trusted (${code}): if the server uses a private or company CA, set ${names('caFile')} to that CA's PEM certificate`,
          details);
      }
    case 'client_certificate':
      return new TokenEndpointError('token_endpoint_tls', `the token endpoint ${where} refused the TLS handshake for want of ` +
        `an acceptable client certificate (${code}): it requires mTLS; set ${names('clientCertFile')} and ` +
        `${names('clientKeyFile')} to a certificate it trusts (and check that it has not expired)`, details);
    case 'egress_proxy':
      // The agent's message names the proxy (without credentials) and what it did.
      return new TokenEndpointError('token_endpoint_unreachable', `on the way to the token endpoint ${where}, ` +
        `${message}; check HTTPS_PROXY / NO_PROXY or the upstream's egressProxy`, details);
    case 'tls_protocol':
      return new TokenEndpointError('token_endpoint_tls', `the TLS handshake with the token endpoint ${where} failed ` +
        `(${code}): check that this port serves HTTPS (use http:// for a plain HTTP port)`, details);
    case 'refused':
      return new TokenEndpointError('token_endpoint_unreachable', `the token endpoint ${where} refused the ` +
        `connection (${code}): check the host and port in ${url} and that the server is running`, details);
    case 'dns':
      return new TokenEndpointError('token_endpoint_unreachable', `the host name of the token endpoint ${where} ` +
        `cannot be resolved (${code}): check the host in ${url} and this machine's DNS`, details);
    case 'reset':
      return new TokenEndpointError('token_endpoint_unreachable', `the connection to the token endpoint ${where} was ` +
        `closed before a complete answer came (${code}): the server, a proxy or a firewall cut it; check ` +
        `${url} (http vs https), and, where the server requires mTLS, that it accepts the client ` +
        `certificate set in ${names('clientCertFile')}: it cuts the connection when it does not`, details);
    case 'timeout':
      return new TokenEndpointError('token_endpoint_timeout', `connecting to the token endpoint ${where} timed out ` +
        `(${code}): check that it is reachable from here (proxy, firewall)`, details);
    case 'unreachable':
      return new TokenEndpointError('token_endpoint_unreachable', `there is no network route to the token endpoint ` +
        `${where} (${code}): check ${url} and the network`, details);
    case 'http_protocol':
    case 'other':
      return new TokenEndpointError('token_endpoint_unreachable', `calling the token endpoint ${where} failed ` +
        `(${code}): check ${url} and the network`, details);
  }
}
