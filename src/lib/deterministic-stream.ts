/**
 * A deterministic pseudo-random byte stream (mulberry32), made on demand with back-pressure: the
 * body the emulator's `_download` endpoint serves, and a large upload body for tests whose hash a
 * test can predict.
 */
import { Readable } from 'node:stream';

const CHUNK_BYTES = 64 * 1024;

/**
 * A stream of `bytes` deterministic pseudo-random bytes (mulberry32 seeded with `seed`), made in
 * 64 KiB chunks on demand with back-pressure. `_download?bytes=N&seed=S` serves exactly this, so
 * a test can compare hashes, or use it as a large upload body. Each call returns a new stream.
 */
export function createDeterministicStream(bytes: number, seed = 1): Readable {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError('bytes must be a non-negative integer');
  function* chunks(): Generator<Buffer> {
    let state = seed >>> 0;
    let left = bytes;
    while (left > 0) {
      const size = Math.min(CHUNK_BYTES, left);
      const buffer = Buffer.allocUnsafe(Math.ceil(size / 4) * 4);
      for (let i = 0; i < buffer.length; i += 4) {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        buffer.writeUInt32LE((t ^ (t >>> 14)) >>> 0, i);
      }
      left -= size;
      yield size === buffer.length ? buffer : buffer.subarray(0, size);
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}
