import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatProxyStatus, renderError, sendError, toProxyError } from '../../../src/proxy/error-response.js';
import { ProxyError, TokenEndpointError, TokenUnavailableError } from '../../../src/lib/errors.js';

function nodeError(code: string, message = `raw upstream text ${code} 10.1.2.3:443`): Error {
  return Object.assign(new Error(message), { code });
}

describe('toProxyError', () => {
  const cases: [string, string, number, string][] = [
    ['ECONNREFUSED', 'upstream_refused', 502, 'connection_refused'],
    ['ECONNRESET', 'upstream_reset', 502, 'connection_terminated'],
    ['EPIPE', 'upstream_reset', 502, 'connection_terminated'],
    ['ENOTFOUND', 'upstream_dns', 502, 'dns_error'],
    ['EAI_AGAIN', 'upstream_dns', 502, 'dns_error'],
    ['ETIMEDOUT', 'upstream_timeout', 504, 'connection_timeout'],
    ['CERT_HAS_EXPIRED', 'upstream_tls', 502, 'tls_certificate_error'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'upstream_tls', 502, 'tls_certificate_error'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'upstream_tls', 502, 'tls_certificate_error'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'upstream_tls', 502, 'tls_certificate_error'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'upstream_tls', 502, 'tls_protocol_error'],
    ['EPROTO', 'upstream_tls', 502, 'tls_protocol_error'],
    ['HPE_INVALID_CONSTANT', 'upstream_reset', 502, 'http_protocol_error'],
    ['EHOSTUNREACH', 'upstream_refused', 502, 'destination_unavailable'],
  ];
  for (const [nodeCode, code, status, proxyStatus] of cases) {
    test(`${nodeCode} -> ${status} ${code} ${proxyStatus}, without the raw text`, () => {
      const mapped = toProxyError(nodeError(nodeCode), 'lua5/logicnets');
      assert.equal(mapped.code, code);
      assert.equal(mapped.status, status);
      assert.equal(mapped.proxyStatus, proxyStatus);
      assert.match(mapped.message, /lua5\/logicnets/);
      assert.doesNotMatch(mapped.message, /raw upstream text|10\.1\.2\.3/);
    });
  }

  test('a code carried by the cause (fetch errors) is found', () => {
    const error = new TypeError('fetch failed', { cause: nodeError('ECONNREFUSED') });
    assert.equal(toProxyError(error).code, 'upstream_refused');
  });

  test('a ProxyError is returned as is; an error without a code is a 500 with no detail', () => {
    const own = new ProxyError('bad_request', 'Nope.', { status: 400 });
    assert.equal(toProxyError(own), own);
    const internal = toProxyError(new Error('secret internals at foo.js:1'));
    assert.equal(internal.status, 500);
    assert.equal(internal.code, 'internal_error');
    assert.doesNotMatch(internal.message, /secret internals/);
  });
});

describe('renderError', () => {
  test('Proxy-Status escapes the details as an sf-string', () => {
    assert.equal(formatProxyStatus('dns_error', 'say "hi" \\ é\nok'), 'logicnets-token-proxy; error=dns_error; details="say \\"hi\\" \\\\ ? ok"');
  });

  test('503: Retry-After from the error; JSON body with code and message', () => {
    const answer = renderError(new TokenUnavailableError('No token.', { retryAfterSeconds: 12.2 }));
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['retry-after'], '13');
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(answer.body), { error: 'token_unavailable', message: 'No token.' });
    const endpoint = renderError(new TokenEndpointError('token_endpoint_unreachable', 'Down.', { retryable: true, retryAfterMs: 2500 }));
    assert.equal(endpoint.headers['retry-after'], '3');
    assert.equal(renderError(nodeError('ECONNREFUSED')).headers['retry-after'], undefined);
  });

  test('405 carries Allow', () => {
    const answer = renderError(new ProxyError('connect_not_supported', 'No tunnels.', { status: 405, proxyStatus: 'http_request_denied' }));
    assert.match(String(answer.headers.allow), /GET/);
  });
});

describe('sendError', () => {
  test('answers JSON before the headers are sent; destroys the connection after', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/late') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        setImmediate(() => sendError(res, nodeError('ECONNRESET')));
        return;
      }
      sendError(res, nodeError('ECONNREFUSED'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const early = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/early', agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => { body += c.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        }).on('error', reject);
      });
      assert.equal(early.status, 502);
      assert.equal((JSON.parse(early.body) as { error: string }).error, 'upstream_refused');
      const late = await new Promise<string>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/late', agent: false }, (res) => {
          res.on('data', () => {});
          res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
          res.on('aborted', () => resolve('aborted'));
          res.on('end', () => resolve('complete'));
        }).on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      });
      assert.notEqual(late, 'complete');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
