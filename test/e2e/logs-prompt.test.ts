// Regression: stdout was batched until 4 KiB, so a quiet sidecar showed no log line at all (not
// even "listening" or the token failures) until much later, and lost them on SIGKILL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCliProcess, waitFor } from '../helpers/cli.js';
import { closedPort } from '../helpers/e2e-stack.js';

test('serve writes its log lines at once, not when a buffer fills', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ltp-logs-'));
  const keyFile = join(dir, 'key.pem');
  writeFileSync(keyFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const port = await closedPort();
  const { child, output } = startCliProcess(['serve'], {
    LOGICNETS_URL: `http://127.0.0.1:${port}/logicnets`, LOGICNETS_CLIENT_ID: 'C1', LOGICNETS_PRIVATE_KEY_FILE: keyFile,
    LISTEN_PORT: '0', ADMIN_PORT: '0', ADMIN_HOST: '127.0.0.1',
  });
  t.after(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => output().includes('"msg":"listening"'), 'the listening line');
  await waitFor(() => /"level":"warn".*refused the connection/.test(output()), 'the token failure warning');
  assert.ok(output().length < 4096, 'both lines arrived before 4 KiB of output accumulated');
});
