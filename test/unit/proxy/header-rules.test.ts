import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionOptions, forwardRequestHeaders, forwardResponseHeaders, isLoop, VIA_PSEUDONYM } from '../../../src/proxy/header-rules.js';

const base = {
  host: 'lua5.logicnets.local', authorization: 'Bearer sidecar-token', httpVersion: '1.1', xForwarded: false, remoteAddress: '127.0.0.1',
  method: 'GET', bodyLength: 0, requestId: 'rid-1',
};

describe('forwardRequestHeaders', () => {
  test('drops hop-by-hop fields and those named in Connection; keeps end-to-end ones', () => {
    const out = forwardRequestHeaders({
      connection: 'keep-alive, X-Custom-Hop', 'x-custom-hop': '1', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive',
      te: 'trailers', upgrade: 'websocket', trailer: 'x-t', 'proxy-authenticate': 'Basic', accept: 'application/json',
      'content-type': 'text/plain', 'content-length': '4', 'x-request-id': 'r1',
    }, { ...base, method: 'POST', bodyLength: 4 });
    assert.deepEqual(out, {
      accept: 'application/json', 'content-type': 'text/plain', 'content-length': 4, 'x-request-id': 'rid-1',
      host: 'lua5.logicnets.local', authorization: 'Bearer sidecar-token', via: `1.1 ${VIA_PSEUDONYM}`,
    });
  });

  test('replaces the client\'s Authorization and drops Proxy-Authorization, Host and Expect', () => {
    const incoming = { authorization: 'Basic dXNlcjpwdw==', 'proxy-authorization': 'Basic cHJveHk=', host: 'localhost:8080', expect: '100-continue' };
    const out = forwardRequestHeaders(incoming, base);
    assert.equal(out.authorization, 'Bearer sidecar-token');
    assert.equal(out['proxy-authorization'], undefined);
    assert.equal(out.host, 'lua5.logicnets.local');
    assert.equal(out.expect, undefined);
    assert.equal(incoming.authorization, 'Basic dXNlcjpwdw==', 'the incoming object is not changed');
  });

  test('Via is appended to, with the client\'s protocol version', () => {
    assert.equal(forwardRequestHeaders({ via: '1.1 gateway' }, base).via, `1.1 gateway, 1.1 ${VIA_PSEUDONYM}`);
    assert.equal(forwardRequestHeaders({}, { ...base, httpVersion: '1.0' }).via, `1.0 ${VIA_PSEUDONYM}`);
  });

  test('the framing is the sidecar\'s: never copied from the client, exactly one of length, chunked or none', () => {
    const client = { 'transfer-encoding': 'gzip', 'content-length': '999', connection: 'content-length' };
    const chunked = forwardRequestHeaders(client, { ...base, bodyLength: -1 });
    assert.equal(chunked['transfer-encoding'], 'chunked');
    assert.equal(chunked['content-length'], undefined);
    const sized = forwardRequestHeaders(client, { ...base, method: 'DELETE', bodyLength: 12 });
    assert.equal(sized['content-length'], 12);
    assert.equal(sized['transfer-encoding'], undefined);
    for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS']) {
      const none = forwardRequestHeaders(client, { ...base, method, bodyLength: 0 });
      assert.equal(none['content-length'], undefined, method);
      assert.equal(none['transfer-encoding'], undefined, method);
    }
    for (const method of ['POST', 'PUT', 'PATCH']) {
      assert.equal(forwardRequestHeaders(client, { ...base, method, bodyLength: 0 })['content-length'], 0, method);
    }
  });

  test('X-Forwarded-* only when configured', () => {
    const incoming = { host: 'localhost:8080', 'x-forwarded-for': '10.1.1.1' };
    const off = forwardRequestHeaders(incoming, base);
    assert.equal(off['x-forwarded-for'], '10.1.1.1');
    assert.equal(off['x-forwarded-proto'], undefined);
    assert.equal(off['x-forwarded-host'], undefined);
    const on = forwardRequestHeaders(incoming, { ...base, xForwarded: true });
    assert.equal(on['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
    assert.equal(on['x-forwarded-proto'], 'http');
    assert.equal(on['x-forwarded-host'], 'localhost:8080');
  });
});

describe('forwardResponseHeaders', () => {
  test('drops hop-by-hop fields and those named in Connection, adds Via', () => {
    const out = forwardResponseHeaders({
      connection: 'close, x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked',
      'proxy-authenticate': 'Basic', 'www-authenticate': 'Bearer error="invalid_token"', 'set-cookie': ['a=1', 'b=2'],
      'content-type': 'application/json', 'x-request-id': 'upstream-id',
    }, 'rid-1');
    assert.deepEqual(out, {
      'www-authenticate': 'Bearer error="invalid_token"', 'set-cookie': ['a=1', 'b=2'], 'content-type': 'application/json',
      'x-request-id': 'rid-1', via: `1.1 ${VIA_PSEUDONYM}`,
    });
  });
});

describe('connectionOptions', () => {
  test('parses the field names a Connection value lists', () => {
    assert.equal(connectionOptions(undefined), undefined);
    assert.equal(connectionOptions('keep-alive'), undefined);
    assert.equal(connectionOptions(' Close '), undefined);
    assert.deepEqual([...connectionOptions('Keep-Alive, X-A ,x-b,')!], ['keep-alive', 'x-a', 'x-b']);
  });
});

describe('isLoop', () => {
  test('detects the sidecar\'s own pseudonym as a received-by entry', () => {
    assert.equal(isLoop(undefined), false);
    assert.equal(isLoop('1.1 gateway'), false);
    assert.equal(isLoop(`1.1 ${VIA_PSEUDONYM}`), true);
    assert.equal(isLoop(`1.0 fred, 1.1 ${VIA_PSEUDONYM.toUpperCase()} (comment)`), true);
    assert.equal(isLoop(`1.1 gateway (saw ${VIA_PSEUDONYM}-ish)`), false);
    assert.equal(isLoop(`1.1 ${VIA_PSEUDONYM}-other`), false);
  });
});
