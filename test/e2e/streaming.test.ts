// Issue 3: bodies stream through the full stack in both directions with back-pressure, never
// buffered whole. The real sidecar (startSidecar, token from the emulator) sits between a client
// and a small upstream of this file that counts what it sends and decides when it reads. A reader
// that stops must stop the writer at the other end after a few socket buffers' worth, far below
// the body's size; a sidecar that buffered bodies would let the writer send all 256 MiB.
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { decodeJwt } from 'jose';
import { createDeterministicStream } from '../../src/emulator/emulator.js';
import type { Emulator } from '../../src/emulator/emulator.js';
import {
  hashStream, makeServerUser, makeWorkDir, sidecarEnv, startE2eEmulator, startE2eSidecar, waitUntilSteady, withLimit,
} from '../helpers/e2e-stack.js';
import type { E2eSidecar } from '../helpers/e2e-stack.js';
import { waitUntil } from '../helpers/wait-until.js';

const MIB = 1024 * 1024;
/** The body size each way. */
const SIZE = 256 * MIB;
const SEED = 7;
/**
 * Most a stopped reader may leave in flight: the kernel buffers of two loopback connections and
 * the streams' high-water marks in the client, the sidecar and the upstream, with a wide margin.
 */
const IN_FLIGHT_BOUND = 32 * MIB;
/** What the client reads of the download before it stops reading. */
const READ_BEFORE_PAUSE = 1 * MIB;

/** The upload the upstream has received but not started to read. */
interface HeldUpload {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/**
 * A plain-HTTP upstream under `/logicnets/`: `GET big[?bytes=N]` streams SIZE (or N) deterministic
 * bytes, counting what it has handed to its response (one download at a time); `POST upload`
 * leaves the body unread until `readUpload()`. Both answer 401 unless a bearer token came along.
 */
class StreamingUpstream {
  readonly server = http.createServer((req, res) => this.#handle(req, res));
  /** Bearer tokens received, in order. */
  readonly tokens: string[] = [];
  /** Download bytes handed to `res.write()` so far. */
  downloadHanded = 0;
  /** The download waits for `'drain'`: its socket accepts nothing more for now. */
  downloadBlocked = false;
  downloadFinished = false;
  /** Upload bytes read so far. */
  uploadRead = 0;
  held: HeldUpload | undefined;

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
  }

  /** Reads the held upload to its end, hashing as it goes, and answers `{ bytes, sha256 }`. */
  async readUpload(): Promise<void> {
    const { req, res } = this.held ?? assert.fail('no upload is held');
    const hash = createHash('sha256');
    for await (const chunk of req as AsyncIterable<Buffer>) {
      this.uploadRead += chunk.length;
      hash.update(chunk);
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ bytes: this.uploadRead, sha256: hash.digest('hex') }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (match === null) {
      res.writeHead(401).end();
      return;
    }
    this.tokens.push(match[1] as string);
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    if (req.method === 'GET' && url.pathname === '/logicnets/big') {
      this.#download(res, Number(url.searchParams.get('bytes') ?? SIZE)).catch(() => res.destroy());
    } else if (req.method === 'POST' && url.pathname === '/logicnets/upload') {
      this.held = { req, res };
    } else {
      res.writeHead(404).end();
    }
  }

  async #download(res: ServerResponse, bytes: number): Promise<void> {
    this.downloadHanded = 0;
    this.downloadBlocked = false;
    this.downloadFinished = false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) });
    for await (const chunk of createDeterministicStream(bytes, SEED) as AsyncIterable<Buffer>) {
      if (res.destroyed) return;
      this.downloadHanded += chunk.length;
      if (!res.write(chunk)) {
        this.downloadBlocked = true;
        await drained(res);
        this.downloadBlocked = false;
      }
    }
    res.end();
    this.downloadFinished = true;
  }
}

/** Resolves on the response's next `'drain'` or `'close'`, whichever comes first, leaving no listener behind. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

const dir = makeWorkDir();
const user = makeServerUser(dir);
const upstream = new StreamingUpstream();
let emulator: Emulator;
let sidecar: E2eSidecar;
let expectedSha256: string;

before(async () => {
  expectedSha256 = (await hashStream(createDeterministicStream(SIZE, SEED))).sha256;
  emulator = await startE2eEmulator({ users: [user] });
  await upstream.listen();
  sidecar = await startE2eSidecar({
    env: {
      ...sidecarEnv(emulator, user),
      LOGICNETS_URL: `http://127.0.0.1:${upstream.port}/logicnets`,
      LOGICNETS_TOKEN_URL: emulator.tokenUrl,
      LOGICNETS_TOKEN_AUDIENCE: emulator.audience,
    },
  });
});

after(async () => {
  await sidecar?.close();
  await Promise.all([upstream.close(), emulator?.close()]);
  dir.cleanup();
});

/** The last request reached the upstream with a token the emulator issued. */
function assertEmulatorToken(): void {
  const token = upstream.tokens.at(-1) ?? assert.fail('the upstream received no token');
  assert.equal(decodeJwt(token).iss, emulator.url);
}

/** A download the client has read a little of and then stopped reading. */
interface PausedDownload {
  /** Bytes the client has read. */
  readonly received: () => number;
  /** Reads on to the end (bounded) and resolves with the bytes and sha256 of the whole body. */
  finish(): Promise<{ bytes: number; sha256: string }>;
}

/** GETs `big?bytes=<bytes>` through `proxyPort`, reads READ_BEFORE_PAUSE bytes and stops reading. */
async function startPausedDownload(t: TestContext, proxyPort: number, bytes: number): Promise<PausedDownload> {
  const req = http.request({ host: '127.0.0.1', port: proxyPort, path: `/logicnets/big?bytes=${bytes}`, agent: false });
  t.after(() => req.destroy());
  req.end();
  const [res] = await withLimit(once(req, 'response') as Promise<[IncomingMessage]>, 'the download to start');
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-length'], String(bytes));
  assertEmulatorToken();

  const hash = createHash('sha256');
  let received = 0;
  let pausedOnce = false;
  const paused = new Promise<void>((resolve) => {
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      hash.update(chunk);
      if (received >= READ_BEFORE_PAUSE && !pausedOnce) {
        pausedOnce = true;
        res.pause();
        resolve();
      }
    });
  });
  // 'end' or 'error' (a cut download) from here on, even while the test looks elsewhere.
  const ended = once(res, 'end');
  ended.catch(() => undefined);
  await withLimit(paused, 'the client to read its first MiB');
  return {
    received: () => received,
    async finish() {
      res.resume();
      await withLimit(ended, 'the rest of the download', 20_000);
      return { bytes: received, sha256: hash.digest('hex') };
    },
  };
}

test('a 256 MiB download: a client that stops reading stops the upstream; then all of it arrives intact', async (t) => {
  const download = await startPausedDownload(t, sidecar.proxyPort, SIZE);
  const handed = await waitUntilSteady(() => upstream.downloadHanded, 'the upstream stopped sending');
  const received = download.received();
  t.diagnostic(`the client read ${received} bytes, then stopped; the upstream stopped after handing over ${handed} bytes`);
  assert.ok(handed < IN_FLIGHT_BOUND,
    `the upstream sent ${handed} bytes while the client had read ${received}: the sidecar buffered the body`);
  assert.ok(upstream.downloadBlocked, 'the upstream waits for its socket to drain: back-pressure reached it');
  assert.equal(upstream.downloadFinished, false);

  assert.deepEqual(await download.finish(), { bytes: SIZE, sha256: expectedSha256 });
  assert.equal(upstream.downloadFinished, true);
});

test('a 256 MiB upload: an upstream that does not read blocks the client\'s writes; then all of it arrives intact', async (t) => {
  let produced = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of createDeterministicStream(SIZE, SEED) as AsyncIterable<Buffer>) {
      produced += chunk.length;
      yield chunk;
    }
  }
  const req = http.request({
    host: '127.0.0.1', port: sidecar.proxyPort, method: 'POST', path: '/logicnets/upload', agent: false,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) },
  });
  t.after(() => req.destroy());
  const response = once(req, 'response') as Promise<[IncomingMessage]>;
  response.catch(() => undefined);
  Readable.from(counted(), { objectMode: false }).pipe(req);

  await waitUntil(() => upstream.held !== undefined, 'the upload reached the upstream');
  assertEmulatorToken();
  const accepted = await waitUntilSteady(() => produced, 'the client stopped writing');
  t.diagnostic(`the client's writes stopped after ${accepted} bytes; the upstream has read ${upstream.uploadRead}`);
  assert.ok(accepted < IN_FLIGHT_BOUND,
    `the client could write ${accepted} bytes while the upstream read none: the sidecar buffered the body`);
  assert.ok(req.writableNeedDrain, 'the client\'s write() returned false and its socket has not drained since');
  assert.equal(upstream.uploadRead, 0);

  const reading = upstream.readUpload();
  const [res] = await withLimit(response, 'the answer to the upload', 20_000);
  await reading;
  assert.equal(res.statusCode, 200);
  const chunks: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { bytes: number; sha256: string };
  assert.deepEqual(answer, { bytes: SIZE, sha256: expectedSha256 }, 'the upstream read the whole body, intact');
  assert.equal(produced, SIZE);
});

// Regression: UPSTREAM_TIMEOUT was an idle timeout on the upstream socket for the whole exchange,
// so it also fired while back-pressure from a slow client kept that socket idle, and cut the download.
test('a client that stops reading for longer than UPSTREAM_TIMEOUT still gets the whole download', async (t) => {
  const bytes = 64 * MIB;
  const expected = await hashStream(createDeterministicStream(bytes, SEED));
  const short = await startE2eSidecar({
    env: {
      ...sidecarEnv(emulator, user),
      LOGICNETS_URL: `http://127.0.0.1:${upstream.port}/logicnets`,
      LOGICNETS_TOKEN_URL: emulator.tokenUrl,
      LOGICNETS_TOKEN_AUDIENCE: emulator.audience,
      UPSTREAM_TIMEOUT: '0.3',
    },
  });
  t.after(() => short.close());
  const download = await startPausedDownload(t, short.proxyPort, bytes);
  await waitUntilSteady(() => upstream.downloadHanded, 'the upstream stopped sending');
  // The pause outlasts UPSTREAM_TIMEOUT several times over (a bounded wait, nothing is timed).
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.deepEqual(await download.finish(), expected);
});
