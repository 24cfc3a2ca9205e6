// Graceful shutdown of the real process: `serve` runs as a child process in front of the LogicNets
// emulator (HTTPS, test CA); SIGTERM / SIGINT arrive while a request is in flight.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { Emulator } from '../../src/emulator/emulator.js';
import { startCliProcess, waitFor } from '../helpers/cli.js';
import { call, freePorts, makeServerUser, makeWorkDir, refused, sidecarEnv, startE2eEmulator } from '../helpers/e2e-stack.js';
import type { Reply } from '../helpers/e2e-stack.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';
import { waitUntil } from '../helpers/wait-until.js';

const dir = makeWorkDir();
const user = makeServerUser(dir);
let pki: TestPki;

before(() => {
  pki = makeTestPki();
});

after(() => {
  pki?.cleanup();
  dir.cleanup();
});


interface Served {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
  readonly proxyPort: number;
  readonly adminPort: number;
}

/**
 * Runs `serve` against `emulator` on two free ports and waits (bounded) until it is ready with a
 * token. (The ports are picked by binding port 0 and releasing it.)
 */
async function serve(emulator: Emulator, env: Record<string, string>): Promise<Served> {
  const [proxyPort, adminPort] = await freePorts(2) as [number, number];
  const { child, output } = startCliProcess(['serve'], {
    ...sidecarEnv(emulator, user, pki),
    LISTEN_PORT: String(proxyPort),
    ADMIN_PORT: String(adminPort),
    LOG_LEVEL: 'info',
    READINESS_REQUIRE_TOKEN: 'true',
    ...env,
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`serve exited early with ${child.exitCode}: ${output()}`);
    const ready = await call(adminPort, '/readyz', { limitMs: 1000 }).catch(() => undefined);
    return ready?.status === 200;
  }, 'the sidecar process to be ready with a token');
  return { child, output, exited, proxyPort, adminPort };
}

async function readyzStatus(adminPort: number): Promise<number> {
  return (await call(adminPort, '/readyz', { limitMs: 1000 })).status;
}

/** Starts a slow API call through the sidecar and resolves once the emulator holds it. */
async function slowRequestInFlight(emulator: Emulator, served: Served, ms: number): Promise<{ reply: Promise<Reply>; done: () => boolean }> {
  const before0 = emulator.stats.apiRequests;
  let finished = false;
  const reply = call(served.proxyPort, `/logicnets/_slow?ms=${ms}`, { limitMs: 20_000 });
  reply.then(() => { finished = true; }, () => { finished = true; });
  await waitUntil(() => emulator.stats.apiRequests === before0 + 1, 'the slow request reached the API');
  return { reply, done: () => finished };
}

async function withEmulator(run: (emulator: Emulator) => Promise<void>): Promise<void> {
  const emulator = await startE2eEmulator({ pki, users: [user] });
  try {
    await run(emulator);
  } finally {
    await emulator.close();
  }
}

function stop(served: Served | undefined): void {
  if (served !== undefined && served.child.exitCode === null && served.child.signalCode === null) served.child.kill('SIGKILL');
}

describe('shutdown of the serve process', { concurrency: 2 }, () => {
  test('SIGTERM: readiness fails at once, serving goes on for SHUTDOWN_DELAY, the in-flight request completes, exit 0', async () => {
    await withEmulator(async (emulator) => {
      let served: Served | undefined;
      try {
        served = await serve(emulator, { SHUTDOWN_DELAY: '1' });
        const { proxyPort, adminPort } = served;
        const slow = await slowRequestInFlight(emulator, served, 2500);

        served.child.kill('SIGTERM');
        await waitFor(async () => await readyzStatus(adminPort) === 503, '/readyz to answer 503 after SIGTERM', 5000);
        const during = await call(proxyPort, '/logicnets/_echo');
        assert.equal(during.status, 200, 'new requests are still served during the drain delay');

        await waitFor(() => refused(proxyPort), 'the proxy listener to close after the drain delay', 5000);
        assert.equal(slow.done(), false, 'the listener closed while the request was still in flight');
        const reply = await slow.reply;
        assert.equal(reply.status, 200, reply.body.toString());
        assert.equal(reply.json<{ waitedMs: number }>().waitedMs, 2500);
        assert.equal(reply.headers.connection, 'close');

        assert.equal(await served.exited, 0, served.output());
        assert.equal(await refused(proxyPort), true);
        assert.equal(await refused(adminPort), true);
        assert.match(served.output(), /"reason":"SIGTERM".*"msg":"shutdown complete"/);
      } finally {
        stop(served);
      }
    });
  });

  test('SIGINT without a drain delay: the listener closes at once, the in-flight request completes, exit 0', async () => {
    await withEmulator(async (emulator) => {
      let served: Served | undefined;
      try {
        served = await serve(emulator, {});
        const { proxyPort, adminPort } = served;
        const slow = await slowRequestInFlight(emulator, served, 1500);

        served.child.kill('SIGINT');
        await waitFor(() => refused(proxyPort), 'the proxy listener to close after SIGINT', 5000);
        assert.equal(slow.done(), false);
        assert.equal(await readyzStatus(adminPort), 503, 'the admin port answers, not ready, while draining');
        const reply = await slow.reply;
        assert.equal(reply.status, 200, reply.body.toString());

        assert.equal(await served.exited, 0, served.output());
        assert.equal(await refused(adminPort), true);
        assert.match(served.output(), /"reason":"SIGINT"/);
      } finally {
        stop(served);
      }
    });
  });

  test('a second signal exits at once with code 1, its log lines written, without waiting for the drain', async () => {
    await withEmulator(async (emulator) => {
      let served: Served | undefined;
      try {
        served = await serve(emulator, { SHUTDOWN_DELAY: '30' });
        const slow = await slowRequestInFlight(emulator, served, 5000);
        served.child.kill('SIGTERM');
        await waitFor(async () => await readyzStatus(served?.adminPort ?? 0) === 503, '/readyz to answer 503 after SIGTERM', 5000);
        served.child.kill('SIGTERM');
        assert.equal(await served.exited, 1, served.output());
        const outcome = await slow.reply.then((r) => r.status, () => 'cut');
        assert.equal(outcome, 'cut', 'the exit did not wait for the in-flight request');
        assert.match(served.output(), /second signal: exiting without waiting/);
      } finally {
        stop(served);
      }
    });
  });
});
