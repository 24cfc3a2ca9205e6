// Numbers, durations, sizes and ports are read exactly or refused, from the environment and from a
// config file alike: convict's parseInt/parseFloat once read UPSTREAM_TIMEOUT=1m as 1 second,
// RETRY_BODY_LIMIT=1MB as 1 byte and LISTEN_PORT=28082x as 28082.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/load.js';
import { MAX_SECONDS, NUMERIC_FORMATS, readSetting, settingProblem } from '../../../src/config/formats.js';
import { GLOBAL_SCHEMA, UPSTREAM_SCHEMA } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/lib/errors.js';
import { seededRandom as seeded } from '../../helpers/seeded-random.js';

const dir = mkdtempSync(join(tmpdir(), 'ltp-strict-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'key.pem');
writeFileSync(keyFile, 'placeholder\n');

const base = { LOGICNETS_URL: 'https://lua5.logicnets.local/logicnets', LOGICNETS_CLIENT_ID: 'a', LOGICNETS_PRIVATE_KEY_FILE: keyFile };
const upstreamEntry = { url: 'https://lua5.logicnets.local/logicnets', clientId: 'a', privateKeyFile: keyFile };

/** The value a setting ends up with, or the problem lines. */
function load(env: Record<string, string>, configFile?: string): { config?: Config; problems: string[] } {
  try {
    return { config: loadConfig({ env, configFile }), problems: [] };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { problems: [...error.problems] };
  }
}

type Key = keyof typeof GLOBAL_SCHEMA | keyof typeof UPSTREAM_SCHEMA;
const isUpstream = (key: Key): key is keyof typeof UPSTREAM_SCHEMA => Object.hasOwn(UPSTREAM_SCHEMA, key);
const envName = (key: Key) => (isUpstream(key) ? UPSTREAM_SCHEMA[key].env : GLOBAL_SCHEMA[key].env)!;
const valueOf = (config: Config, key: Key): unknown =>
  (isUpstream(key) ? (config.upstreams[0] as unknown as Record<string, unknown>)[key] : config[key]);

// [setting, text as an operator writes it, the number it means (seconds, bytes) or the words of the refusal]
const TABLE: Array<[Key, string, number | RegExp]> = [
  ['upstreamTimeout', '60', 60],
  ['upstreamTimeout', '0.5', 0.5],
  ['upstreamTimeout', '500ms', 0.5],
  ['upstreamTimeout', '30s', 30],
  ['upstreamTimeout', '1m', 60],
  ['upstreamTimeout', '1.5m', 90],
  ['upstreamTimeout', '1h', 3600],
  ['upstreamTimeout', ' 45 ', 45],
  ['upstreamTimeout', '1 minute', /must be a duration \(seconds such as 30 or 0\.5, or a number with a unit: 500ms, 30s, 1m, 1h\), not "1 minute"/],
  ['upstreamTimeout', '5d', /not "5d": unknown unit "d"/],
  ['upstreamTimeout', '1M', /unknown unit "M"/],
  ['upstreamTimeout', '0', /must be greater than 0 and at most 2147483 seconds, not 0/],
  ['upstreamTimeout', '-1', /must be a duration/],
  ['upstreamTimeout', '1e3', /must be a duration/],
  ['upstreamTimeout', '0x10', /must be a duration/],
  ['upstreamTimeout', '.5', /must be a duration/],
  ['upstreamTimeout', '5.', /must be a duration/],
  ['upstreamTimeout', '1_000', /must be a duration/],
  ['upstreamTimeout', 'Infinity', /must be a duration/],
  ['upstreamTimeout', '', /not "": it is empty/],
  ['upstreamTimeout', '25d', /unknown unit/],
  ['upstreamTimeout', '2147484', /at most 2147483 seconds, not 2147484/],
  ['upstreamTimeout', '1m30s', /must be a duration/],
  ['idleTimeout', '2m', 120],
  ['headersTimeout', '10s', 10],
  ['requestTimeout', '0', 0],
  ['requestTimeout', '5m', 300],
  ['requestTimeout', 'none', /must be a duration/],
  ['keepAliveTimeout', '5000ms', 5],
  ['keepAliveTimeout', '0', /greater than 0/],
  ['shutdownDelay', '0', 0],
  ['shutdownDelay', '3s', 3],
  ['shutdownTimeout', '1m', 60],
  ['shutdownTimeout', '20x', /must be a duration/],
  ['tokenTimeout', '2500ms', 2.5],
  ['tokenTimeout', '10sec', /unknown unit "sec"/],
  ['assertionTtl', '300', 300],
  ['assertionTtl', '5m', 300],
  ['assertionTtl', '1h', 3600],
  ['assertionTtl', '2h', /a whole number of seconds from 1 to 3600, not "2h" \(7200 seconds\)|a whole number of seconds from 1 to 3600, not 7200/],
  ['assertionTtl', '1500ms', /must be a whole number of seconds, not "1500ms" \(1\.5 seconds\)/],
  ['assertionTtl', '0', /from 1 to 3600/],
  ['tokenDefaultLifetime', '10m', 600],
  ['tokenDefaultLifetime', '29', /a whole number of seconds from 30 to 2147483, not 29/],
  ['retryBodyLimit', '1048576', 1048576],
  ['retryBodyLimit', '0', 0],
  ['retryBodyLimit', '512KiB', 524288],
  ['retryBodyLimit', '1MiB', 1048576],
  ['retryBodyLimit', '1.5MiB', 1572864],
  ['retryBodyLimit', '1GiB', 1073741824],
  ['retryBodyLimit', '64B', 64],
  ['retryBodyLimit', '1MB', /not "1MB": "MB" is read both as 1000 and as 1024 bytes: write the binary unit \(KiB, MiB, GiB\) or plain bytes/],
  ['retryBodyLimit', '1kB', /"kB" is read both as 1000 and as 1024 bytes/],
  ['retryBodyLimit', '1KB', /"KB" is read both/],
  ['retryBodyLimit', '1M', /unknown unit "M"/],
  ['retryBodyLimit', '1mib', /unknown unit "mib"/],
  ['retryBodyLimit', '0.3KiB', /must be a whole number of bytes, not "0\.3KiB" \(307\.2 bytes\)/],
  ['retryBodyLimit', '1.5', /must be a whole number of bytes/],
  ['retryBodyLimit', '-1', /must be a size/],
  ['retryBodyBudget', '4MiB', 4194304],
  ['retryBodyBudget', '4 MiB', /must be a size/],
  ['maxHeaderSize', '16KiB', 16384],
  ['maxHeaderSize', '1023', /must be 1024 bytes or more, not 1023/],
  ['maxHeaderCount', '200', 200],
  ['maxHeaderCount', '0200', 200],
  ['maxHeaderCount', '0', /must be 1 or more, not 0/],
  ['maxHeaderCount', '2e2', /must be a whole number \(digits only, such as 200\), not "2e2"/],
  ['maxHeaderCount', '200.0', /must be a whole number/],
  ['maxConnections', '1024', 1024],
  ['maxConnections', '1k', /must be a whole number/],
  ['maxConnections', '99999999999999999999', /too many digits/],
  ['listenPort', '28082', 28082],
  ['listenPort', '0', 0],
  ['listenPort', '65535', 65535],
  ['listenPort', '28082x', /must be a port number \(digits only\), not "28082x"/],
  ['listenPort', '65536', /must be from 0 to 65535, not 65536/],
  ['listenPort', '8080.0', /must be a port number/],
  ['listenPort', '+8080', /must be a port number/],
  ['listenPort', '-1', /must be a port number/],
  ['adminPort', '9091', 9091],
  ['adminPort', ':9091', /must be a port number/],
];

test('every setting in the table, from the environment: read exactly or refused naming the variable', () => {
  for (const [key, text, expected] of TABLE) {
    const env: Record<string, string> = { ...base, [envName(key)]: text };
    if (key === 'requestTimeout') env.HEADERS_TIMEOUT = '0.001';
    const { config, problems } = load(env);
    const where = `${envName(key)}=${JSON.stringify(text)}`;
    if (typeof expected === 'number') {
      assert.deepEqual(problems, [], where);
      assert.equal(valueOf(config!, key), expected, where);
    } else {
      assert.equal(problems.length, 1, `${where}: ${problems.join(' | ')}`);
      assert.ok(problems[0]!.startsWith(`${key} (${envName(key)}): `), `${where}: ${problems[0]}`);
      assert.match(problems[0]!, expected, where);
    }
  }
});

test('every setting in the table, from a YAML and a JSON config file (text as a string; numbers as YAML numbers)', () => {
  let n = 0;
  for (const [key, text, expected] of TABLE) {
    const data: Record<string, unknown> = isUpstream(key)
      ? { upstreams: [{ ...upstreamEntry, [key]: text }] }
      : { [key]: text, ...(key === 'requestTimeout' ? { headersTimeout: 0.001 } : {}), upstreams: [upstreamEntry] };
    const label = isUpstream(key) ? `upstreams[0].${key} (config file)` : `${key} (config file)`;
    for (const [ext, serialise] of [['yaml', stringifyYaml], ['json', JSON.stringify]] as const) {
      const file = join(dir, `table-${n++}.${ext}`);
      writeFileSync(file, serialise(data));
      const { config, problems } = load({}, file);
      const where = `${ext} ${key}: ${JSON.stringify(text)}`;
      if (typeof expected === 'number') {
        assert.deepEqual(problems, [], where);
        assert.equal(valueOf(config!, key), expected, where);
      } else {
        assert.equal(problems.length, 1, `${where}: ${problems.join(' | ')}`);
        assert.ok(problems[0]!.startsWith(`${label}: `), `${where}: ${problems[0]}`);
        assert.match(problems[0]!, expected, where);
      }
    }
  }
});

test('a hand-written YAML file: plain numbers and unquoted units both work, junk is refused with its key', () => {
  const good = join(dir, 'good.yaml');
  writeFileSync(good, [
    'upstreamTimeout: 1m', 'idleTimeout: 90', 'shutdownDelay: 2.5', 'retryBodyLimit: 512KiB', 'maxHeaderSize: 32768',
    'listenPort: 18080', 'xForwarded: true',
    'upstreams:', `  - url: ${upstreamEntry.url}`, '    clientId: a', `    privateKeyFile: ${keyFile}`, '    assertionTtl: 5m', '    tokenTimeout: 2500ms',
  ].join('\n'));
  const config = loadConfig({ env: {}, configFile: good });
  assert.deepEqual(
    [config.upstreamTimeout, config.idleTimeout, config.shutdownDelay, config.retryBodyLimit, config.maxHeaderSize, config.listenPort, config.xForwarded],
    [60, 90, 2.5, 524288, 32768, 18080, true],
  );
  assert.deepEqual([config.upstreams[0]!.assertionTtl, config.upstreams[0]!.tokenTimeout], [300, 2.5]);

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, [
    'upstreamTimeout: 1 minute', 'listenPort: 28082x', 'retryBodyLimit: 1MB', 'maxConnections: 10.5', 'xForwarded: yes',
    'keepAliveTimeout:', 'idleTimeout: [1, 2]', 'headersTimeout: { seconds: 5 }', 'adminPort: .inf', 'logLevel: 3', 'listenHost: 127.0.0.1',
    'upstreams:', `  - url: ${upstreamEntry.url}`, '    clientId: 1234', `    privateKeyFile: ${keyFile}`, '    assertionTtl: 5 m', '    tokenDefaultLifetime: true',
  ].join('\n'));
  const problems = load({}, bad).problems.join('\n');
  for (const line of [
    'upstreamTimeout (config file): must be a duration (seconds such as 30 or 0.5, or a number with a unit: 500ms, 30s, 1m, 1h), not "1 minute"',
    'listenPort (config file): must be a port number (digits only), not "28082x"',
    'retryBodyLimit (config file): must be a size',
    'maxConnections (config file): must be a whole number, not 10.5',
    'xForwarded (config file): must be true or false (or 1 or 0), not "yes"',
    'keepAliveTimeout (config file): must be a duration (seconds such as 30 or 0.5, or a number with a unit: 500ms, 30s, 1m, 1h), not null: it has no value',
    'idleTimeout (config file): is a list; expected a single value',
    'headersTimeout (config file): is an object; expected a single value',
    'adminPort (config file): must be a port number (digits only), not null',
    'logLevel (config file): must be one of fatal, error, warn, info, debug, trace, silent, not 3',
    'upstreams[0].clientId (config file): must be text, not 1234 (quote it in the config file)',
    'upstreams[0].assertionTtl (config file): must be a duration',
    'upstreams[0].tokenDefaultLifetime (config file): must be a duration (seconds such as 30 or 0.5, or a number with a unit: 500ms, 30s, 1m, 1h), not true',
  ]) {
    assert.ok(problems.includes(line), `expected "${line}" in:\n${problems}`);
  }
});

test('the environment wins over the file, and a bad file value the environment replaces is no problem', () => {
  const file = join(dir, 'overridden.yaml');
  writeFileSync(file, stringifyYaml({ upstreamTimeout: 'soon', listenPort: 1234, upstreams: [upstreamEntry] }));
  const config = loadConfig({ env: { UPSTREAM_TIMEOUT: '2m', LISTEN_PORT: '4321' }, configFile: file });
  assert.equal(config.upstreamTimeout, 120);
  assert.equal(config.listenPort, 4321);
  assert.match(load({ LISTEN_PORT: 'x' }, file).problems.join('\n'), /^listenPort \(LISTEN_PORT\): /m, 'an environment value is named by its variable');
});

test('an inline private key of the wrong type is refused without being shown', () => {
  const file = join(dir, 'inline.yaml');
  writeFileSync(file, stringifyYaml({ upstreams: [{ url: upstreamEntry.url, clientId: 'a', privateKey: 123456789 }] }));
  const text = load({}, file).problems.join('\n');
  assert.match(text, /upstreams\[0\]\.privateKey \(config file\): must be text, not the value given/);
  assert.ok(!text.includes('123456789'));
});

test('every numeric setting of the schema uses a strict format, and every default passes its own check', () => {
  const loose = ['int', 'nat', 'port', 'integer', 'duration', Number];
  for (const [key, item] of [...Object.entries(GLOBAL_SCHEMA), ...Object.entries(UPSTREAM_SCHEMA)]) {
    const format: unknown = item.format;
    assert.ok(!loose.includes(format as string), `${key} uses convict's loose format ${String(format)}`);
    assert.ok(format === String || format === Array || Array.isArray(format) || format === 'strict-boolean' || NUMERIC_FORMATS.includes(format as string),
      `${key}: format ${String(format)} is not one the loader checks`);
    assert.equal(settingProblem(item, item.default), undefined, `${key}: default ${String(item.default)}`);
  }
});

test('requestTimeout, when set, may not be shorter than headersTimeout (Node refuses that at listen)', () => {
  assert.match(load({ ...base, REQUEST_TIMEOUT: '10s' }).problems.join(),
    /requestTimeout \(REQUEST_TIMEOUT\): 10 s is shorter than headersTimeout \(HEADERS_TIMEOUT\), 20 s/);
  assert.equal(load({ ...base, REQUEST_TIMEOUT: '20s' }).config?.requestTimeout, 20);
  assert.equal(load({ ...base, REQUEST_TIMEOUT: '0' }).config?.requestTimeout, 0);
});

// ---- Junk: a seeded generator of strings an operator (or a template) might produce ----


const PIECES = [
  '0', '1', '2', '5', '9', '00', '30', '60', '1024', '65535', '65536', '3600', '2147483', '99999999', '12345678901234567',
  '.', '.', '-', '+', 'e', 'E', 'x', '_', ',', ' ', '\t', '\u00a0', '\n', '٣', '０',
  'ms', 's', 'm', 'h', 'd', 'S', 'M', 'H', 'sec', 'min', 'B', 'KiB', 'MiB', 'GiB', 'kB', 'KB', 'MB', 'Ki', 'Mi', 'k', 'b',
  'NaN', 'Infinity', '0x', '0b', 'true', 'null', '"', '%',
];

function junk(random: () => number): string {
  let text = '';
  const parts = 1 + Math.floor(random() * 5);
  for (let i = 0; i < parts; i++) text += PIECES[Math.floor(random() * PIECES.length)];
  return text;
}

const SECONDS_PER: Record<string, [bigint, bigint]> = { ms: [1n, 1000n], s: [1n, 1n], m: [60n, 1n], h: [3600n, 1n] };
const BYTES_PER: Record<string, bigint> = { B: 1n, KiB: 1024n, MiB: 1048576n, GiB: 1073741824n };

/** The exact decimal text of `digits / 10^scale`, for JavaScript's own (correctly rounded) parser. */
function decimalText(digits: bigint, scale: number): string {
  const text = digits.toString().padStart(scale + 1, '0');
  return scale === 0 ? text : `${text.slice(0, -scale)}.${text.slice(-scale)}`;
}

/**
 * What the documentation says `text` means for `format`, worked out independently of the
 * implementation: a number, or undefined when it must be refused. `long` marks text with more
 * digits than a double holds, which may be refused instead of read.
 */
function documented(format: string, text: string): { value: number | undefined; long: boolean } {
  const t = text.trim();
  const long = t.replace(/\D/g, '').replace(/^0+/, '').length > 15;
  if (format === 'count' || format === 'tcp-port') {
    if (!/^\d+$/.test(t)) return { value: undefined, long };
    const n = Number(t);
    const [min, max] = format === 'count' ? [1, Number.MAX_SAFE_INTEGER] : [0, 65535];
    return { value: n >= min && n <= max ? n : undefined, long };
  }
  const m = /^(\d+)(?:\.(\d+))?([A-Za-z]*)$/.exec(t);
  if (!m) return { value: undefined, long };
  const digits = BigInt(`${m[1]}${m[2] ?? ''}`);
  const scale = (m[2] ?? '').length;
  if (format === 'bytes') {
    const factor = BYTES_PER[m[3] || 'B'];
    if (factor === undefined) return { value: undefined, long };
    const total = digits * factor;
    if (total % 10n ** BigInt(scale) !== 0n) return { value: undefined, long };
    const bytes = total / 10n ** BigInt(scale);
    return { value: bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(bytes) : undefined, long };
  }
  const factor = SECONDS_PER[m[3] || 's'];
  if (factor === undefined) return { value: undefined, long };
  // digits * num / (10^scale * den): den is 1 or 1000, i.e. three more decimal places.
  const extra = factor[1] === 1000n ? 3 : 0;
  const seconds = Number(decimalText(digits * factor[0], scale + extra));
  const min = format === 'seconds-or-zero' ? 0 : Number.MIN_VALUE;
  if (seconds < min || seconds > MAX_SECONDS) return { value: undefined, long };
  if (format === 'whole-seconds' && !Number.isInteger(seconds)) return { value: undefined, long };
  return { value: seconds, long };
}

test('5000 seeded junk strings per format: each is refused or read as exactly the documented number', () => {
  const random = seeded(20261203);
  let read = 0;
  for (let i = 0; i < 5000; i++) {
    const text = junk(random);
    for (const format of NUMERIC_FORMATS) {
      const got = readSetting(format, text);
      const want = documented(format, text);
      if (got !== undefined) {
        read++;
        assert.equal(got, want.value, `${format} ${JSON.stringify(text)}: read as ${got}, documented ${String(want.value)}`);
      } else {
        assert.ok(want.value === undefined || want.long, `${format} ${JSON.stringify(text)}: refused, documented ${String(want.value)}`);
      }
    }
  }
  assert.ok(read > 1000, `the generator makes enough valid values too (${read})`);
});

test('seeded junk through the real loader: refused naming the variable, or exactly the documented value', () => {
  const random = seeded(7);
  const settings: Array<[Key, string]> = [['upstreamTimeout', 'seconds'], ['retryBodyLimit', 'bytes'], ['listenPort', 'tcp-port'],
    ['assertionTtl', 'whole-seconds'], ['maxConnections', 'count'], ['shutdownDelay', 'seconds-or-zero']];
  for (let i = 0; i < 300; i++) {
    const text = junk(random);
    const [key, format] = settings[i % settings.length]!;
    const { config, problems } = load({ ...base, [envName(key)]: text });
    const want = documented(format, text).value;
    const inRange = want !== undefined && !(key === 'assertionTtl' && (want < 1 || want > 3600));
    if (config !== undefined) {
      assert.equal(valueOf(config, key), want, `${envName(key)}=${JSON.stringify(text)}`);
    } else {
      assert.ok(!inRange || documented(format, text).long, `${envName(key)}=${JSON.stringify(text)} refused: ${problems.join(' | ')}`);
      assert.equal(problems.length, 1, problems.join(' | '));
      assert.ok(problems[0]!.startsWith(`${key} (${envName(key)}): `), problems[0]);
    }
  }
});
