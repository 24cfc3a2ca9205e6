import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate authority and a server certificate made for one test run with the openssl CLI. */
export interface TestPki {
  /** Folder holding the files; removed by `cleanup()`. */
  dir: string;
  /** The kind of every key made for this PKI, client certificates' included. */
  keyType: TestKeyType;
  caCertPem: string;
  caCertFile: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Removes the folder. */
  cleanup(): void;
}

/**
 * The kind of key the certificates get. EC P-256, the default, gives real keys and real signatures
 * made in a few milliseconds, where an RSA-2048 key takes about 150 ms of CPU and makes every
 * handshake dearer; `rsa` keeps a test of the most common real-world certificates. (The sidecar's
 * JWT signing keys are another thing: RS256, made by `rsa-keys.ts`.)
 */
export type TestKeyType = 'ec' | 'rsa';

function newKeyArgs(keyType: TestKeyType): string[] {
  return keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Makes a fresh CA and a server certificate signed by it, valid for `localhost`, `127.0.0.1` and
 * `::1` (plus `extraNames`). Nothing is trusted globally: pass `caCertPem` / `caCertFile` to what
 * should trust it. Keys are EC P-256 unless `keyType` is `rsa`.
 */
export function makeTestPki(extraNames: string[] = [], keyType: TestKeyType = 'ec'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'ltp-pki-'));
  openssl(['req', '-x509', ...newKeyArgs(keyType), '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', '2', '-subj', '/CN=logicnets-token-proxy test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', ...newKeyArgs(keyType), '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=localhost'], dir);
  const names = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...extraNames.map((n) => `DNS:${n}`)];
  writeFileSync(join(dir, 'ext.cnf'),
    `subjectAltName=${names.join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf'], dir);
  return {
    dir,
    keyType,
    caCertPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    caCertFile: join(dir, 'ca.crt'),
    serverCertPem: readFileSync(join(dir, 'server.crt'), 'utf8'),
    serverKeyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A client certificate (for mTLS) and its key, as PEM text and as files in the PKI's folder. */
export interface TestClientCertificate {
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
}

/**
 * Makes a client certificate (`extendedKeyUsage=clientAuth`, subject `CN=<name>`) signed by `pki`'s
 * CA, with a fresh key of the PKI's `keyType`; files `<name>.crt` and `<name>.key` in `pki.dir`.
 */
export function makeClientCertificate(pki: TestPki, name: string): TestClientCertificate {
  openssl(['req', ...newKeyArgs(pki.keyType), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], pki.dir);
  writeFileSync(join(pki.dir, `${name}.cnf`), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.cnf`], pki.dir);
  const certFile = join(pki.dir, `${name}.crt`);
  const keyFile = join(pki.dir, `${name}.key`);
  return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}
