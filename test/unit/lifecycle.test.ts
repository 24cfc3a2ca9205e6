import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { systemClock } from '../../src/lib/clock.js';
import { Lifecycle, installSignalHandlers } from '../../src/lifecycle.js';
import type { Drainable } from '../../src/lifecycle.js';
import { requestText } from '../helpers/http-text.js';
import type { TextAnswer } from '../helpers/http-text.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';
import { makeLogSink } from '../helpers/log-sink.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A plain server as the lifecycle's drain target, owning its requests the way the proxy does
 * (src/proxy/server.ts; the proxy's side is covered end to end in test/e2e/drain.test.ts): here
 * the lifecycle's schedule is under test.
 */
function drainable(server: Server): Drainable {
  let closing = false;
  const inFlight = new Set<ServerResponse>();
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    inFlight.add(res);
    if (closing) res.setHeader('connection', 'close');
    res.once('close', () => inFlight.delete(res));
    res.once('finish', () => { if (closing) setImmediate(() => server.closeIdleConnections()); });
  });
  return {
    server,
    inFlight: () => inFlight.size,
    close: () => {
      closing = true;
      for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

/** A real server on 127.0.0.1:0 whose handler the test swaps; always closed at the end. */
async function startServer(t: { after(fn: () => void): void }, handler: Handler): Promise<{ server: Server; port: number; listener: Drainable }> {
  const server = createServer((req, res) => handler(req, res));
  const listener = drainable(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port, listener };
}

type Answer = TextAnswer;

function get(port: number, path: string, agent: Agent | false = false): Promise<Answer> {
  return requestText({ port, path, agent });
}

/** Waits (bounded) until `condition` holds, polling on the event loop. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** A deferred "release" for a slow handler. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => { open = resolve; });
  return { promise, open };
}

test('draining turns true at once and a second shutdown returns the same promise', async (t) => {
  const { server, listener } = await startServer(t, (_req, res) => res.end('ok'));
  const lifecycle = new Lifecycle({ clock: systemClock, logger: makeLogSink().logger, shutdownDelayMs: 0, shutdownTimeoutMs: 1000 });
  assert.equal(lifecycle.draining, false);
  const first = lifecycle.shutdown([{ listener }], 'test');
  assert.equal(lifecycle.draining, true);
  assert.equal(lifecycle.shutdown([], 'again'), first);
  await first;
  assert.equal(server.listening, false);
});

test('an in-flight request finishes with 200 after shutdown; new connections are refused', async (t) => {
  const release = gate();
  let received = 0;
  const { server, port, listener } = await startServer(t, (_req, res) => {
    received += 1;
    void release.promise.then(() => res.end('slow answer'));
  });
  const sink = makeLogSink();
  const lifecycle = new Lifecycle({ clock: systemClock, logger: sink.logger, shutdownDelayMs: 0, shutdownTimeoutMs: 10_000 });
  let closedAfterCut = false;
  const cleanup = { cleanup: 'done' };

  const agent = new Agent({ keepAlive: true, maxSockets: 1 }); // the client would keep the connection
  t.after(() => agent.destroy());
  const slow = get(port, '/slow', agent);
  await until(() => received === 1, 'the slow request arrived');
  const done = lifecycle.shutdown([{ listener, close: () => { closedAfterCut = !server.listening; Object.assign(cleanup, { ran: true }); return Promise.resolve(); } }], 'test');
  await until(() => !server.listening, 'the listener closed');

  await assert.rejects(get(port, '/new'), (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED');
  let resolved = false;
  void done.then(() => { resolved = true; });
  await flush();
  assert.equal(resolved, false, 'shutdown must wait for the request in flight');

  release.open();
  const answer = await slow;
  assert.equal(answer.status, 200);
  assert.equal(answer.body, 'slow answer');
  assert.equal(answer.headers.connection, 'close', 'a response in flight at close ends its connection');
  await done;
  assert.equal(closedAfterCut, true, 'the target close() runs after the listener closed');
  assert.deepEqual(cleanup, { cleanup: 'done', ran: true });
  assert.doesNotMatch(sink.text(), /cutting their connections/);
});

test('idle keep-alive connections are closed so shutdown does not wait for their timeout', { timeout: 10_000 }, async (t) => {
  const { server, port, listener } = await startServer(t, (_req, res) => res.end('ok'));
  server.keepAliveTimeout = 60_000;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  assert.equal((await get(port, '/one', agent)).status, 200);
  assert.equal(Object.keys(agent.freeSockets).length, 1, 'the connection stays open and idle');

  const sink = makeLogSink();
  const lifecycle = new Lifecycle({ clock: systemClock, logger: sink.logger, shutdownDelayMs: 0, shutdownTimeoutMs: 30_000 });
  await lifecycle.shutdown([{ listener }], 'test');
  assert.doesNotMatch(sink.text(), /cutting their connections/);
});

test('a keep-alive connection whose response ends after close is closed once idle', { timeout: 10_000 }, async (t) => {
  const release = gate();
  let received = 0;
  const { server, port, listener } = await startServer(t, (_req, res) => {
    received += 1;
    res.writeHead(200, { 'content-type': 'text/plain' }); // headers go out before shutdown: no Connection: close possible
    void release.promise.then(() => res.end('late'));
  });
  server.keepAliveTimeout = 60_000;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const sink = makeLogSink();
  const lifecycle = new Lifecycle({ clock: systemClock, logger: sink.logger, shutdownDelayMs: 0, shutdownTimeoutMs: 30_000 });

  const slow = get(port, '/slow', agent);
  await until(() => received === 1, 'the request arrived');
  const done = lifecycle.shutdown([{ listener }], 'test');
  await until(() => !server.listening, 'the listener closed');
  release.open();
  const answer = await slow;
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.connection, 'keep-alive');
  await done; // would wait for the 30 s timeout (and fail the test's 10 s) if the idle connection stayed open
  assert.doesNotMatch(sink.text(), /cutting their connections/);
});

test('a request that outlives the shutdown timeout is cut and shutdown still resolves', async (t) => {
  let received = 0;
  const { server, port, listener } = await startServer(t, () => { received += 1; /* never answers */ });
  const sink = makeLogSink();
  const lifecycle = new Lifecycle({ clock: systemClock, logger: sink.logger, shutdownDelayMs: 0, shutdownTimeoutMs: 50 });
  const hanging = get(port, '/hang');
  await until(() => received === 1, 'the request arrived');

  await lifecycle.shutdown([{ listener }], 'test');
  await assert.rejects(hanging, (error: NodeJS.ErrnoException) => error.code === 'ECONNRESET');
  assert.equal(server.listening, false);
  const cut = sink.entries().find((e) => String(e.msg).includes('cutting their connections'));
  assert.ok(cut, 'the cut is logged');
  assert.equal(cut.level, 'warn');
  assert.equal(cut.inFlight, 1);
  assert.equal(cut.connections, 1);
});

test('the drain delay keeps serving before the listener closes (real 50 ms delay, ordering only)', async (t) => {
  const events: string[] = [];
  const { server, port, listener } = await startServer(t, (_req, res) => {
    events.push('request served');
    res.end('ok');
  });
  server.on('close', () => events.push('listener closed'));
  const lifecycle = new Lifecycle({ clock: systemClock, logger: makeLogSink().logger, shutdownDelayMs: 50, shutdownTimeoutMs: 1000 });
  const done = lifecycle.shutdown([{ listener }], 'test');
  assert.equal(server.listening, true, 'still listening right after shutdown()');
  assert.equal((await get(port, '/during-delay')).status, 200);
  await done;
  assert.deepEqual(events, ['request served', 'listener closed']);
});

test('with a manual clock nothing closes until the delay has passed', async (t) => {
  const { server, port, listener } = await startServer(t, (_req, res) => res.end('ok'));
  const clock = new ManualClock();
  const lifecycle = new Lifecycle({ clock, logger: makeLogSink().logger, shutdownDelayMs: 10_000, shutdownTimeoutMs: 5000 });
  let resolved = false;
  const done = lifecycle.shutdown([{ listener }], 'test').then(() => { resolved = true; });

  await clock.advance(9_999);
  for (let i = 0; i < 3; i++) assert.equal((await get(port, `/r${i}`)).status, 200);
  assert.equal(server.listening, true);
  assert.equal(lifecycle.draining, true);

  await clock.advance(1);
  await until(() => resolved, 'shutdown resolved');
  await done;
  assert.equal(server.listening, false);
  assert.equal(clock.pendingTimers, 0, 'the timeout and the idle sweep are cancelled');
});

test('installSignalHandlers reports SIGTERM and SIGINT and uninstalls exactly its handlers', async () => {
  const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
  const seen: string[] = [];
  const uninstall = installSignalHandlers((signal) => seen.push(signal));
  assert.equal(process.listenerCount('SIGTERM'), before.term + 1);
  process.kill(process.pid, 'SIGTERM');
  await until(() => seen.length === 1, 'SIGTERM was handled');
  process.kill(process.pid, 'SIGINT');
  await until(() => seen.length === 2, 'SIGINT was handled');
  assert.deepEqual(seen, ['SIGTERM', 'SIGINT']);
  uninstall();
  assert.equal(process.listenerCount('SIGTERM'), before.term);
  assert.equal(process.listenerCount('SIGINT'), before.int);
});
