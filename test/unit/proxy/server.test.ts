import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { createProxyServer } from '../../../src/proxy/server.js';
import { ConfigError } from '../../../src/lib/errors.js';
import { createUpstreamAgent } from '../../../src/upstream-stack.js';
import { startEchoUpstream, generatedStream, generatedSha256 } from '../../helpers/echo-upstream.js';
import type { EchoUpstream, EchoUpstreamOptions } from '../../helpers/echo-upstream.js';
import { proxyConfig, RecordingMetrics, send, startHarness, upstreamConfig } from '../../helpers/proxy-harness.js';
import type { Harness } from '../../helpers/proxy-harness.js';
import { StaticTokenSource, unavailable } from '../../helpers/static-token-source.js';
import { makeTestPki } from '../../helpers/tls.js';
import type { TestPki } from '../../helpers/tls.js';
import { makeLogSink } from '../../helpers/log-sink.js';
import { ManualClock } from '../../helpers/manual-clock.js';
import { waitUntil } from '../../helpers/wait-until.js';

type Echo = { method: string; url: string; headers: Record<string, string>; bodyBytes: number; bodySha256: string };

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

let pki: TestPki;
let upstream: EchoUpstream;
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  pki = makeTestPki();
  upstream = await startEchoUpstream({ tls: { cert: pki.serverCertPem, key: pki.serverKeyPem } });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await upstream.close();
  pki.cleanup();
});

/** A harness with one HTTPS upstream `https://localhost:<port>/co`. */
async function single(tokens = new StaticTokenSource('tok-1'), config: Parameters<typeof startHarness>[1] = {}): Promise<Harness> {
  const harness = await startHarness([{ name: 'co', url: `https://localhost:${upstream.port}/co`, tokens, ca: pki.caCertPem }], config);
  cleanups.push(() => harness.close());
  return harness;
}

describe('gateway mode', () => {
  test('forwards an origin-form request with the token, the upstream Host and Via, and logs one line', async () => {
    const tokens = new StaticTokenSource('tok-gateway');
    const h = await single(tokens);
    const res = await send(h.port, '/co/WebAPIExample/function_1?a=1&b=%20x', { headers: { 'x-request-id': 'req-42' } });
    assert.equal(res.status, 200);
    const echo = res.json<Echo>();
    assert.equal(echo.url, '/co/WebAPIExample/function_1?a=1&b=%20x');
    assert.equal(echo.headers.authorization, 'Bearer tok-gateway');
    assert.equal(echo.headers.host, `localhost:${upstream.port}`);
    assert.equal(echo.headers.via, '1.1 logicnets-token-proxy');
    assert.match(String(res.headers.via), /1\.1 logicnets-token-proxy$/);
    const lines = h.sink.entries().filter((e) => e.msg === 'request');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.requestId, 'req-42');
    assert.equal(lines[0]?.method, 'GET');
    assert.equal(lines[0]?.upstream, 'co');
    assert.equal(lines[0]?.path, '/co/WebAPIExample/function_1');
    assert.equal(lines[0]?.status, 200);
    assert.equal(typeof lines[0]?.durationMs, 'number');
    assert.equal(lines[0]?.level, 'info');
    assert.deepEqual(h.metrics.finished.map((m) => [m.upstream, m.code]), [['co', 200]]);
    assert.equal(h.proxy.inFlight(), 0);
  });

  test('a generated request id when the client sends none; dot-segments resolved before sending', async () => {
    const h = await single();
    const res = await send(h.port, '/co/a/./b/../c');
    assert.equal(res.status, 200);
    assert.equal(res.json<Echo>().url, '/co/a/c');
    const line = h.sink.entries().find((e) => e.msg === 'request');
    assert.match(String(line?.requestId), /^[0-9a-f-]{36}$/);
  });

  // Regression: with one upstream, gateway mode forwarded any path, so a token reached paths
  // outside the company that `/co/../elsewhere` could not reach; both are refused now.
  test('with one upstream, a path outside its company is refused and gets no token', async () => {
    const tokens = new StaticTokenSource('tok-1');
    const h = await single(tokens);
    const res = await send(h.port, '/elsewhere/x?y=1');
    assert.equal(res.status, 403);
    assert.equal(res.json<{ error: string }>().error, 'destination_not_configured');
    assert.equal(tokens.tokenCalls + tokens.peekCalls, 0, 'the token source was never asked');
  });

  test('waits for the token source when no token is cached', async () => {
    const tokens = new StaticTokenSource('tok-late', { peekable: false });
    const h = await single(tokens);
    const answers = await Promise.all([send(h.port, '/co/1'), send(h.port, '/co/2')]);
    assert.deepEqual(answers.map((a) => a.status), [200, 200]);
    assert.equal(answers[0]?.json<Echo>().headers.authorization, 'Bearer tok-late');
    assert.equal(tokens.tokenCalls, 2);
  });

  test('upstream connections are kept alive and reused', async () => {
    const h = await single();
    const opened = upstream.connections();
    for (let i = 0; i < 5; i++) assert.equal((await send(h.port, `/co/keepalive/${i}`)).status, 200);
    assert.equal(upstream.connections() - opened, 1);
  });

  test('HEAD, DELETE and a 204 pass through', async () => {
    const h = await single();
    assert.equal((await send(h.port, '/co/x', { method: 'HEAD' })).status, 200);
    assert.equal((await send(h.port, '/co/x', { method: 'DELETE' })).status, 200);
    const noContent = await send(h.port, '/co/_status_204');
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body.length, 0);
  });
});

describe('forward-proxy mode', () => {
  test('an absolute-form http:// request goes to the https upstream, with and without a port', async () => {
    const tokens = new StaticTokenSource('tok-forward');
    const h = await single(tokens);
    const withPort = await send(h.port, `http://localhost:${upstream.port}/co/x?q=1`);
    assert.equal(withPort.status, 200);
    assert.equal(withPort.json<Echo>().url, '/co/x?q=1');
    assert.equal(withPort.json<Echo>().headers.authorization, 'Bearer tok-forward');
    const noPort = await send(h.port, 'http://LOCALHOST/co/y');
    assert.equal(noPort.status, 200);
    assert.equal(noPort.json<Echo>().url, '/co/y');
    assert.equal(noPort.json<Echo>().headers.host, `localhost:${upstream.port}`);
  });

  test('curl -x uses the sidecar as its HTTP proxy', { skip: spawnSync('curl', ['--version']).status !== 0 && 'curl is not installed' }, async () => {
    const h = await single(new StaticTokenSource('tok-curl'));
    const { stdout } = await promisify(execFile)('curl', ['-sS', '--noproxy', '', '-x', `http://127.0.0.1:${h.port}`,
      `http://localhost:${upstream.port}/co/curl?x=1`], { env: { ...process.env, NO_PROXY: '', no_proxy: '' } });
    const echo = JSON.parse(stdout) as Echo;
    assert.equal(echo.url, '/co/curl?x=1');
    assert.equal(echo.headers.authorization, 'Bearer tok-curl');
    assert.equal(echo.headers['proxy-connection'], undefined);
  });
});

describe('several upstreams', () => {
  test('two companies on one host each get their own token', async () => {
    const alpha = new StaticTokenSource('tok-alpha');
    const beta = new StaticTokenSource('tok-beta');
    const h = await startHarness([
      { name: 'alpha', url: `https://localhost:${upstream.port}/alpha`, tokens: alpha, ca: pki.caCertPem },
      { name: 'beta', url: `https://localhost:${upstream.port}/beta`, tokens: beta, ca: pki.caCertPem },
    ]);
    cleanups.push(() => h.close());
    const a = await send(h.port, '/alpha/x');
    const b = await send(h.port, `http://localhost:${upstream.port}/beta/y`);
    assert.equal(a.json<Echo>().headers.authorization, 'Bearer tok-alpha');
    assert.equal(b.json<Echo>().headers.authorization, 'Bearer tok-beta');
    assert.equal(b.json<Echo>().url, '/beta/y');
    const none = await send(h.port, '/gamma/x');
    assert.equal(none.status, 403);
    assert.equal(none.json().error, 'destination_not_configured');
  });

  test('two hosts (localhost and 127.0.0.1) route by host and port', async () => {
    const second = await startEchoUpstream({ tls: { cert: pki.serverCertPem, key: pki.serverKeyPem } });
    cleanups.push(() => second.close());
    const one = new StaticTokenSource('tok-one');
    const two = new StaticTokenSource('tok-two');
    const h = await startHarness([
      { name: 'one', url: `https://localhost:${upstream.port}/c1`, tokens: one, ca: pki.caCertPem },
      { name: 'two', url: `https://127.0.0.1:${second.port}/c2`, tokens: two, ca: pki.caCertPem },
    ]);
    cleanups.push(() => h.close());
    const before1 = upstream.requests.length;
    const r1 = await send(h.port, `http://localhost:${upstream.port}/c1/x`);
    const r2 = await send(h.port, `http://127.0.0.1:${second.port}/c2/x`);
    const r3 = await send(h.port, '/c2/gateway');
    assert.equal(r1.json<Echo>().headers.authorization, 'Bearer tok-one');
    assert.equal(r2.json<Echo>().headers.authorization, 'Bearer tok-two');
    assert.equal(r2.json<Echo>().headers.host, `127.0.0.1:${second.port}`);
    assert.equal(r3.json<Echo>().headers.authorization, 'Bearer tok-two');
    assert.equal(upstream.requests.length, before1 + 1);
    assert.equal(second.requests.length, 2);
    const wrongPort = await send(h.port, `http://localhost:${second.port}/c1/x`);
    assert.equal(wrongPort.status, 403);
    const wrongHost = await send(h.port, `http://127.0.0.1:${second.port}/c1/x`);
    assert.equal(wrongHost.status, 403);
  });

  test('one company on two hosts: gateway mode follows the Host header, and refuses a Host naming neither', async () => {
    const second = await startEchoUpstream({ tls: { cert: pki.serverCertPem, key: pki.serverKeyPem } });
    cleanups.push(() => second.close());
    const h = await startHarness([
      { name: 'lua5', url: `https://localhost:${upstream.port}/logicnets`, tokens: new StaticTokenSource('tok-lua5'), ca: pki.caCertPem },
      { name: 'lua6', url: `https://127.0.0.1:${second.port}/logicnets`, tokens: new StaticTokenSource('tok-lua6'), ca: pki.caCertPem },
    ]);
    cleanups.push(() => h.close());
    const info = h.sink.entries().find((e) => String(e.msg).includes('share a company path'));
    assert.deepEqual(info?.upstreams, ['lua5', 'lua6']);
    // A legacy app pointed at the sidecar through /etc/hosts names the installation (and the sidecar's port).
    const five = await send(h.port, '/logicnets/api/x?q=1', { headers: { host: 'LOCALHOST:8080' } });
    assert.equal(five.status, 200);
    assert.equal(five.json<Echo>().headers.authorization, 'Bearer tok-lua5');
    assert.equal(five.json<Echo>().headers.host, `localhost:${upstream.port}`);
    assert.equal(five.json<Echo>().url, '/logicnets/api/x?q=1');
    const six = await send(h.port, '/logicnets/api/y', { headers: { host: '127.0.0.1:8080' } });
    assert.equal(six.status, 200);
    assert.equal(six.json<Echo>().headers.authorization, 'Bearer tok-lua6');
    const reached = second.requests.length + upstream.requests.length;
    const neither = await send(h.port, '/logicnets/api/z', { headers: { host: 'sidecar.local:8080' } });
    assert.equal(neither.status, 400);
    assert.equal(neither.json().error, 'bad_request');
    assert.match(String(neither.json().message), /several upstreams: "lua5" \(localhost\), "lua6" \(127\.0\.0\.1\)/);
    assert.match(String(neither.json().message), /forward-proxy mode/);
    assert.match(String(neither.headers['proxy-status']), /error=http_request_error/);
    assert.equal(second.requests.length + upstream.requests.length, reached, 'a refused request reaches no upstream');
    // Forward-proxy mode names the host itself, whatever the Host header says.
    const forward = await send(h.port, `http://127.0.0.1:${second.port}/logicnets/api/w`, { headers: { host: 'sidecar.local:8080' } });
    assert.equal(forward.json<Echo>().headers.authorization, 'Bearer tok-lua6');
  });

  test('an ambiguous configuration is refused', () => {
    const tokens = new StaticTokenSource('t');
    assert.throws(() => createProxyServer({
      config: proxyConfig({ upstreamTimeout: 1, retryBodyLimit: 0 }),
      routes: [
        { upstream: upstreamConfig('a', 'https://h.example/co'), tokens, agent: new http.Agent(), freshAgent: new http.Agent() },
        { upstream: upstreamConfig('b', 'https://h.example:8443/co'), tokens, agent: new http.Agent(), freshAgent: new http.Agent() },
      ],
      logger: makeLogSink().logger,
      metrics: new RecordingMetrics(),
      clock: new ManualClock(),
    }), (error: unknown) => error instanceof ConfigError && /"a".*"b"/.test(error.message));
  });
});

describe('reused keep-alive connections the upstream closed', () => {
  /** A plain-HTTP upstream with `options`, and a proxy in front using the sidecar's real upstream agent. */
  async function withUpstream(options: EchoUpstreamOptions, idleTimeoutMs?: number): Promise<{ up: EchoUpstream; h: Harness }> {
    const up = await startEchoUpstream(options);
    cleanups.push(() => up.close());
    const url = `${up.origin}/co`;
    const h = await startHarness([{ name: 'co', url, tokens: new StaticTokenSource('tok-1'), agent: createUpstreamAgent(url, undefined, { idleTimeoutMs }) }]);
    cleanups.push(() => h.close());
    return { up, h };
  }

  test('a request reset on a reused connection before any answer is resent once on a new connection, body intact', async () => {
    const { up, h } = await withUpstream({ dropReusedConnections: true });
    assert.equal((await send(h.port, '/co/first')).status, 200);
    const again = await send(h.port, '/co/second?x=1');
    assert.equal(again.status, 200);
    assert.equal(again.json<Echo>().url, '/co/second?x=1');
    assert.equal(again.json<Echo>().headers.authorization, 'Bearer tok-1');
    // A PUT (idempotent) with a body of known length, on a reused connection again.
    assert.equal((await send(h.port, '/co/third')).status, 200);
    const body = Buffer.alloc(200_000, 7);
    const put = await send(h.port, '/co/upload', { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.status, 200);
    assert.equal(put.json<Echo>().bodyBytes, body.length);
    assert.equal(put.json<Echo>().bodySha256, sha256(body));
    assert.equal(up.dropped(), 2);
    assert.deepEqual(h.metrics.retries, ['co', 'co']);
    assert.deepEqual(h.metrics.finished.map((f) => f.code), [200, 200, 200, 200]);
    const resends = h.sink.entries().filter((e) => String(e.msg).includes('resending once on a new connection'));
    assert.equal(resends.length, 2);
  });

  // Regression: a POST reset on a reused connection was resent, though the upstream may have acted
  // on it before the reset; only idempotent methods are resent automatically (RFC 9110 9.2.2).
  test('a POST reset on a reused connection is answered 502, not resent', async () => {
    const { up, h } = await withUpstream({ dropReusedConnections: true });
    assert.equal((await send(h.port, '/co/first')).status, 200);
    const res = await send(h.port, '/co/order', { method: 'POST', body: 'x=1', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 502);
    assert.equal(res.json().error, 'upstream_reset');
    assert.equal(up.dropped(), 1);
    assert.deepEqual(h.metrics.retries, []);
  });

  test('a body of unknown length cannot be replayed: the reset is answered 502, not resent', async () => {
    const { up, h } = await withUpstream({ dropReusedConnections: true });
    assert.equal((await send(h.port, '/co/first')).status, 200);
    const res = await send(h.port, '/co/chunked', { method: 'PUT', body: generatedStream(10_000) });
    assert.equal(res.status, 502);
    assert.equal(res.json().error, 'upstream_reset');
    assert.match(String(res.headers['proxy-status']), /error=connection_terminated/);
    assert.equal(up.dropped(), 1);
    assert.deepEqual(h.metrics.retries, []);
  });

  test('an upstream closing idle connections after 50 ms without a Keep-Alive hint: requests spaced around it all succeed', async () => {
    const { up, h } = await withUpstream({ idleCloseMs: 50 });
    const gaps = [0, 45, 48, 50, 52, 55, 49, 51, 47, 53, 50, 50, 46, 54, 50, 50];
    const statuses: number[] = [];
    for (const gap of gaps) {
      await new Promise((resolve) => setTimeout(resolve, gap));
      statuses.push((await send(h.port, `/co/spaced/${gap}`)).status);
    }
    assert.deepEqual(statuses, gaps.map(() => 200));
    assert.equal(up.requests.length, gaps.length);
  });

  test('idle pooled connections are closed after the idle timeout; a slower answer on a reused one is not cut', async () => {
    const { up, h } = await withUpstream({}, 60);
    assert.equal((await send(h.port, '/co/warm')).status, 200);
    // The pooled connection is reused for an answer that takes longer than the idle timeout.
    const slow = await send(h.port, '/co/_delay?ms=250');
    assert.equal(slow.status, 200);
    assert.equal(slow.json().delayed, true);
    assert.equal(up.connections(), 1);
    await waitUntil(() => up.openConnections() === 0, 'the idle pooled connection is closed by the sidecar');
  });
});

describe('what is forwarded', () => {
  test('hop-by-hop request fields, including those named in Connection, are removed', async () => {
    const h = await single();
    const res = await send(h.port, '/co/hop', {
      headers: {
        connection: 'keep-alive, x-secret-hop', 'x-secret-hop': 'no', 'keep-alive': 'timeout=5', te: 'trailers',
        'proxy-connection': 'keep-alive', 'x-end-to-end': 'yes',
        'x-forwarded-for': '10.0.0.9',
      },
    });
    const seen = res.json<Echo>().headers;
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'proxy-connection', 'x-forwarded-proto', 'x-forwarded-host']) {
      assert.equal(seen[name], undefined, `${name} must not be forwarded`);
    }
    assert.equal(seen['x-end-to-end'], 'yes');
    assert.equal(seen['x-forwarded-for'], '10.0.0.9', 'a client X-Forwarded-For passes unchanged when X_FORWARDED is off');
  });

  test('X-Forwarded-* are added when configured', async () => {
    const h = await single(undefined, { xForwarded: true });
    const seen = (await send(h.port, '/co/xf', { headers: { 'x-forwarded-for': '10.0.0.9' } })).json<Echo>().headers;
    assert.equal(seen['x-forwarded-for'], '10.0.0.9, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], `127.0.0.1:${h.port}`);
  });

  test('hop-by-hop response fields are removed, end-to-end ones kept', async () => {
    const h = await single();
    const res = await send(h.port, '/co/_hop');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-hop-resp'], undefined);
    assert.equal(res.headers['proxy-authenticate'], undefined);
    assert.notEqual(res.headers['keep-alive'], 'timeout=5');
    assert.equal(res.headers['x-end-to-end'], 'passes');
    assert.equal(res.body.toString(), 'ok');
  });

  test('a request that already passed the sidecar is refused as a loop', async () => {
    const tokens = new StaticTokenSource('t');
    const h = await single(tokens);
    const res = await send(h.port, '/co/x', { headers: { via: '1.1 other, 1.1 logicnets-token-proxy' } });
    assert.equal(res.status, 502);
    assert.equal(res.json().error, 'loop_detected');
    assert.match(String(res.headers['proxy-status']), /error=proxy_loop_detected/);
    assert.equal(tokens.tokenCalls + tokens.peekCalls, 0);
  });

  test('a request that comes back into a sidecar (an upstream URL pointing at one) ends in 502', async () => {
    const tokens = new StaticTokenSource('t');
    const sink = makeLogSink('info');
    const agent = new http.Agent({ keepAlive: true });
    const proxy = createProxyServer({
      config: proxyConfig({ upstreamTimeout: 5, retryBodyLimit: 0 }),
      routes: [{ upstream: upstreamConfig('self', 'http://127.0.0.1:1/co'), tokens, agent, freshAgent: agent }],
      logger: sink.logger, metrics: new RecordingMetrics(), clock: new ManualClock(),
    });
    // Route URLs are fixed at construction, so the loop is closed through a second instance.
    const port = await proxy.listen(0, '127.0.0.1');
    const looping = createProxyServer({
      config: proxyConfig({ upstreamTimeout: 5, retryBodyLimit: 0 }),
      routes: [{ upstream: upstreamConfig('loop', `http://127.0.0.1:${port}/co`), tokens, agent, freshAgent: agent }],
      logger: sink.logger, metrics: new RecordingMetrics(), clock: new ManualClock(),
    });
    const loopPort = await looping.listen(0, '127.0.0.1');
    cleanups.push(async () => {
      for (const p of [proxy, looping]) {
        p.server.closeAllConnections();
        await p.close();
      }
      agent.destroy();
    });
    const res = await send(loopPort, '/co/x');
    assert.equal(res.status, 502);
    assert.equal(res.json().error, 'loop_detected');
  });

  test('Expect: 100-continue gets its 100 and the body, with the token injected', async () => {
    const h = await single(new StaticTokenSource('tok-expect'));
    const body = Buffer.from('expect me');
    const res = await new Promise<{ status: number; echo: Echo; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request({
        host: '127.0.0.1', port: h.port, method: 'POST', path: '/co/expect', agent: false,
        headers: { expect: '100-continue', 'content-length': body.length, authorization: 'Basic Y2xpZW50OnNlY3JldA==' },
      }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, echo: JSON.parse(Buffer.concat(chunks).toString()) as Echo, continued }));
      });
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('error', reject);
    });
    assert.equal(res.continued, true);
    assert.equal(res.status, 200);
    assert.equal(res.echo.headers.authorization, 'Bearer tok-expect');
    assert.equal(res.echo.headers.expect, undefined);
    assert.equal(res.echo.bodySha256, sha256(body));
  });

  test('Expect: 100-continue to an unconfigured destination is refused before the body is sent', async () => {
    const tokens = new StaticTokenSource('t');
    const h = await single(tokens);
    const result = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request({
        host: '127.0.0.1', port: h.port, method: 'POST', path: 'http://elsewhere.example/co/x', agent: false,
        headers: { expect: '100-continue', 'content-length': 4 },
      }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode ?? 0, continued }));
      });
      req.on('continue', () => {
        continued = true;
        req.end('body');
      });
      req.on('error', reject);
    });
    assert.equal(result.status, 403);
    assert.equal(result.continued, false);
    assert.equal(tokens.tokenCalls + tokens.peekCalls, 0);
  });
});

describe('401 and 403 from the upstream', () => {
  test('a 401 invalidates the token and the request is resent once with a fresh one, body intact', async () => {
    const retrying = await startEchoUpstream({ tls: { cert: pki.serverCertPem, key: pki.serverKeyPem }, validTokens: new Set(['tok-fresh']) });
    cleanups.push(() => retrying.close());
    const tokens = new StaticTokenSource(['tok-stale', 'tok-fresh']);
    const h = await startHarness([{ name: 'r', url: `https://localhost:${retrying.port}/co`, tokens, ca: pki.caCertPem }]);
    cleanups.push(() => h.close());
    const body = Buffer.alloc(200_000, 'b');
    const res = await send(h.port, '/co/post', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 200);
    assert.equal(res.json<Echo>().headers.authorization, 'Bearer tok-fresh');
    assert.equal(res.json<Echo>().bodySha256, sha256(body));
    assert.equal(retrying.requests.length, 2);
    assert.equal(retrying.requests[0]?.headers.authorization, 'Bearer tok-stale');
    assert.equal(retrying.requests[0]?.bodySha256, sha256(body));
    assert.deepEqual(tokens.invalidations, ['tok-stale']);
    assert.deepEqual(h.metrics.retries, ['r']);
    assert.deepEqual(h.metrics.finished.map((m) => m.code), [200]);

    // A GET (no body) is replayable too; a second 401 is passed through, not retried again, and
    // its token is dropped as well.
    const stuck = new StaticTokenSource(['tok-x', 'tok-y']);
    const h2 = await startHarness([{ name: 'r2', url: `https://localhost:${retrying.port}/co`, tokens: stuck, ca: pki.caCertPem }]);
    cleanups.push(() => h2.close());
    const denied = await send(h2.port, '/co/get');
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['www-authenticate'], 'Bearer error="invalid_token"');
    assert.deepEqual(stuck.invalidations, ['tok-x', 'tok-y']);
    assert.equal(retrying.requests.length, 4);
  });

  test('a 401 that arrives while the body is still being sent: the resend carries the whole body', async () => {
    const early = await startEchoUpstream({
      tls: { cert: pki.serverCertPem, key: pki.serverKeyPem }, validTokens: new Set(['tok-fresh']), early401: true,
    });
    cleanups.push(() => early.close());
    const tokens = new StaticTokenSource(['tok-stale', 'tok-fresh']);
    const h = await startHarness([{ name: 'e', url: `https://localhost:${early.port}/co`, tokens, ca: pki.caCertPem }]);
    cleanups.push(() => h.close());
    const first = Buffer.alloc(100_000, 'x');
    const second = Buffer.alloc(150_000, 'y');
    const answer = await new Promise<{ status: number; echo: Echo }>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: h.port, method: 'PUT', path: '/co/early', agent: false,
        headers: { 'content-length': first.length + second.length },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, echo: JSON.parse(Buffer.concat(chunks).toString()) as Echo }));
      });
      req.on('error', reject);
      req.write(first);
      waitUntil(() => tokens.invalidations.length === 1, 'the first attempt is answered 401').then(() => req.end(second), reject);
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.echo.headers.authorization, 'Bearer tok-fresh');
    assert.equal(answer.echo.bodyBytes, first.length + second.length);
    assert.equal(answer.echo.bodySha256, sha256(Buffer.concat([first, second])));
    assert.equal(early.requests.length, 2);
  });

  test('a 401 for a body of unknown length or above the limit is passed through, and its token is still dropped', async () => {
    const retrying = await startEchoUpstream({ tls: { cert: pki.serverCertPem, key: pki.serverKeyPem }, validTokens: new Set(['tok-fresh']) });
    cleanups.push(() => retrying.close());
    const tokens = new StaticTokenSource(['tok-stale', 'tok-fresh']);
    const h = await startHarness([{ name: 'r', url: `https://localhost:${retrying.port}/co`, tokens, ca: pki.caCertPem }], { retryBodyLimit: 1000 });
    cleanups.push(() => h.close());
    const chunked = await send(h.port, '/co/chunked', { method: 'POST', body: generatedStream(5000) });
    assert.equal(chunked.status, 401);
    assert.equal(retrying.requests.length, 1);
    assert.equal(retrying.requests[0]?.headers['transfer-encoding'], 'chunked');
    assert.equal(retrying.requests[0]?.bodySha256, generatedSha256(5000));
    // The revoked token is gone: the next upload goes out with a new one.
    assert.deepEqual(tokens.invalidations, ['tok-stale']);
    const next = await send(h.port, '/co/chunked', { method: 'POST', body: generatedStream(5000) });
    assert.equal(next.status, 200);
    assert.equal(next.json<Echo>().headers.authorization, 'Bearer tok-fresh');

    const tooLarge = new StaticTokenSource(['tok-old', 'tok-fresh']);
    const h2 = await startHarness([{ name: 'r2', url: `https://localhost:${retrying.port}/co`, tokens: tooLarge, ca: pki.caCertPem }], { retryBodyLimit: 1000 });
    cleanups.push(() => h2.close());
    const large = await send(h2.port, '/co/large', { method: 'PUT', body: Buffer.alloc(1001) });
    assert.equal(large.status, 401);
    assert.deepEqual(tooLarge.invalidations, ['tok-old']);
    assert.equal((await send(h2.port, '/co/large', { method: 'PUT', body: Buffer.alloc(1001) })).status, 200);
  });

  test('a 401 the token source will not act on (its refresh floor) is passed through without a resend', async () => {
    const retrying = await startEchoUpstream({ tls: { cert: pki.serverCertPem, key: pki.serverKeyPem }, validTokens: new Set(['tok-fresh']) });
    cleanups.push(() => retrying.close());
    const tokens = new StaticTokenSource(['tok-stale', 'tok-fresh'], { keepOnInvalidate: true });
    const h = await startHarness([{ name: 'f', url: `https://localhost:${retrying.port}/co`, tokens, ca: pki.caCertPem }]);
    cleanups.push(() => h.close());
    for (let i = 0; i < 5; i++) assert.equal((await send(h.port, '/co/x', { method: 'POST', body: Buffer.alloc(10) })).status, 401);
    assert.equal(retrying.requests.length, 5, 'one upstream request per client request: no resend');
    assert.deepEqual(h.metrics.retries, []);
  });

  test('a 403 is passed through and the token kept', async () => {
    const tokens = new StaticTokenSource('tok-role');
    const h = await single(tokens);
    const res = await send(h.port, '/co/_status_403');
    assert.equal(res.status, 403);
    assert.equal(res.json<Echo>().url, '/co/_status_403');
    assert.deepEqual(tokens.invalidations, []);
  });
});

describe('errors the sidecar makes itself', () => {
  test('no token: 503 with Proxy-Status, Retry-After and JSON, never forwarded', async () => {
    const tokens = new StaticTokenSource('t');
    tokens.fail(unavailable(7));
    const h = await single(tokens);
    const count = upstream.requests.length;
    const res = await send(h.port, '/co/x');
    assert.equal(res.status, 503);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['retry-after'], '7');
    assert.match(String(res.headers['proxy-status']), /^logicnets-token-proxy; error=destination_unavailable; details="[^"]+"$/);
    assert.equal(res.json().error, 'token_unavailable');
    assert.equal(typeof res.json().message, 'string');
    assert.equal(upstream.requests.length, count);
  });

  test('upstream refused: 502 connection_refused', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const h = await startHarness([{ name: 'gone', url: `https://127.0.0.1:${port}/co`, tokens: new StaticTokenSource('t'), ca: pki.caCertPem }]);
    cleanups.push(() => h.close());
    const res = await send(h.port, '/co/x');
    assert.equal(res.status, 502);
    assert.equal(res.json().error, 'upstream_refused');
    assert.match(String(res.headers['proxy-status']), /error=connection_refused/);
    assert.doesNotMatch(res.body.toString(), /127\.0\.0\.1:\d+|at .*\.js/);
  });

  test('an untrusted upstream certificate: 502 tls_certificate_error', async () => {
    const h = await startHarness([{ name: 'untrusted', url: `https://localhost:${upstream.port}/co`, tokens: new StaticTokenSource('t') }]);
    cleanups.push(() => h.close());
    const res = await send(h.port, '/co/x');
    assert.equal(res.status, 502);
    assert.equal(res.json().error, 'upstream_tls');
    assert.match(String(res.headers['proxy-status']), /error=tls_certificate_error/);
  });

  test('slow upstream: 504 http_response_timeout', async () => {
    const h = await single(undefined, { upstreamTimeout: 0.2 });
    const res = await send(h.port, '/co/_slow');
    assert.equal(res.status, 504);
    assert.equal(res.json().error, 'upstream_timeout');
    assert.match(String(res.headers['proxy-status']), /error=http_response_timeout/);
    await waitUntil(() => upstream.requests.filter((r) => r.url === '/co/_slow').every((r) => r.closed), 'the slow upstream request is closed');
  });

  test('CONNECT is refused with 405 and a hint to use http:// URLs', async () => {
    const h = await single();
    const text = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(h.port, '127.0.0.1', () => {
        socket.write('CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n');
      });
      let data = '';
      socket.on('data', (chunk: Buffer) => { data += chunk.toString(); });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 405 /);
    assert.match(text, /proxy-status: logicnets-token-proxy; error=http_request_denied/i);
    assert.match(text, /"error":"connect_not_supported"/);
    assert.match(text, /http:\/\//);
  });

  test('an unparseable request target: 400', async () => {
    const h = await single();
    const text = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(h.port, '127.0.0.1', () => socket.write('GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let data = '';
      socket.on('data', (chunk: Buffer) => { data += chunk.toString(); });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"error":"bad_request"/);
  });

  test('a request Node cannot parse gets the same JSON 400 with Proxy-Status', async () => {
    const h = await single();
    const text = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(h.port, '127.0.0.1', () => socket.write('GET /co/x HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'));
      let data = '';
      socket.on('data', (chunk: Buffer) => { data += chunk.toString(); });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /proxy-status: logicnets-token-proxy; error=http_request_error/);
    assert.match(text, /"error":"bad_request"/);
  });
});

describe('streaming', () => {
  const SIZE = 32 * 1024 * 1024;

  test('a 32 MiB upload and a 32 MiB download arrive intact', async () => {
    const h = await single();
    const up = await send(h.port, '/co/upload', { method: 'POST', body: generatedStream(SIZE, 3), headers: { 'content-length': SIZE } });
    assert.equal(up.status, 200);
    assert.equal(up.json<Echo>().bodyBytes, SIZE);
    assert.equal(up.json<Echo>().bodySha256, generatedSha256(SIZE, 3));

    const hash = createHash('sha256');
    let bytes = 0;
    const status = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: h.port, path: `/co/_download?bytes=${SIZE}&seed=5`, agent: false }, (res) => {
        res.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk); });
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(status, 200);
    assert.equal(bytes, SIZE);
    assert.equal(hash.digest('hex'), generatedSha256(SIZE, 5));
  });

  test('a client that stops reading for longer than UPSTREAM_TIMEOUT still gets the whole download', async () => {
    const h = await single(undefined, { upstreamTimeout: 0.4 });
    const bytes = 64 * 1024 * 1024;
    const hash = createHash('sha256');
    let received = 0;
    const sent = upstream.requests.length;
    const status = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: h.port, path: `/co/_download?bytes=${bytes}&seed=9`, agent: false }, (res) => {
        res.once('data', () => {
          // Stop reading: back-pressure stalls the upstream connection far longer than UPSTREAM_TIMEOUT.
          res.pause();
          setTimeout(() => res.resume(), 1500);
        });
        res.on('data', (chunk: Buffer) => { received += chunk.length; hash.update(chunk); });
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(status, 200);
    assert.equal(received, bytes);
    assert.equal(hash.digest('hex'), generatedSha256(bytes, 9));
    assert.equal(upstream.requests.length, sent + 1);
  });

  test('an upstream connection that breaks mid-body cuts the client\'s response instead of leaving it hanging', async () => {
    const h = await single();
    const outcome = await new Promise<string>((resolve) => {
      // A bounded wait: a response left hanging is the failure this test looks for.
      setTimeout(() => resolve('still hanging after 5 s'), 5000).unref();
      http.get({ host: '127.0.0.1', port: h.port, path: '/co/_break', agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => { bytes += chunk.length; });
        res.on('end', () => resolve(`ended after ${bytes} bytes`));
        res.on('error', () => resolve(res.statusCode === 200 && bytes < 4 * 64 * 1024 ? 'cut' : `error after ${bytes} bytes`));
        res.on('close', () => setImmediate(() => resolve(res.complete ? 'complete' : 'cut')));
      }).on('error', () => resolve('request error'));
    });
    assert.equal(outcome, 'cut');
    await waitUntil(() => h.proxy.inFlight() === 0, 'the request is finished');
    assert.equal(h.metrics.finished.length, 1);
  });

  test('a client aborting mid-download closes the upstream request; nothing stays in flight', async () => {
    const h = await single();
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: h.port, path: '/co/_drip', agent: false }, (res) => {
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > 256 * 1024) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (error: NodeJS.ErrnoException) => { if (error.code !== 'ECONNRESET') reject(error); });
    });
    const drip = upstream.requests.filter((r) => r.url === '/co/_drip').at(-1);
    assert.ok(drip);
    await waitUntil(() => drip.closed, 'the upstream sees the download closed');
    assert.equal(drip.aborted, true);
    await waitUntil(() => h.proxy.inFlight() === 0, 'no request is in flight');
    const line = h.sink.entries().find((e) => e.msg === 'request' && e.path === '/co/_drip');
    assert.equal(line?.aborted, true);
  });

  test('a client aborting mid-upload closes the upstream request; nothing stays in flight', async () => {
    const h = await single();
    const count = upstream.requests.length;
    const socket = net.connect(h.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`POST /co/upload-abort HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
    socket.write(Buffer.alloc(512 * 1024, 1));
    await waitUntil(() => upstream.requests.length > count && (upstream.requests.at(-1)?.url === '/co/upload-abort'), 'the upload reaches the upstream');
    socket.destroy();
    const seen = upstream.requests.at(-1);
    assert.ok(seen);
    await waitUntil(() => seen.closed, 'the upstream sees the upload closed');
    assert.equal(seen.aborted, true);
    await waitUntil(() => h.proxy.inFlight() === 0, 'no request is in flight');
  });
});
