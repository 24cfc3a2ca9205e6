/**
 * The VM install: config/logicnets-token-proxy.service is checked with systemd's own tools
 * (`systemd-analyze verify`, which must print nothing, and `systemd-analyze security --offline`),
 * holds the hardening the README promises, and with config/logicnets-token-proxy.env.example and a
 * key handed over as a credential gives a configuration the real config loader accepts. Under CI
 * (`CI` set) a missing systemd-analyze fails; elsewhere those checks are skipped with a message.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, settingsDoc } from '../../src/config/load.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const UNIT_NAME = 'logicnets-token-proxy.service';
const UNIT = readFileSync(join(ROOT, 'config', UNIT_NAME), 'utf8');
const ENV_EXAMPLE = readFileSync(join(ROOT, 'config', 'logicnets-token-proxy.env.example'), 'utf8');

const work = mkdtempSync(join(tmpdir(), 'ltp-systemd-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The unit's directives, section by section, each with all its values in order. */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) { section = header[1]!; continue; }
    const eq = line.indexOf('=');
    const key = `${section}.${line.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

const unit = directives(UNIT);
const one = (key: string) => {
  const values = unit.get(key);
  assert.ok(values && values.length > 0, `${key} is set`);
  return values.at(-1)!;
};

function findTool(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const analyze = findTool('systemd-analyze');
const skipTool = analyze || process.env.CI ? false : 'no systemd-analyze on this machine (package systemd); CI installs it';

/** A copy of `text` as a unit file whose node binary exists on this machine (verify checks ExecStart's binary). */
function localUnit(text: string, name = UNIT_NAME): string {
  const dir = mkdtempSync(join(work, 'unit-'));
  const path = join(dir, name);
  writeFileSync(path, text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
  return path;
}

describe('systemd-analyze on the unit', { skip: skipTool }, () => {
  test('systemd-analyze is present (required under CI)', () => {
    assert.ok(analyze, 'CI is set and systemd-analyze is missing: .ci/run installs the systemd package');
  });

  test('verify accepts the unit and prints nothing: no unknown or misspelt directive', () => {
    const result = spawnSync(analyze!, ['verify', localUnit(UNIT)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), '', 'verify warns');
  });

  test('the check has teeth: a misspelt directive makes verify speak', () => {
    const result = spawnSync(analyze!, ['verify', localUnit(UNIT.replace('ProtectSystem=strict', 'ProtectSystm=strict'))], { encoding: 'utf8', timeout: 60_000 });
    assert.match(result.stderr, /Unknown key 'ProtectSystm'/);
  });

  test('the offline security analysis rates the exposure 2.0 or lower ("OK")', () => {
    const result = spawnSync(analyze!, ['security', '--offline=yes', '--no-pager', localUnit(UNIT)], { encoding: 'utf8', timeout: 60_000 });
    const level = /Overall exposure level for \S+: ([\d.]+)/.exec(result.stdout);
    assert.ok(level, `${result.stdout}${result.stderr}`);
    assert.ok(Number(level[1]) <= 2.0, `exposure ${level[1]}`);
  });
});

describe('the unit holds the promised hardening', () => {
  test('a dynamic user, a read-only system, no new privileges, no capabilities, restart on failure', () => {
    for (const [key, value] of [
      ['Service.DynamicUser', 'yes'], ['Service.ProtectSystem', 'strict'], ['Service.NoNewPrivileges', 'yes'],
      ['Service.ProtectHome', 'yes'], ['Service.PrivateTmp', 'yes'], ['Service.PrivateDevices', 'yes'],
      ['Service.CapabilityBoundingSet', ''], ['Service.Restart', 'on-failure'], ['Service.RestrictNamespaces', 'yes'],
    ] as const) assert.equal(one(key), value, key);
    assert.equal(unit.get('Service.User'), undefined, 'no fixed user next to DynamicUser');
    assert.notEqual(unit.get('Service.MemoryDenyWriteExecute')?.at(-1), 'yes', 'V8 needs W+X memory');
    assert.equal(one('Install.WantedBy'), 'multi-user.target');
  });

  test('the key comes through LoadCredential and the settings from an environment file', () => {
    const [credential, source] = one('Service.LoadCredential').split(':');
    assert.ok(credential && source?.startsWith('/'), 'LoadCredential=<name>:<absolute path>');
    assert.ok((unit.get('Service.Environment') ?? []).includes(`LOGICNETS_PRIVATE_KEY_FILE=%d/${credential}`));
    assert.match(one('Service.EnvironmentFile'), /^\/etc\/logicnets-token-proxy\/.+\.env$/);
    // An EnvironmentFile wins over Environment=: the example must not set the key file itself.
    assert.doesNotMatch(ENV_EXAMPLE, /^LOGICNETS_PRIVATE_KEY_FILE=/m);
    assert.doesNotMatch(ENV_EXAMPLE, /^LOGICNETS_PRIVATE_KEY=/m);
    assert.match(one('Service.ExecStart'), /^\/\S*node \S+\/dist\/cli\.js serve$/);
  });

  test('systemd waits longer than the sidecar drains before it kills it', () => {
    const defaults = new Map(settingsDoc().map((s) => [s.env, Number(s.default.replace(/`/g, ''))]));
    const env = Object.fromEntries(ENV_EXAMPLE.split('\n').map((l) => /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(l)).filter((m) => m !== null).map((m) => [m[1]!, m[2]!]));
    const timeout = Number(env.SHUTDOWN_TIMEOUT ?? defaults.get('SHUTDOWN_TIMEOUT'));
    const delay = Number((unit.get('Service.Environment') ?? []).find((e) => e.startsWith('SHUTDOWN_DELAY='))?.split('=')[1] ?? defaults.get('SHUTDOWN_DELAY'));
    assert.ok(Number(one('Service.TimeoutStopSec')) > timeout + delay, `TimeoutStopSec ${one('Service.TimeoutStopSec')} vs ${timeout + delay}`);
  });

  test('the environment file, the unit\'s Environment= and a key in $CREDENTIALS_DIRECTORY load through the real config loader', () => {
    const credentials = join(work, 'credentials');
    mkdirSync(credentials, { recursive: true });
    const [credential] = one('Service.LoadCredential').split(':');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(credentials, credential!), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o400 });
    // As systemd builds it: Environment= first, then the EnvironmentFile, which wins.
    const env: Record<string, string> = {};
    for (const assignment of unit.get('Service.Environment') ?? []) {
      const eq = assignment.indexOf('=');
      env[assignment.slice(0, eq)] = assignment.slice(eq + 1).replace(/%d/g, credentials);
    }
    for (const line of ENV_EXAMPLE.split('\n')) {
      const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    const config = loadConfig({ env });
    assert.equal(config.upstreams.length, 1);
    assert.equal(config.upstreams[0]!.privateKeyFile, join(credentials, credential!));
    assert.equal(config.listenHost, '127.0.0.1');
    assert.equal(config.shutdownDelay, 0);
  });
});
