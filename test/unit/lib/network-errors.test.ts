// One table names network errors for both paths: the token endpoint client (token/transport-error.ts)
// and the proxy's answers (proxy/error-response.ts) must agree on what a code means.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyNetworkError, EGRESS_PROXY_ERROR } from '../../../src/lib/network-errors.js';
import { errorCode } from '../../../src/lib/errors.js';
import { transportFailure } from '../../../src/token/transport-error.js';
import { toProxyError } from '../../../src/proxy/error-response.js';

function nodeError(code: string, message = `raw text ${code} 10.1.2.3:443`): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyNetworkError', () => {
  const cases: [string, string, string?][] = [
    ['ECONNREFUSED', 'refused'],
    ['EHOSTUNREACH', 'unreachable'],
    ['ECONNRESET', 'reset'],
    ['EAI_AGAIN', 'dns'],
    ['ETIMEDOUT', 'timeout'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls_certificate', 'untrusted'],
    ['CERT_HAS_EXPIRED', 'tls_certificate', 'expired'],
    ['HOSTNAME_MISMATCH', 'tls_certificate', 'host_name'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls_certificate', 'host_name'],
    ['PATH_LENGTH_EXCEEDED', 'tls_certificate', 'invalid'],
    ['CERT_SOMETHING_NEW', 'tls_certificate', 'invalid'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'client_certificate'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls_protocol'],
    ['EPROTO', 'tls_protocol'],
    [EGRESS_PROXY_ERROR, 'egress_proxy'],
    ['HPE_INVALID_CONSTANT', 'http_protocol'],
    ['EWHATEVER', 'other'],
  ];
  for (const [code, kind, certificate] of cases) {
    test(`${code} is ${kind}${certificate === undefined ? '' : ` (${certificate})`}`, () => {
      const named = classifyNetworkError(code);
      assert.equal(named.kind, kind);
      assert.equal(named.certificate, certificate);
    });
  }

  test('an EPROTO carrying a client-certificate alert (TLS 1.2) is client_certificate', () => {
    assert.equal(classifyNetworkError('EPROTO', 'SSL alert number 40: sslv3 alert handshake failure').kind, 'client_certificate');
  });
});

describe('errorCode', () => {
  test('follows the cause chain; undefined without a code; survives a cycle', () => {
    assert.equal(errorCode(new TypeError('fetch failed', { cause: nodeError('ECONNREFUSED') })), 'ECONNREFUSED');
    assert.equal(errorCode(new Error('plain')), undefined);
    assert.equal(errorCode('a string'), undefined);
    const loop = new Error('loop') as Error & { cause?: unknown };
    loop.cause = loop;
    assert.equal(errorCode(loop), undefined);
  });
});

describe('both paths use the table', () => {
  test('HOSTNAME_MISMATCH is a certificate problem on the token path too', () => {
    const failure = transportFailure('HOSTNAME_MISMATCH', nodeError('HOSTNAME_MISMATCH'), 'idp.test:443', 'idp.test');
    assert.equal(failure.code, 'token_endpoint_tls');
    assert.match(failure.message, /not issued for the host name "idp\.test"/);
  });

  test('a refused client certificate is named on the proxy path, not a generic TLS or reset failure', () => {
    const mapped = toProxyError(nodeError('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'api');
    assert.equal(mapped.code, 'upstream_tls');
    assert.equal(mapped.proxyStatus, 'tls_alert_received');
    assert.match(mapped.message, /client certificate/);
    const token = transportFailure('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', nodeError('x'), 'idp.test:443', 'idp.test');
    assert.match(token.message, /acceptable client certificate/);
  });

  test('an egress proxy failure is named on the proxy path, without the error text', () => {
    const error = Object.assign(new Error('the egress proxy http://***@10.1.2.3:3128 refused its credentials'), { code: EGRESS_PROXY_ERROR });
    const mapped = toProxyError(error, 'api');
    assert.equal(mapped.code, 'upstream_refused');
    assert.equal(mapped.status, 502);
    assert.match(mapped.message, /egress proxy on the way to the upstream api/);
    assert.doesNotMatch(mapped.message, /10\.1\.2\.3|credentials/);
    assert.match(transportFailure(EGRESS_PROXY_ERROR, error, 'idp.test:443', 'idp.test').message, /HTTPS_PROXY/);
  });

  test('an expired or misnamed upstream certificate says so', () => {
    assert.match(toProxyError(nodeError('CERT_HAS_EXPIRED'), 'api').message, /expired or not valid yet/);
    assert.match(toProxyError(nodeError('HOSTNAME_MISMATCH'), 'api').message, /not issued for the host name/);
  });
});
