// The command line end to end: the CLI runs as a process against the LogicNets emulator over
// HTTPS with a CA made by the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { startEmulator } from '../../src/emulator/emulator.js';
import type { Emulator } from '../../src/emulator/emulator.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';
import { runCliProcess, startCliProcess, waitFor } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ltp-cli-'));
const clientId = randomUUID().toUpperCase();
const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyFile = join(dir, 'server-user.pem');
writeFileSync(keyFile, pair.privateKey.export({ type: 'pkcs1', format: 'pem' }));
const otherKeyFile = join(dir, 'other.pem');
writeFileSync(otherKeyFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));

let pki: TestPki;
let emulator: Emulator;
let env: Record<string, string>;

before(async () => {
  pki = makeTestPki();
  emulator = await startEmulator({
    clients: [{ clientId, publicKey: pair.publicKey }],
    tls: { cert: pki.serverCertPem, key: pki.serverKeyPem },
  });
  env = {
    LOGICNETS_URL: emulator.url,
    LOGICNETS_CLIENT_ID: clientId,
    LOGICNETS_PRIVATE_KEY_FILE: keyFile,
    LOGICNETS_CA_FILE: pki.caCertFile,
  };
});

after(async () => {
  await emulator.close();
  pki.cleanup();
});

/** A port nothing listens on: bind one, keep the number, close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function apiStatus(accessToken: string | undefined): Promise<number> {
  const headers: Record<string, string> = accessToken ? { authorization: `Bearer ${accessToken}` } : {};
  return new Promise((resolve, reject) => {
    import('node:https').then(({ request }) => {
      const req = request(`${emulator.url}/WebAPIExample/function_1`, { headers, ca: pki.caCertPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    }, reject);
  });
}

test('--help lists the commands and the settings; --version prints the package version', async () => {
  const help = await runCliProcess(['--help'], {});
  assert.equal(help.code, 0);
  for (const word of ['serve', 'demo', 'token', 'assertion', 'check', 'LOGICNETS_URL', 'LOGICNETS_PRIVATE_KEY_FILE']) {
    assert.ok(help.stdout.includes(word), `help mentions ${word}`);
  }
  const version = await runCliProcess(['--version'], {});
  assert.equal(version.code, 0);
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
});

test('--help fits 100 columns; `help` and `version` work as commands', async () => {
  const help = await runCliProcess(['--help'], {});
  const long = help.stdout.split('\n').filter((line) => line.length > 100);
  assert.deepEqual(long, [], 'lines longer than 100 columns');
  assert.match(help.stdout, /^ {2}UPSTREAM_TIMEOUT +Seconds to wait/m);
  const command = await runCliProcess(['help'], {});
  assert.equal(command.code, 0);
  assert.equal(command.stdout, help.stdout);
  const version = await runCliProcess(['version'], {});
  assert.equal(version.code, 0);
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
});

test('a bad setting stops with one message naming it, exit code 2 and no stack trace', async () => {
  const result = await runCliProcess(['token'], { LOGICNETS_URL: 'ftp://x/y', LOGICNETS_ASSERTION_TTL: '9999' });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /LOGICNETS_URL/);
  assert.match(result.stderr, /LOGICNETS_CLIENT_ID/);
  assert.match(result.stderr, /LOGICNETS_ASSERTION_TTL/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  const unknown = await runCliProcess(['frobnicate'], {});
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
});

test('a value that does not read exactly stops `serve` naming where it came from, environment or file', async () => {
  const fromEnv = await runCliProcess(['serve'], { ...env, LISTEN_PORT: '28082x', UPSTREAM_TIMEOUT: '1 minute', RETRY_BODY_LIMIT: '1MB' });
  assert.equal(fromEnv.code, 2);
  assert.match(fromEnv.stderr, /listenPort \(LISTEN_PORT\): must be a port number \(digits only\), not "28082x"/);
  assert.match(fromEnv.stderr, /upstreamTimeout \(UPSTREAM_TIMEOUT\): must be a duration/);
  assert.match(fromEnv.stderr, /retryBodyLimit \(RETRY_BODY_LIMIT\): .*"MB" is read both as 1000 and as 1024 bytes/);
  assert.doesNotMatch(fromEnv.stderr, /\n\s+at /, 'no stack trace');
  const file = join(dir, 'bad-settings.yaml');
  writeFileSync(file, `upstreamTimeout: 5 minutes\nupstreams:\n  - url: ${emulator.url}\n    clientId: ${clientId}\n    privateKeyFile: ${keyFile}\n    assertionTtl: 2h\n`);
  const fromFile = await runCliProcess(['serve', '--config', file], {});
  assert.equal(fromFile.code, 2);
  assert.match(fromFile.stderr, /upstreamTimeout \(config file\): must be a duration .*not "5 minutes"/);
  assert.match(fromFile.stderr, /upstreams\[0\]\.assertionTtl \(config file\): must be a whole number of seconds from 1 to 3600/);
  assert.doesNotMatch(fromFile.stderr, /\n\s+at /, 'no stack trace');
  const remote = await runCliProcess(['serve'], { ...env, LISTEN_HOST: '0.0.0.0' });
  assert.equal(remote.code, 2);
  assert.match(remote.stderr, /LISTEN_HOST.*not a loopback address.*ALLOW_REMOTE_CLIENTS/);
});

test('with ALLOW_REMOTE_CLIENTS=true a non-loopback LISTEN_HOST starts, with a warning', async (t) => {
  const run = startCliProcess(['serve'], { ...env, LISTEN_HOST: '0.0.0.0', ALLOW_REMOTE_CLIENTS: 'true', LISTEN_PORT: '0', ADMIN_PORT: '0', ADMIN_HOST: '127.0.0.1' });
  t.after(() => { run.child.kill('SIGKILL'); });
  await waitFor(() => run.output().includes('"msg":"listening"'), 'the sidecar to listen');
  const warning = run.output().split('\n').find((line) => line.includes('listenHost (LISTEN_HOST) is not loopback (allowRemoteClients (ALLOW_REMOTE_CLIENTS) is true)'));
  assert.ok(warning, run.output());
  assert.equal((JSON.parse(warning) as { level: string }).level, 'warn');
  const exited = new Promise((resolve) => run.child.once('exit', resolve));
  run.child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('`token` prints a token on stdout that the LogicNets API accepts', async () => {
  assert.equal(await apiStatus(undefined), 403);
  const result = await runCliProcess(['token'], env);
  assert.equal(result.code, 0, result.stderr);
  const token = result.stdout.trim();
  assert.equal(token.split('\n').length, 1);
  assert.match(result.stderr, /token_type=Bearer expires_in=\d+s/);
  assert.ok(!result.stderr.includes(token), 'the token is only on stdout');
  assert.equal(await apiStatus(token), 200);
});

test('`token` works with POST too', async () => {
  const result = await runCliProcess(['token'], { ...env, LOGICNETS_TOKEN_METHOD: 'POST' });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await apiStatus(result.stdout.trim()), 200);
});

test('`assertion` prints a client assertion signed with the key, with the tutorial\'s header and claims', async () => {
  const result = await runCliProcess(['assertion'], { ...env, LOGICNETS_CLIENT_ISSUER: 'https://client.org', LOGICNETS_KEY_ID: 'k1' });
  assert.equal(result.code, 0, result.stderr);
  const jwt = result.stdout.trim();
  const publicKey = await importSPKI(pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'RS256');
  const { payload } = await jwtVerify(jwt, publicKey, { audience: emulator.url, issuer: 'https://client.org', subject: clientId });
  assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 300);
  assert.match(String(payload.jti), /^[0-9a-f-]{36}$/);
  const header = decodeProtectedHeader(jwt);
  assert.equal(header.alg, 'RS256');
  assert.equal(header.typ, 'JWT');
  assert.equal(header.kid, 'k1');
  assert.ok(typeof header.nonce === 'string' && header.nonce.length >= 16);
});

test('`check` walks the setup and probes the API: 403 without, 200 with the token', async () => {
  const result = await runCliProcess(['check', '--probe', `${emulator.url}/WebAPIExample/function_1`], env);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  for (const step of ['configuration', 'key', 'clock', 'token request', 'probe']) {
    assert.match(result.stdout, new RegExp(`^ok\\s+${step}`, 'm'), `step ${step} ok`);
  }
  assert.match(result.stdout, /without token 403, with token 200/);
});

test('`check --probe` on an API that refuses the token names the upstream URL setting as it was set', async () => {
  const result = await runCliProcess(['check', '--probe', `${emulator.url}/_status?code=401`], env);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^FAILED\s+probe\s+.*without token 403, with token 401; the API refuses the token: check that url \(LOGICNETS_URL\) names the same installation/m);
});

test('`check` explains a wrong client id in one line', async () => {
  const result = await runCliProcess(['check'], { ...env, LOGICNETS_CLIENT_ID: 'WRONG-CLIENT' });
  assert.equal(result.code, 1);
  const failed = result.stdout.split('\n').filter((l) => l.startsWith('FAILED'));
  assert.equal(failed.length, 1, result.stdout);
  assert.match(failed[0] ?? '', /token request.*invalid_client.*LOGICNETS_CLIENT_ID/);
});

test('`check` explains a wrong key in one line', async () => {
  const result = await runCliProcess(['check'], { ...env, LOGICNETS_PRIVATE_KEY_FILE: otherKeyFile });
  assert.equal(result.code, 1);
  const failed = result.stdout.split('\n').filter((l) => l.startsWith('FAILED'));
  assert.equal(failed.length, 1, result.stdout);
  assert.match(failed[0] ?? '', /token request.*invalid_client.*key/i);
});

test('`check` explains an unreachable token endpoint in one line', async () => {
  const port = await closedPort();
  const result = await runCliProcess(['check'], { ...env, LOGICNETS_TOKEN_URL: `http://127.0.0.1:${port}/logicnets/oauth2token` });
  assert.equal(result.code, 1);
  const failed = result.stdout.split('\n').filter((l) => l.startsWith('FAILED'));
  assert.equal(failed.length, 1, result.stdout);
  assert.match(failed[0] ?? '', new RegExp(`token request.*127\\.0\\.0\\.1:${port}`));
  // No answer, so no Date header to blame: the clock comparison is skipped, not a warning.
  assert.match(result.stdout, /^skip\s+clock\s+skipped: no answer from /m);
  assert.doesNotMatch(result.stdout, /Date header/);
});

test('`check` reports an unusable key file without printing it', async () => {
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, '-----BEGIN PRIVATE KEY-----\nTOPSECRETGARBAGE\n-----END PRIVATE KEY-----\n');
  const result = await runCliProcess(['check'], { ...env, LOGICNETS_PRIVATE_KEY_FILE: garbage });
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^FAILED\s+key\s+.*garbage\.pem/m);
  assert.ok(!(result.stdout + result.stderr).includes('TOPSECRETGARBAGE'));
});

test('`check --probe` refuses to send the token outside the configured installation', async () => {
  const result = await runCliProcess(['check', '--probe', 'https://elsewhere.example/logicnets/WebAPIExample/function_1'], env);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^FAILED\s+probe\s+https:\/\/elsewhere\.example\/logicnets\/WebAPIExample\/function_1 is not under/m);
  assert.match(result.stdout, /^ok\s+token request/m);
});
