// Which egress proxy a destination gets: the environment's conventions (lower case first), NO_PROXY
// matching, the explicit per-upstream setting, loopback always direct, and a proxy that names the
// sidecar's own listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chooseEgressProxy, isOwnListener, NoProxyList, parseProxyUrl, readProxyEnvironment, redactProxyUrl,
} from '../../../src/lib/egress-proxy.js';

const listener = { host: '127.0.0.1', port: 8080 };

test('lower-case variables win over upper-case ones; empty counts as unset', () => {
  assert.deepEqual(readProxyEnvironment({ https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:2' }).httpsProxy,
    { value: 'http://a:1', origin: 'https_proxy' });
  assert.deepEqual(readProxyEnvironment({ https_proxy: ' ', HTTPS_PROXY: 'http://b:2' }).httpsProxy,
    { value: 'http://b:2', origin: 'HTTPS_PROXY' });
  assert.deepEqual(readProxyEnvironment({ NO_PROXY: '.corp', no_proxy: '' }).noProxy, { value: '.corp', origin: 'NO_PROXY' });
  assert.deepEqual(readProxyEnvironment({}), { httpsProxy: undefined, httpProxy: undefined, noProxy: undefined });
});

test('proxy URLs: http and https, a bare host:port means http, anything else is refused without echoing it', () => {
  assert.equal(parseProxyUrl('proxy.corp:3128').href, 'http://proxy.corp:3128/');
  assert.equal(parseProxyUrl('https://u:p@proxy.corp').port, '');
  for (const [value, pattern] of [
    ['socks5://proxy:1080', /SOCKS proxies are not supported/],
    ['http://proxy:3128/path', /without a path/],
    ['http://', /not a proxy URL|names no proxy host/],
    ['http://user:s3cret@proxy:99999', /not a proxy URL/],
  ] as const) {
    assert.throws(() => parseProxyUrl(value), (error: Error) => pattern.test(error.message) && !error.message.includes('s3cret'), value);
  }
});

test('redaction keeps scheme, host and port and hides user and password', () => {
  assert.equal(redactProxyUrl(new URL('http://user:pa%40ss@proxy.corp:3128')), 'http://***@proxy.corp:3128');
  assert.equal(redactProxyUrl(new URL('http://proxy.corp:3128')), 'http://proxy.corp:3128');
  assert.equal(redactProxyUrl(new URL('https://token@[fd00::1]:443')), 'https://***@[fd00::1]');
});

test('NO_PROXY matching', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'https://anything.example', true],
    ['corp.example', 'https://corp.example', true],
    ['corp.example', 'https://api.corp.example', true],
    ['corp.example', 'https://notcorp.example', false],
    ['.corp.example', 'https://corp.example', true],
    ['.corp.example', 'https://a.b.corp.example', true],
    ['*.corp.example', 'https://api.corp.example', true],
    ['CORP.example.', 'https://Api.Corp.Example.', true],
    ['corp.example:8443', 'https://corp.example:8443', true],
    ['corp.example:8443', 'https://corp.example', false],
    ['corp.example:443', 'https://corp.example', true],
    ['10.1.2.3', 'https://10.1.2.3', true],
    ['10.0.0.0/8', 'https://10.200.0.1:8443', true],
    ['10.0.0.0/8', 'https://11.0.0.1', false],
    ['10.0.0.0/8', 'https://ten.example', false],
    ['fd00::/8', 'https://[fd12::1]', true],
    ['[fd00::1]:8443', 'https://[fd00::1]:8443', true],
    ['[fd00::1]:8443', 'https://[fd00::1]', false],
    ['a.example, b.example  c.example', 'https://c.example', true],
    ['', 'https://corp.example', false],
    ['10.0.0.0/99, *x', 'https://10.0.0.1', false],
  ];
  for (const [list, url, expected] of cases) {
    assert.equal(new NoProxyList(list).matches(new URL(url)), expected, `NO_PROXY=${JSON.stringify(list)} ${url}`);
  }
});

test('a proxy that names the sidecar\'s own listener', () => {
  const cases: [string, { host: string; port: number; localAddresses?: string[] }, boolean][] = [
    ['http://127.0.0.1:8080', listener, true],
    ['http://localhost:8080', listener, true],
    ['http://[::1]:8080', listener, true],
    ['http://127.0.0.1:8081', listener, false],
    ['http://127.0.0.2:8080', listener, false],
    ['http://proxy.corp:8080', listener, false],
    ['http://127.0.0.2:8080', { host: '0.0.0.0', port: 8080 }, true],
    ['http://0.0.0.0:8080', { host: '0.0.0.0', port: 8080 }, true],
    ['http://10.1.2.3:8080', { host: '0.0.0.0', port: 8080, localAddresses: ['10.1.2.3'] }, true],
    ['http://10.1.2.4:8080', { host: '::', port: 8080, localAddresses: ['10.1.2.3'] }, false],
    ['http://10.1.2.3:8080', { host: '10.1.2.3', port: 8080 }, true],
    ['http://127.0.0.1', { host: '127.0.0.1', port: 80 }, true],
  ];
  for (const [url, own, expected] of cases) {
    assert.equal(isOwnListener(new URL(url), own), expected, `${url} vs ${own.host}:${own.port}`);
  }
});

test('the choice: loopback direct, explicit setting first, then the scheme\'s variable unless NO_PROXY lists the host', () => {
  const environment = readProxyEnvironment({
    HTTPS_PROXY: 'http://user:pw@proxy.corp:3128', HTTP_PROXY: 'http://127.0.0.1:8080', NO_PROXY: 'internal.corp',
  });
  const choose = (url: string, explicit?: Parameters<typeof chooseEgressProxy>[1]) => chooseEgressProxy(new URL(url), explicit, environment, listener);

  assert.deepEqual(choose('https://127.0.0.1:8443/c'), { proxy: undefined, reason: 'loopback destination' });
  assert.deepEqual(choose('http://localhost:8000/c'), { proxy: undefined, reason: 'loopback destination' });
  const https = choose('https://lua5.logicnets.example/c');
  assert.equal(https.proxy?.host, 'proxy.corp:3128');
  assert.equal(https.reason, 'HTTPS_PROXY');
  assert.deepEqual(choose('https://api.internal.corp/c'), { proxy: undefined, reason: 'NO_PROXY lists api.internal.corp' });
  // HTTP_PROXY names the sidecar itself (exported for the app): ignored, reported.
  const http = choose('http://lua5.logicnets.example/c');
  assert.equal(http.proxy, undefined);
  assert.deepEqual(http.ignored, { origin: 'HTTP_PROXY', proxy: 'http://127.0.0.1:8080' });
  // An explicit setting wins over the environment, NO_PROXY included.
  const explicitProxy = { proxy: new URL('http://other.corp:3128'), origin: 'upstreams[0].egressProxy' };
  assert.equal(choose('https://api.internal.corp/c', explicitProxy).proxy?.host, 'other.corp:3128');
  assert.deepEqual(choose('https://lua5.logicnets.example/c', { direct: true, origin: 'LOGICNETS_EGRESS_PROXY' }),
    { proxy: undefined, reason: 'LOGICNETS_EGRESS_PROXY=none' });
  // HTTP_PROXY is never used for an https destination.
  assert.deepEqual(chooseEgressProxy(new URL('https://x.example'), undefined, readProxyEnvironment({ HTTP_PROXY: 'http://p:1' }), listener),
    { proxy: undefined, reason: 'no https_proxy set' });
});
