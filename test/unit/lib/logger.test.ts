import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createLogger, RequestLog } from '../../../src/lib/logger.js';
import type { RequestLine } from '../../../src/lib/logger.js';

/** A logger writing into memory, counting the destination's write calls. */
function memoryLogger(level: 'info' | 'warn' = 'info'): { logger: ReturnType<typeof createLogger>; chunks: string[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: createLogger({ level, destination }), chunks };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const withoutTime = (line: string): Record<string, unknown> => {
  const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  assert.match(String(time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return rest;
};

describe('RequestLog', () => {
  test('writes what pino writes for the same fields: bindings, order, escaping, aborted, non-finite durations', async () => {
    const lines: RequestLine[] = [
      { requestId: 'r-1', method: 'GET', path: '/co/a', status: 200, durationMs: 1.25, aborted: false },
      { requestId: 'quote " back \\ nl \n é \u2028', method: undefined, path: '/co/ü"x', status: 499, durationMs: 0, aborted: true },
      { requestId: 'r-3', method: 'POST', path: '/', status: 502, durationMs: Number.NaN, aborted: false },
    ];
    const fast = memoryLogger();
    const slow = memoryLogger();
    const fastLog = new RequestLog(fast.logger.child({ component: 'proxy' }).child({ upstream: 'up "1"' }));
    const slowLog = slow.logger.child({ component: 'proxy' }).child({ upstream: 'up "1"' });
    for (const line of lines) {
      fastLog.write(line);
      slowLog.info({ ...line, aborted: line.aborted ? true : undefined }, 'request');
    }
    await turn();
    const fastLines = fast.chunks.join('').split('\n').filter(Boolean);
    const slowLines = slow.chunks.join('').split('\n').filter(Boolean);
    assert.equal(fastLines.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(withoutTime(fastLines[i] as string), withoutTime(slowLines[i] as string));
      // Same key order as pino, too.
      assert.deepEqual(Object.keys(JSON.parse(fastLines[i] as string) as object), Object.keys(JSON.parse(slowLines[i] as string) as object));
    }
  });

  test('the lines of one event-loop turn reach the destination in one write, in order', async () => {
    const { logger, chunks } = memoryLogger();
    const log = new RequestLog(logger);
    for (let i = 0; i < 50; i++) log.write({ requestId: `r${i}`, method: 'GET', path: '/p', status: 200, durationMs: i, aborted: false });
    assert.equal(chunks.length, 0, 'nothing is written before the turn ends');
    await turn();
    assert.equal(chunks.length, 1);
    assert.deepEqual(chunks.join('').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { requestId: string }).requestId),
      Array.from({ length: 50 }, (_, i) => `r${i}`));
    log.write({ requestId: 'late', method: 'GET', path: '/p', status: 200, durationMs: 1, aborted: false });
    log.flush();
    assert.equal(chunks.length, 2, 'flush() writes at once');
    await turn();
    assert.equal(chunks.length, 2, 'and nothing twice');
  });

  test('writes nothing when info is not enabled', async () => {
    const { logger, chunks } = memoryLogger('warn');
    new RequestLog(logger).write({ requestId: 'r', method: 'GET', path: '/p', status: 200, durationMs: 1, aborted: false });
    await turn();
    assert.deepEqual(chunks, []);
  });

  test('a logger not made by createLogger: the lines are dropped with a warning, no private pino field is read', async () => {
    const chunks: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk.toString('utf8'));
        callback();
      },
    });
    const log = new RequestLog(pino({ level: 'info' }, destination).child({ component: 'proxy' }));
    log.write({ requestId: 'r', method: 'GET', path: '/p', status: 200, durationMs: 1, aborted: false });
    await turn();
    assert.equal(chunks.length, 1);
    assert.match(chunks[0]!, /no destination stream/);
    assert.doesNotMatch(chunks[0]!, /"requestId"/);
  });
});
