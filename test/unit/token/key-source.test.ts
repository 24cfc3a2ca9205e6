import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyError } from '../../../src/lib/errors.js';
import { KeySource } from '../../../src/token/key-source.js';
import { parsePrivateKey } from '../../../src/token/private-key.js';
import { makeLogSink, secretFragments } from '../../helpers/log-sink.js';
import { makeRsaKey, sharedRsaKey } from '../../helpers/rsa-keys.js';
import type { RsaTestKey } from '../../helpers/rsa-keys.js';
import { waitUntil } from '../../helpers/wait-until.js';

/** The modulus of a key's public half: equal moduli mean the same key. */
function modulus(key: KeyObject): string {
  return String(createPublicKey(key).export({ format: 'jwk' }).n);
}

function assertKeyError(fn: () => unknown, origin: string, about: RegExp, content: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KeyError, `expected KeyError, got ${String(error)}`);
    assert.equal(error.code, 'key_invalid');
    assert.ok(error.message.includes(origin), `message names the origin: ${error.message}`);
    assert.match(error.message, about);
    for (const fragment of secretFragments(content).filter((f) => f !== '')) {
      assert.ok(!error.message.includes(fragment), 'message must not contain key content');
    }
    if (content.length > 12) assert.ok(!error.message.includes(content.slice(0, 40)), 'message must not quote the input');
    return true;
  });
}

describe('parsePrivateKey', () => {
  let key: RsaTestKey;
  before(() => {
    key = sharedRsaKey(0);
  });

  it('reads PKCS#8 PEM, PKCS#1 PEM, JWK JSON and a one-key JWK set as the same key', () => {
    const expected = modulus(key.privateKey);
    assert.match(key.pkcs8Pem, /BEGIN PRIVATE KEY/);
    assert.match(key.pkcs1Pem, /BEGIN RSA PRIVATE KEY/);
    for (const text of [key.pkcs8Pem, key.pkcs1Pem, key.jwkJson, JSON.stringify({ keys: [JSON.parse(key.jwkJson)] })]) {
      const parsed = parsePrivateKey(text, 'test');
      assert.equal(parsed.type, 'private');
      assert.equal(parsed.asymmetricKeyType, 'rsa');
      assert.equal(modulus(parsed), expected);
    }
  });

  it('reads a PEM whose line breaks were written as \\n escapes (environment variables)', () => {
    const escaped = key.pkcs8Pem.trim().replace(/\n/g, '\\n');
    assert.equal(modulus(parsePrivateKey(escaped, 'LOGICNETS_PRIVATE_KEY')), modulus(key.privateKey));
  });

  it('refuses an EC key (PEM and JWK), naming the origin and not the content', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const ecPem = ec.export({ type: 'pkcs8', format: 'pem' }).toString();
    assertKeyError(() => parsePrivateKey(ecPem, '/keys/ec.pem'), '/keys/ec.pem', /EC key; RS256 needs an RSA key/, ecPem);
    const ecJwk = JSON.stringify(ec.export({ format: 'jwk' }));
    assertKeyError(() => parsePrivateKey(ecJwk, 'LOGICNETS_PRIVATE_KEY'), 'LOGICNETS_PRIVATE_KEY', /kty "EC", not "RSA"/, ecJwk);
  });

  it('refuses a 1024-bit RSA key', () => {
    const small = makeRsaKey(1024);
    assertKeyError(() => parsePrivateKey(small.pkcs1Pem, '/keys/small.pem'), '/keys/small.pem', /1024 bits; RS256 needs 2048/, small.pkcs1Pem);
    assertKeyError(() => parsePrivateKey(small.jwkJson, '/keys/small.json'), '/keys/small.json', /1024 bits/, small.jwkJson);
  });

  it('refuses garbage, empty input, broken PEM, broken JSON, public keys and encrypted keys', () => {
    const garbage = 'this-is-not-a-key-but-a-password-SuperSecret123';
    assertKeyError(() => parsePrivateKey(garbage, 'K1'), 'K1', /neither a PEM block/, garbage);
    assertKeyError(() => parsePrivateKey('  \n', 'K2'), 'K2', /is empty/, '');
    const damaged = key.pkcs8Pem.replace(/[A-Za-z]{20}/, 'xxxxxxxxxxxxxxxxxxxx').slice(0, 400) + '\n-----END PRIVATE KEY-----\n';
    assertKeyError(() => parsePrivateKey(damaged, 'K3'), 'K3', /cannot be parsed/, damaged);
    const brokenJson = '{"kty":"RSA","d":"SuperSecretMaterial1234567890",';
    assertKeyError(() => parsePrivateKey(brokenJson, 'K4'), 'K4', /not valid JSON/, brokenJson);
    const publicPem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assertKeyError(() => parsePrivateKey(publicPem, 'K5'), 'K5', /public key, not the private key/, publicPem);
    assertKeyError(() => parsePrivateKey(JSON.stringify(key.publicJwk), 'K6'), 'K6', /public key \(no "d" member\)/, key.publicJwk.n);
    const encrypted = key.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }).toString();
    assertKeyError(() => parsePrivateKey(encrypted, 'K7'), 'K7', /encrypted with a passphrase/, encrypted);
    assertKeyError(() => parsePrivateKey('{"keys":[]}', 'K8'), 'K8', /holds 0 keys/, '');
  });
});

describe('KeySource', () => {
  let dir: string;
  let keyA: RsaTestKey;
  let keyB: RsaTestKey;
  let keyC: RsaTestKey;
  const sources: KeySource[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ltp-keys-'));
    [keyA, keyB, keyC] = [sharedRsaKey(0), sharedRsaKey(1), sharedRsaKey(2)];
  });
  after(() => {
    for (const source of sources) source.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(options: Partial<Parameters<typeof KeySource.open>[0]> & { origin: string }) {
    const sink = options.logger ? undefined : makeLogSink('trace');
    const source = await KeySource.open({ pollIntervalMs: 20, logger: sink?.logger ?? options.logger!, ...options });
    sources.push(source);
    return { source, sink };
  }

  function allKeyFragments(): string[] {
    return [keyA, keyB, keyC].flatMap((k) => [
      ...secretFragments(k.pkcs8Pem), ...secretFragments(k.pkcs1Pem),
      ...['d', 'p'].map((name) => String((JSON.parse(k.jwkJson) as Record<string, unknown>)[name])),
    ]);
  }

  it('opens PKCS#1, PKCS#8 and JWK key files and an inline key', async () => {
    for (const [name, text] of [['a.pkcs1.pem', keyA.pkcs1Pem], ['a.pkcs8.pem', keyA.pkcs8Pem], ['a.jwk.json', keyA.jwkJson]] as const) {
      const sub = join(dir, `open-${name}`);
      mkdirSync(sub);
      writeFileSync(join(sub, name), text);
      const { source } = await open({ file: join(sub, name), origin: join(sub, name) });
      assert.equal(modulus(source.current()), modulus(keyA.privateKey));
      assert.deepEqual(source.publicJwk(), keyA.publicJwk);
      source.close();
    }
    const { source } = await open({ inline: keyA.pkcs8Pem, origin: 'LOGICNETS_PRIVATE_KEY' });
    assert.equal(modulus(source.current()), modulus(keyA.privateKey));
  });

  it('fails to open a missing file, a bad key, or no/both sources, naming the origin', async () => {
    const missing = join(dir, 'missing.pem');
    await assert.rejects(open({ file: missing, origin: missing }), (error: unknown) => {
      assert.ok(error instanceof KeyError);
      assert.match(error.message, new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: it does not exist`));
      return true;
    });
    const bad = join(dir, 'bad.pem');
    writeFileSync(bad, 'garbage-garbage-garbage');
    await assert.rejects(open({ file: bad, origin: bad }), (error: unknown) => error instanceof KeyError && error.message.includes(bad));
    await assert.rejects(open({ origin: 'LOGICNETS_PRIVATE_KEY' }), KeyError);
    await assert.rejects(open({ origin: 'X', file: bad, inline: keyA.pkcs8Pem }), KeyError);
  });

  it('picks up a rewritten key file, keeps the old key when the new one is broken, and never logs key material', async () => {
    const sub = join(dir, 'rewrite');
    mkdirSync(sub);
    const file = join(sub, 'key.pem');
    writeFileSync(file, keyA.pkcs8Pem);
    const { source, sink } = await open({ file, origin: file });
    assert.equal(modulus(source.current()), modulus(keyA.privateKey));

    writeFileSync(file, keyB.pkcs1Pem);
    await waitUntil(() => modulus(source.current()) === modulus(keyB.privateKey), 'the rewritten key is in use');
    await waitUntil(() => sink!.entries().some((e) => e.level === 'info' && /reloaded the private key/.test(String(e.msg))),
      'the reload is logged');

    writeFileSync(file, '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n');
    await waitUntil(() => sink!.entries().some((e) => e.level === 'error' && /previous key stays in use/.test(String(e.msg))),
      'the broken key is reported');
    assert.equal(modulus(source.current()), modulus(keyB.privateKey), 'the previous key stays in use');
    const errors = sink!.entries().filter((e) => e.level === 'error');
    assert.equal(errors.length, 1, 'a broken file is reported once, not on every poll');
    assert.ok(String(errors[0]?.msg).includes(file), 'the error names the file');

    writeFileSync(file, keyC.jwkJson);
    await waitUntil(() => modulus(source.current()) === modulus(keyC.privateKey), 'a fixed key is used again');

    const logged = sink!.text();
    for (const fragment of allKeyFragments()) assert.ok(!logged.includes(fragment), 'no key material in the log');
  });

  it('follows a Kubernetes-style Secret update (..data symlink swap)', async () => {
    const secretDir = join(dir, 'secret');
    mkdirSync(join(secretDir, '..2026_01_01_a'), { recursive: true });
    writeFileSync(join(secretDir, '..2026_01_01_a', 'key.pem'), keyA.pkcs1Pem);
    symlinkSync('..2026_01_01_a', join(secretDir, '..data'));
    symlinkSync(join('..data', 'key.pem'), join(secretDir, 'key.pem'));
    const file = join(secretDir, 'key.pem');
    const { source, sink } = await open({ file, origin: file });
    assert.equal(modulus(source.current()), modulus(keyA.privateKey));

    // What the kubelet does: write a new timestamped folder, point ..data_tmp at it, rename over ..data.
    mkdirSync(join(secretDir, '..2026_01_01_b'));
    writeFileSync(join(secretDir, '..2026_01_01_b', 'key.pem'), keyB.pkcs8Pem);
    symlinkSync('..2026_01_01_b', join(secretDir, '..data_tmp'));
    renameSync(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
    rmSync(join(secretDir, '..2026_01_01_a'), { recursive: true });
    await waitUntil(() => modulus(source.current()) === modulus(keyB.privateKey), 'the swapped-in key is in use');

    // A broken key arriving the same way keeps the current one.
    mkdirSync(join(secretDir, '..2026_01_01_c'));
    writeFileSync(join(secretDir, '..2026_01_01_c', 'key.pem'), 'not a key');
    symlinkSync('..2026_01_01_c', join(secretDir, '..data_tmp'));
    renameSync(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
    await waitUntil(() => sink!.entries().some((e) => e.level === 'error'), 'the broken key is reported');
    assert.equal(modulus(source.current()), modulus(keyB.privateKey));
    const logged = sink!.text();
    for (const fragment of allKeyFragments()) assert.ok(!logged.includes(fragment), 'no key material in the log');
  });

  it('notices a change the folder watcher cannot see (symlink into another folder) by polling', async () => {
    const targetDir = join(dir, 'elsewhere');
    const linkDir = join(dir, 'linked');
    mkdirSync(targetDir);
    mkdirSync(linkDir);
    writeFileSync(join(targetDir, 'key.pem'), keyA.pkcs8Pem);
    symlinkSync(join(targetDir, 'key.pem'), join(linkDir, 'key.pem'));
    const file = join(linkDir, 'key.pem');
    const { source } = await open({ file, origin: file });
    writeFileSync(join(targetDir, 'key.pem'), keyB.pkcs8Pem);
    await waitUntil(() => modulus(source.current()) === modulus(keyB.privateKey), 'polling picked up the new key');
  });

  it('picks up a Secret swap through the folder watcher long before the next poll', async () => {
    const secretDir = join(dir, 'watched');
    mkdirSync(join(secretDir, '..v1'), { recursive: true });
    writeFileSync(join(secretDir, '..v1', 'key.pem'), keyA.pkcs8Pem);
    symlinkSync('..v1', join(secretDir, '..data'));
    symlinkSync(join('..data', 'key.pem'), join(secretDir, 'key.pem'));
    const file = join(secretDir, 'key.pem');
    const { source } = await open({ file, origin: file, pollIntervalMs: 600_000 });
    mkdirSync(join(secretDir, '..v2'));
    writeFileSync(join(secretDir, '..v2', 'key.pem'), keyB.pkcs8Pem);
    symlinkSync('..v2', join(secretDir, '..data_tmp'));
    renameSync(join(secretDir, '..data_tmp'), join(secretDir, '..data'));
    await waitUntil(() => modulus(source.current()) === modulus(keyB.privateKey), 'the watcher saw the swap');
  });

  it('stops reloading after close()', async () => {
    const sub = join(dir, 'closed');
    mkdirSync(sub);
    const file = join(sub, 'key.pem');
    writeFileSync(file, keyA.pkcs8Pem);
    const { source } = await open({ file, origin: file });
    source.close();
    source.close();
    writeFileSync(file, keyB.pkcs8Pem);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(modulus(source.current()), modulus(keyA.privateKey));
  });
});
