// Guards: with the whole stack logging at `trace` (sidecar and LogicNets emulator into one sink),
// no access token, client assertion, private key, Authorization header or URL query reaches the
// log, through GET and POST token requests, 401 resends, token endpoint failures and key reloads.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { Emulator } from '../../src/emulator/emulator.js';
import { call, echoedToken, makeServerUser, makeWorkDir, startE2eEmulator, startE2eSidecar } from '../helpers/e2e-stack.js';
import type { E2eSidecar, Reply, ServerUser } from '../helpers/e2e-stack.js';
import { makeLogSink, secretFragments } from '../helpers/log-sink.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { makeTestPki } from '../helpers/tls.js';
import type { TestPki } from '../helpers/tls.js';
import { waitUntil } from '../helpers/wait-until.js';

const CLIENT_SECRET = 'Basic Y2xpZW50LXVzZXI6Y2xpZW50LXBhc3N3b3Jk';
const QUERY_SECRET = 'query-secret-value-4711';
const BODY_SECRET = 'body-secret-value-0815';
/** JWT-shaped, in an error description the token endpoint sends back. */
const ECHOED_JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlY2hvZWQtYnktdGhlLXNlcnZlciJ9.ZWNob2VkLXNpZ25hdHVyZS1ieXRlcw';

const dir = makeWorkDir();
const getUser = makeServerUser(dir, 'get');
const postUser = makeServerUser(dir, 'post');
const sink = makeLogSink('trace');
const clock = new ManualClock();

let pki: TestPki;
let getEmulator: Emulator;
let postEmulator: Emulator;
let sidecar: E2eSidecar;

before(async () => {
  pki = makeTestPki();
  [getEmulator, postEmulator] = await Promise.all([
    startE2eEmulator({ pki, users: [getUser], company: 'logicnets', clock, logger: sink.logger }),
    startE2eEmulator({ pki, users: [postUser], company: 'sales', clock, logger: sink.logger }),
  ]);
  const upstream = (name: string, emulator: Emulator, user: ServerUser, tokenMethod: string) => ({
    name, url: emulator.url, clientId: user.clientId, privateKeyFile: user.keyFile, caFile: pki.caCertFile, tokenMethod,
  });
  const configFile = dir.write('sidecar.yaml', stringify({
    listenPort: 0, adminPort: 0, adminHost: '127.0.0.1', logLevel: 'trace',
    upstreams: [upstream('get-upstream', getEmulator, getUser, 'GET'), upstream('post-upstream', postEmulator, postUser, 'POST')],
  }));
  // Tokens are revoked several times to log resends: no forced-refresh floor between them.
  sidecar = await startE2eSidecar({ env: { TOKEN_FORCED_REFRESH_FLOOR: '0' }, configFile, clock, logger: sink.logger });
});

after(async () => {
  await sidecar?.close();
  await Promise.all([getEmulator?.close(), postEmulator?.close()]);
  pki?.cleanup();
  dir.cleanup();
});

/** Every access token the emulators were seen to accept. */
const seenTokens = new Set<string>();

async function send(target: string, options: { method?: string; body?: string } = {}): Promise<Reply> {
  const reply = await call(sidecar.proxyPort, target, {
    method: options.method,
    body: options.body,
    headers: { authorization: CLIENT_SECRET, 'proxy-authorization': CLIENT_SECRET, cookie: `session=${QUERY_SECRET}` },
  });
  if (reply.status === 200) seenTokens.add(echoedToken(reply.json()));
  return reply;
}

async function throughBoth(expected: number): Promise<void> {
  const get = await send(`/logicnets/_echo?access_token=${QUERY_SECRET}`);
  assert.equal(get.status, expected, get.body.toString());
  const post = await send(`http://127.0.0.1:${postEmulator.port}/sales/_echo?token=${QUERY_SECRET}`, { method: 'POST', body: BODY_SECRET });
  assert.equal(post.status, expected, post.body.toString());
}

function tokensOf(index: number) {
  return sidecar.sidecar.stacks[index]!.tokens;
}

/** Moves the clock to the planned retry of upstream `index` and waits (bounded) for its token. */
async function recover(index: number): Promise<void> {
  const at = tokensOf(index).state().nextRefreshAt;
  assert.ok(at !== undefined);
  await clock.advance(at - clock.now());
  await waitUntil(() => tokensOf(index).peek() !== undefined, `upstream ${index} has a token again`);
}

function logged(message: string): boolean {
  return sink.entries().some((e) => e.msg === message || String(e.msg).startsWith(message));
}

test('GET and POST token requests, 401 resends, token endpoint failures and key reloads log no secret at trace', async () => {
  await waitUntil(() => tokensOf(0).peek() !== undefined && tokensOf(1).peek() !== undefined, 'both upstreams have a token');

  // GET (query) and POST (form) token methods, gateway and forward mode.
  await throughBoth(200);
  assert.equal((await send(`http://user:${QUERY_SECRET}@127.0.0.1:${postEmulator.port}/sales/_echo`)).status, 400);

  // The API refuses the token: resend once with a fresh one.
  getEmulator.revokeAll();
  postEmulator.revokeAll();
  await throughBoth(200);
  assert.equal(seenTokens.size, 4);

  // The token endpoint fails: an OAuth error echoing a JWT, and a cut connection.
  getEmulator.setTokenEndpointFault({
    status: 401, contentType: 'application/json',
    body: JSON.stringify({ error: 'invalid_client', error_description: `the assertion ${ECHOED_JWT} was refused` }),
  });
  postEmulator.setTokenEndpointFault('reset');
  getEmulator.revokeAll();
  postEmulator.revokeAll();
  await throughBoth(503);
  getEmulator.setTokenEndpointFault(null);
  postEmulator.setTokenEndpointFault(null);
  await recover(1);
  await recover(0);

  // The key file changes: the same key in another format (reloaded), then a broken file (refused).
  writeFileSync(postUser.keyFile, postUser.key.pkcs1Pem);
  await waitUntil(() => logged('reloaded the private key'), 'the key was reloaded');
  writeFileSync(postUser.keyFile, `-----BEGIN PRIVATE KEY-----\n${Buffer.from(QUERY_SECRET.repeat(8)).toString('base64')}\n-----END PRIVATE KEY-----\n`);
  await waitUntil(() => logged('the private key file changed but the new key cannot be used'), 'the broken key was refused');
  postEmulator.revokeAll();
  await throughBoth(200);
  assert.ok(seenTokens.size >= 6);

  // The log is there and has the events...
  const text = sink.text();
  const entries = sink.entries();
  assert.ok(entries.some((e) => e.level === 'trace'), 'trace lines were written');
  assert.equal(entries.filter((e) => e.msg === 'request').length, 9, 'one request line per request');
  for (const message of ['obtained a new access token', 'dropped the cached access token', 'could not get an access token']) {
    assert.ok(logged(message), `the log has "${message}"`);
  }

  // ... and no secret.
  const secrets = [
    ...seenTokens, CLIENT_SECRET, CLIENT_SECRET.slice('Basic '.length), QUERY_SECRET, BODY_SECRET, ECHOED_JWT,
    ...[getUser, postUser].flatMap((u) => [u.key.pkcs8Pem, u.key.pkcs1Pem]),
  ];
  for (const secret of secrets) {
    for (const fragment of secretFragments(secret)) {
      assert.equal(text.includes(fragment), false, `the log contains a secret fragment: ${fragment.slice(0, 12)}...`);
    }
  }
  for (const user of [getUser, postUser]) {
    const jwk = JSON.parse(user.key.jwkJson) as Record<string, string>;
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'n']) {
      assert.equal(text.includes(jwk[member] as string), false, `the log contains the key's ${member}`);
    }
  }
  assert.equal(text.includes('client_assertion='), false, 'no token request query or form body');
  assert.doesNotMatch(text, /eyJ/, 'nothing JWT-shaped at all');
  assert.doesNotMatch(text, /Bearer/);
});
