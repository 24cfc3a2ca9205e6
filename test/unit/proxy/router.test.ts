import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, ProxyError } from '../../../src/lib/errors.js';
import { checkRoutesUnambiguous, normalisePath, Router } from '../../../src/proxy/router.js';
import type { RouteMatch } from '../../../src/proxy/router.js';

type R = { upstream: { name: string; url: string } };
const route = (name: string, url: string): R => ({ upstream: { name, url } });

function ok(result: RouteMatch<R> | ProxyError): RouteMatch<R> {
  if (result instanceof ProxyError) assert.fail(`expected a match, got ${result.code}: ${result.message}`);
  return result;
}

function refused(result: RouteMatch<R> | ProxyError, code: string, status: number): ProxyError {
  assert.ok(result instanceof ProxyError, `expected ${code}, got a match to ${result instanceof ProxyError ? '' : result.route.upstream.name}`);
  assert.equal(result.code, code);
  assert.equal(result.status, status);
  return result;
}

describe('normalisePath', () => {
  const cases: [string, string][] = [
    ['/logicnets/a/b', '/logicnets/a/b'],
    ['/logicnets/./a', '/logicnets/a'],
    ['/logicnets/a/../b', '/logicnets/b'],
    ['/logicnets/a/..', '/logicnets/'],
    ['/logicnets/a/.', '/logicnets/a/'],
    ['/logicnets//a/../b', '/logicnets//b'],
    ['/logicnets/%7Euser/%41', '/logicnets/~user/A'],
    ['/logicnets/a%20b/%C3%A9', '/logicnets/a%20b/%C3%A9'],
    ['/logicnets/.well-known', '/logicnets/.well-known'],
    ['/', '/'],
  ];
  for (const [input, expected] of cases) {
    test(`${input} -> ${expected}`, () => assert.equal(normalisePath(input), expected));
  }

  const refusedCases = ['/..', '/a/../..', '/a/%2Fb', '/a/%2fb', '/a/%5Cb', '/a\\b', '/a/%00', '/a/%2e%2e/b', '/a/%2E/b',
    '/a/.%2e/b', '/a/%zz', '/a/%4', 'relative'];
  for (const input of refusedCases) {
    test(`${input} is refused (400)`, () => {
      const result = normalisePath(input);
      assert.ok(result instanceof ProxyError);
      assert.equal(result.code, 'bad_request');
      assert.equal(result.status, 400);
    });
  }
});

describe('gateway mode', () => {
  const router = new Router([route('a', 'https://h.example/alpha'), route('b', 'https://h.example/beta/sub')]);

  test('the upstream whose company prefixes the path, path and query unchanged', () => {
    const m = ok(router.match('/alpha/x?q=%2F..&r=1'));
    assert.equal(m.kind, 'gateway');
    assert.equal(m.route.upstream.name, 'a');
    assert.equal(m.path, '/alpha/x?q=%2F..&r=1');
    assert.equal(ok(router.match('/alpha')).route.upstream.name, 'a');
    assert.equal(ok(router.match('/beta/sub/y')).route.upstream.name, 'b');
  });

  test('prefixes only count on a segment boundary', () => {
    refused(router.match('/alphabet/x'), 'destination_not_configured', 403);
    refused(router.match('/beta/x'), 'destination_not_configured', 403);
  });

  test('dot-segments cannot leave the company path', () => {
    refused(router.match('/alpha/../beta/sub/x'), 'bad_request', 400);
    refused(router.match('/alpha/x/../../beta/sub'), 'bad_request', 400);
    assert.equal(ok(router.match('/alpha/x/../y?z')).path, '/alpha/y?z');
    // Dot-segments with path parameters, which servlet containers read as dot-segments.
    for (const path of ['/alpha/..;/beta/sub', '/alpha/..;x=1/beta', '/alpha/.;/x', '/alpha/%2e%2e;/beta', '/alpha/x/..;']) {
      refused(router.match(path), 'bad_request', 400);
    }
    assert.equal(ok(router.match('/alpha/x;v=1/..a;b')).path, '/alpha/x;v=1/..a;b', 'other parameters pass');
  });

  test('with one upstream, its company path still bounds what goes to it', () => {
    const one = new Router([route('only', 'https://h.example/logicnets')]);
    assert.equal(ok(one.match('/logicnets/x?y')).route.upstream.name, 'only');
    refused(one.match('/other/x?y'), 'destination_not_configured', 403);
    refused(one.match('/logicnets/../other'), 'bad_request', 400);
  });

  test('a root upstream takes what no company claims', () => {
    const r = new Router([route('root', 'https://a.example'), route('co', 'https://b.example/co')]);
    assert.equal(ok(r.match('/co/x')).route.upstream.name, 'co');
    assert.equal(ok(r.match('/x')).route.upstream.name, 'root');
  });

  test('the same company on two hosts: the Host header picks the upstream, whatever its port', () => {
    const r = new Router([route('first', 'https://a.example/co'), route('second', 'https://B.example:8443/co'), route('other', 'https://c.example/x')]);
    assert.deepEqual(r.sharedCompanies, ['/co']);
    assert.equal(ok(r.match('/co/x', 'a.example')).route.upstream.name, 'first');
    assert.equal(ok(r.match('/co/x?q=1', 'b.EXAMPLE:8080')).route.upstream.name, 'second');
    assert.equal(ok(r.match('/co/x?q=1', 'b.example:8080')).path, '/co/x?q=1');
    assert.equal(ok(r.match('http://b.example/co/x')).route.upstream.name, 'second');
    // A company served by one upstream ignores Host, as before.
    assert.equal(ok(r.match('/x/y', 'a.example')).route.upstream.name, 'other');
  });

  test('the same company on two hosts and a Host naming neither: 400 naming both upstreams', () => {
    const r = new Router([route('first', 'https://a.example/co'), route('second', 'https://b.example/co')]);
    for (const host of ['127.0.0.1:8080', undefined, 'c.example', '']) {
      const error = refused(r.match('/co/x', host), 'bad_request', 400);
      assert.match(error.message, /several upstreams/);
      assert.match(error.message, /"first" \(a\.example\)/);
      assert.match(error.message, /"second" \(b\.example\)/);
      assert.match(error.message, /forward-proxy mode/);
      assert.match(error.message, /Host header/);
    }
    refused(r.match('/other', 'a.example'), 'destination_not_configured', 403);
    assert.deepEqual(new Router([route('a', 'https://a.example/co')]).sharedCompanies, []);
  });
});

describe('forward-proxy mode', () => {
  const router = new Router([
    route('one', 'https://lua5.logicnets.local/logicnets'),
    route('two', 'https://lua5.logicnets.local/other'),
    route('three', 'https://127.0.0.1:8443/co'),
  ]);

  test('matches host (case-insensitively) and company', () => {
    const m = ok(router.match('http://LUA5.logicnets.local/logicnets/WebAPIExample/function_1?x=1'));
    assert.equal(m.kind, 'forward');
    assert.equal(m.route.upstream.name, 'one');
    assert.equal(m.path, '/logicnets/WebAPIExample/function_1?x=1');
    assert.equal(ok(router.match('http://lua5.logicnets.local/other')).route.upstream.name, 'two');
    assert.equal(ok(router.match('http://lua5.logicnets.local/other')).path, '/other');
  });

  test('a request naming no port, or the default one, matches whatever the upstream port', () => {
    assert.equal(ok(router.match('http://127.0.0.1/co/x')).route.upstream.name, 'three');
    assert.equal(ok(router.match('http://127.0.0.1:80/co/x')).route.upstream.name, 'three');
    assert.equal(ok(router.match('http://127.0.0.1:8443/co/x')).route.upstream.name, 'three');
    assert.equal(ok(router.match('https://lua5.logicnets.local:443/logicnets/x')).route.upstream.name, 'one');
    assert.equal(ok(router.match('http://lua5.logicnets.local:443/logicnets/x')).route.upstream.name, 'one');
  });

  test('a named port must be the upstream\'s', () => {
    refused(router.match('http://127.0.0.1:8080/co/x'), 'destination_not_configured', 403);
  });

  test('unknown hosts and paths outside every company are refused', () => {
    refused(router.match('http://evil.example/logicnets/x'), 'destination_not_configured', 403);
    refused(router.match('http://lua5.logicnets.local/'), 'destination_not_configured', 403);
    refused(router.match('http://lua5.logicnets.local'), 'destination_not_configured', 403);
    refused(router.match('http://lua5.logicnets.local/logicnetsX/y'), 'destination_not_configured', 403);
  });

  test('normalisation applies, and cannot move between companies', () => {
    refused(router.match('http://lua5.logicnets.local/logicnets/../other/x'), 'bad_request', 400);
    refused(router.match('http://lua5.logicnets.local/logicnets/%2e%2e/other/x'), 'bad_request', 400);
    refused(router.match('http://lua5.logicnets.local/logicnets%2F..%2Fother/x'), 'bad_request', 400);
    assert.equal(ok(router.match('http://lua5.logicnets.local/logicnets/a/../b')).path, '/logicnets/b');
  });

  test('credentials in the URL, bad ports and other targets are refused as bad requests', () => {
    refused(router.match('http://user:pw@lua5.logicnets.local/logicnets/x'), 'bad_request', 400);
    refused(router.match('http://lua5.logicnets.local:99999/logicnets/x'), 'bad_request', 400);
    refused(router.match('ftp://lua5.logicnets.local/logicnets/x'), 'bad_request', 400);
    refused(router.match('*'), 'bad_request', 400);
    refused(router.match('lua5.logicnets.local:443'), 'bad_request', 400);
  });

  test('IPv6 hosts', () => {
    const r = new Router([route('v6', 'https://[::1]:8443/co')]);
    assert.equal(ok(r.match('http://[::1]/co/x')).route.upstream.name, 'v6');
    refused(r.match('http://[::2]/co/x'), 'destination_not_configured', 403);
  });
});

describe('checkRoutesUnambiguous', () => {
  test('accepts distinct hosts, and distinct companies on one host', () => {
    checkRoutesUnambiguous([
      { name: 'a', url: 'https://a.example/co' },
      { name: 'b', url: 'https://b.example/co' },
      { name: 'c', url: 'https://a.example/other' },
    ]);
  });

  for (const [a, b] of [
    ['https://h.example/co', 'https://h.example/co'],
    ['https://h.example/co', 'https://h.example:8443/co/'],
    ['https://h.example/co', 'https://h.example/co/sub'],
    ['https://h.example', 'https://h.example/co'],
    ['https://H.example/co', 'http://h.example/co'],
  ] as const) {
    test(`refuses ${a} with ${b}, naming both`, () => {
      assert.throws(() => checkRoutesUnambiguous([{ name: 'first', url: a }, { name: 'second', url: b }]),
        (error: unknown) => error instanceof ConfigError && error.problems.length === 1
          && error.problems[0]!.includes('"first"') && error.problems[0]!.includes('"second"'));
    });
  }

  test('the Router constructor refuses an ambiguous configuration', () => {
    assert.throws(() => new Router([route('x', 'https://h.example/co'), route('y', 'https://h.example/co')]), ConfigError);
  });

  test('refuses a URL that is not http(s)', () => {
    assert.throws(() => checkRoutesUnambiguous([{ name: 'f', url: 'ftp://h.example/co' }]), ConfigError);
  });
});
