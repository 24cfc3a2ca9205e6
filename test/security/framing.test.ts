// Request smuggling through the sidecar, as a class. The invariant: whatever bytes a client sends,
// the upstream parses exactly the requests the sidecar forwarded, each exactly once, with the
// client's method, its own path (inside the company) and its body byte for byte; a request the
// sidecar refuses reaches the upstream not at all; no upstream request exists that no client
// request accounts for (a request smuggled inside another's body would be one), and none outside
// the company path. The upstream is a strict raw-socket parser that records every request on each
// pooled connection. Checked over a matrix (methods x body framings x Connection options in any
// letter case x header counts around the limit) and a seeded random generator of request shapes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rawExchange, startRawUpstream } from '../helpers/raw-http.js';
import type { RawUpstream } from '../helpers/raw-http.js';
import { startHarness } from '../helpers/proxy-harness.js';
import type { Harness } from '../helpers/proxy-harness.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { StaticTokenSource } from '../helpers/static-token-source.js';

const MAX_HEADER_COUNT = 40;

let upstream: RawUpstream;
let harness: Harness;
before(async () => {
  upstream = await startRawUpstream();
  harness = await startHarness([{ name: 'co', url: `http://127.0.0.1:${upstream.port}/co`, tokens: new StaticTokenSource('sidecar-token') }],
    { maxHeaderCount: MAX_HEADER_COUNT });
});
after(async () => {
  await harness.close();
  await upstream.close();
});

/** Bytes that parse as whole requests when a body is read as the next request, one of them left unfinished. */
const SMUGGLED = 'GET /admin/evil HTTP/1.1\r\nHost: x\r\n\r\nPOST /co/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n';

interface Framing {
  readonly name: string;
  /** Field lines (without CRLF) for the framing. */
  readonly fields: readonly string[];
  /** The encoded body bytes that follow the head. */
  encode(body: Buffer): Buffer;
}

const chunk = (body: Buffer, ext = ''): Buffer => {
  const half = Math.floor(body.length / 2);
  const parts = [body.subarray(0, half), body.subarray(half)].filter((p) => p.length > 0);
  return Buffer.concat([...parts.flatMap((p) => [Buffer.from(`${p.length.toString(16)}${ext}\r\n`), p, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')]);
};

const FRAMINGS: readonly Framing[] = [
  { name: 'none', fields: [], encode: () => Buffer.alloc(0) },
  { name: 'length', fields: ['Content-Length: LEN'], encode: (b) => b },
  { name: 'zero length with bytes after', fields: ['Content-Length: 0'], encode: () => Buffer.alloc(0) },
  { name: 'chunked', fields: ['Transfer-Encoding: chunked'], encode: (b) => chunk(b) },
  { name: 'Chunked with extensions', fields: ['Transfer-Encoding: Chunked'], encode: (b) => chunk(b, ';x=1') },
  { name: 'gzip, chunked', fields: ['Transfer-Encoding: gzip, chunked'], encode: (b) => chunk(b) },
  { name: 'chunked twice', fields: ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], encode: (b) => chunk(b) },
  { name: 'length and chunked', fields: ['Content-Length: LEN', 'Transfer-Encoding: chunked'], encode: (b) => chunk(b) },
  { name: 'two equal lengths', fields: ['Content-Length: LEN', 'Content-Length: LEN'], encode: (b) => b },
  { name: 'two lengths', fields: ['Content-Length: LEN', 'Content-Length: 1'], encode: (b) => b },
  { name: 'identity', fields: ['Transfer-Encoding: identity'], encode: (b) => b },
];

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'];

const CONNECTIONS = [
  undefined, 'keep-alive', 'close', 'content-length', 'Content-Length', 'TRANSFER-ENCODING', 'transfer-encoding, content-length',
  'host', 'Authorization, Via', 'keep-alive, x-case-note',
];

interface Shape {
  readonly method: string;
  readonly framing: Framing;
  readonly connection: string | undefined;
  /** Extra filler fields. */
  readonly fillers: number;
  readonly body: Buffer;
  /** Put the framing fields after the fillers (last in the block). */
  readonly framingLast: boolean;
}

let nextCase = 0;

/** Sends `shape` as raw bytes; returns the case's path and the status the client got. */
async function sendShape(shape: Shape): Promise<{ path: string; status: number; expectedBody: Buffer }> {
  const path = `/co/case-${++nextCase}`;
  const framingLines = shape.framing.fields.map((f) => f.replace('LEN', String(shape.body.length)));
  const fillers = Array.from({ length: shape.fillers }, (_, i) => `x-f${i}: ${i}`);
  const lines = [
    `${shape.method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${harness.port}`,
    ...(shape.connection === undefined ? [] : [`Connection: ${shape.connection}`]),
    ...(shape.framingLast ? [...fillers, ...framingLines] : [...framingLines, ...fillers]),
  ];
  const encoded = shape.framing.encode(shape.body);
  const bytes = Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), encoded, Buffer.from(SMUGGLED)]);
  const answer = await rawExchange(harness.port, bytes, { head: shape.method === 'HEAD' }).catch((error: Error) => {
    throw new Error(`${shape.method} ${shape.framing.name} Connection: ${shape.connection} fillers ${shape.fillers}: ${error.message}`);
  });
  return { path, status: answer.status, expectedBody: shape.framing.name === 'none' || shape.framing.name.startsWith('zero') ? Buffer.alloc(0) : shape.body };
}

/** Checks the invariant over every case sent so far. */
function checkInvariant(cases: readonly { path: string; status: number; expectedBody: Buffer; method: string }[]): void {
  assert.deepEqual(upstream.errors, [], 'the upstream parsed every byte it got as well-framed requests');
  const byPath = new Map<string, number>();
  for (const request of upstream.requests) {
    assert.ok(request.target.startsWith('/co/case-'), `a request no client sent reached the upstream: ${request.method} ${request.target}`);
    byPath.set(request.target, (byPath.get(request.target) ?? 0) + 1);
    const auth = request.fields.filter(([n]) => n === 'authorization');
    assert.deepEqual(auth.map(([, v]) => v), ['Bearer sidecar-token']);
  }
  for (const c of cases) {
    const seen = upstream.requests.filter((r) => r.target === c.path);
    if (c.status >= 200 && c.status < 300) {
      assert.equal(seen.length, 1, `${c.method} ${c.path} answered ${c.status} must reach the upstream exactly once`);
      assert.equal(seen[0]!.method, c.method);
      assert.equal(seen[0]!.body.toString('latin1'), c.expectedBody.toString('latin1'), `${c.path}: the body arrives unchanged`);
    } else {
      assert.ok(c.status >= 400, `${c.path}: ${c.status}`);
      assert.equal(seen.length, 0, `${c.method} ${c.path} refused with ${c.status} must not reach the upstream`);
    }
  }
}

describe('request framing', () => {
  test('methods x framings x Connection options: the upstream sees exactly what the client sent, nothing smuggled', async () => {
    const cases: { path: string; status: number; expectedBody: Buffer; method: string; framing: string; connection?: string }[] = [];
    const body = Buffer.from(`payload with a request inside: ${SMUGGLED}`);
    for (const method of METHODS) {
      for (const framing of FRAMINGS) {
        for (const connection of CONNECTIONS) {
          const result = await sendShape({ method, framing, connection, fillers: 0, body, framingLast: false });
          cases.push({ ...result, method, framing: framing.name, connection });
        }
      }
    }
    checkInvariant(cases);
    // The status for a method and framing, the same whatever the Connection options say.
    const status = (method: string, framing: string): number => {
      const statuses = new Set(cases.filter((c) => c.method === method && c.framing === framing).map((c) => c.status));
      assert.equal(statuses.size, 1, `${method} ${framing}: one answer whatever Connection names (${[...statuses].join(', ')})`);
      return [...statuses][0]!;
    };
    // What is forwarded and what is refused, consistently for every method.
    for (const method of METHODS.filter((m) => m !== 'TRACE')) {
      assert.equal(status(method, 'length'), 200, `${method} with a Content-Length body is forwarded`);
      assert.equal(status(method, 'chunked'), 200, `${method} with a chunked body is forwarded`);
      assert.equal(status(method, 'gzip, chunked'), 501, `${method} with gzip, chunked is refused`);
      assert.equal(status(method, 'two equal lengths'), 400);
    }
    assert.ok(cases.filter((c) => c.method === 'TRACE').every((c) => c.status === 405 || c.status === 400), 'TRACE is never forwarded');
  });

  test('header counts around MAX_HEADER_COUNT, the framing field last: a block the sidecar cannot see whole is refused', async () => {
    const cases: { path: string; status: number; expectedBody: Buffer; method: string }[] = [];
    const body = Buffer.from(`x${SMUGGLED}`);
    const counts = [MAX_HEADER_COUNT - 5, MAX_HEADER_COUNT - 3, MAX_HEADER_COUNT - 2, MAX_HEADER_COUNT - 1, MAX_HEADER_COUNT, MAX_HEADER_COUNT + 5, 1200];
    for (const fillers of counts) {
      for (const method of ['GET', 'DELETE', 'POST']) {
        for (const framing of FRAMINGS.filter((f) => f.name === 'length' || f.name === 'chunked')) {
          for (const connection of [undefined, 'content-length']) {
            const result = await sendShape({ method, framing, connection, fillers, body, framingLast: true });
            cases.push({ ...result, method });
            // Fields: request line aside, Host + Connection? + fillers + the framing field.
            const total = 1 + (connection === undefined ? 0 : 1) + fillers + 1;
            if (total > MAX_HEADER_COUNT) assert.equal(result.status, 431, `${total} fields are refused`);
            else assert.equal(result.status, 200, `${total} fields are forwarded`);
          }
        }
      }
    }
    checkInvariant(cases);
  });

  test('a seeded random generator of 400 request shapes keeps the invariant', async () => {
    const random = seededRandom(0x5eed1234);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const flipCase = (text: string): string => [...text].map((c) => (random() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
    const tokens = ['keep-alive', 'close', 'content-length', 'transfer-encoding', 'host', 'authorization', 'via', 'te', 'x-other', 'upgrade'];
    const cases: { path: string; status: number; expectedBody: Buffer; method: string }[] = [];
    for (let i = 0; i < 400; i++) {
      const connection = random() < 0.3 ? undefined
        : Array.from({ length: 1 + Math.floor(random() * 3) }, () => flipCase(pick(tokens))).join(random() < 0.5 ? ', ' : ',');
      const size = Math.floor(random() * 3) === 0 ? 0 : Math.floor(random() * 3000);
      const body = Buffer.from(Array.from({ length: size }, (_, k) => (k % 97 === 0 ? SMUGGLED : String.fromCharCode(97 + (k % 26)))).join('').slice(0, size || 0));
      const framing = pick(FRAMINGS);
      const shape: Shape = {
        method: pick(METHODS), framing, connection, fillers: random() < 0.2 ? MAX_HEADER_COUNT - 4 + Math.floor(random() * 8) : Math.floor(random() * 5),
        body: body.length === 0 && framing.name !== 'none' ? Buffer.from('z') : body, framingLast: random() < 0.5,
      };
      const result = await sendShape(shape);
      cases.push({ ...result, method: shape.method });
    }
    checkInvariant(cases);
    assert.ok(cases.filter((c) => c.status === 200).length > 100, 'the generator also makes many forwardable requests');
  });
});
