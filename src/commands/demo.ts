/**
 * The `demo` command: a LogicNets emulator on loopback with a fresh key pair and a registered
 * server user, the sidecar in front of it, and `curl` lines to try both modes. Runs until
 * SIGINT/SIGTERM. Ports come from LISTEN_PORT / ADMIN_PORT (defaults 8080 / 9090).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { loadConfig } from '../config/load.js';
import { startEmulator } from '../emulator/emulator.js';
import type { Emulator } from '../emulator/emulator.js';
import { installSignalHandlers } from '../lifecycle.js';
import { createLogger } from '../lib/logger.js';
import { startSidecar } from '../sidecar.js';
import type { Sidecar } from '../sidecar.js';

/** The running demo, for tests: the emulator, the sidecar and the lines printed. */
export interface Demo {
  readonly emulator: Emulator;
  readonly sidecar: Sidecar;
  readonly lines: readonly string[];
  stop(): Promise<void>;
}

/** Starts the emulator and the sidecar. `env` may set LISTEN_PORT, ADMIN_PORT and LOG_LEVEL. */
export async function startDemo(env: NodeJS.ProcessEnv): Promise<Demo> {
  const dir = mkdtempSync(join(tmpdir(), 'logicnets-token-proxy-demo-'));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = join(dir, 'server-user.pem');
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o400 });
  const clientId = randomUUID().toUpperCase();

  const emulator = await startEmulator({ company: 'logicnets', clients: [{ clientId, publicKey }] });
  try {
    const config = loadConfig({
      env: {
        LOGICNETS_URL: emulator.url,
        LOGICNETS_CLIENT_ID: clientId,
        LOGICNETS_PRIVATE_KEY_FILE: keyFile,
        LISTEN_HOST: '127.0.0.1',
        LISTEN_PORT: env.LISTEN_PORT ?? '8080',
        ADMIN_HOST: '127.0.0.1',
        ADMIN_PORT: env.ADMIN_PORT ?? '9090',
        LOG_LEVEL: env.LOG_LEVEL ?? 'info',
      },
    });
    const logger = createLogger({ level: config.logLevel });
    const sidecar = await startSidecar(config, { logger, clock: systemClock });
    const proxy = `http://127.0.0.1:${sidecar.proxyPort}`;
    const api = `${emulator.url}/WebAPIExample/function_1`;
    const path = new URL(api).pathname;
    const lines = [
      '',
      `LogicNets emulator: ${emulator.url} (token endpoint ${emulator.tokenUrl}), server user ${clientId}`,
      `Sidecar: proxy ${proxy}, admin http://127.0.0.1:${sidecar.adminPort}`,
      '',
      'Without the sidecar the API refuses the call (403):',
      `  curl -i ${api}`,
      'Gateway mode: call the sidecar as if it were LogicNets:',
      `  curl -i ${proxy}${path}`,
      'Forward-proxy mode: use the sidecar as HTTP proxy (most clients read HTTP_PROXY; curl reads only http_proxy):',
      `  curl -i -x ${proxy} ${api}`,
      `  http_proxy=${proxy} curl -i ${api}`,
      'Admin endpoints:',
      `  curl http://127.0.0.1:${sidecar.adminPort}/status`,
      `  curl http://127.0.0.1:${sidecar.adminPort}/metrics`,
      '',
      'Press Ctrl+C to stop.',
      '',
    ];
    const stop = async () => {
      await sidecar.shutdown('demo stopped');
      await emulator.close();
      rmSync(dir, { recursive: true, force: true });
    };
    return { emulator, sidecar, lines, stop };
  } catch (error) {
    await emulator.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Runs the demo until a signal; returns the exit code. */
export async function runDemo(options: { env: NodeJS.ProcessEnv }): Promise<number> {
  const demo = await startDemo(options.env);
  process.stdout.write(`${demo.lines.join('\n')}\n`);
  await new Promise<void>((resolve) => {
    const uninstall = installSignalHandlers(() => {
      uninstall();
      resolve();
    });
  });
  await demo.stop();
  return 0;
}
