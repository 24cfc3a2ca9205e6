import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate authority and a server certificate made for one test run with the openssl CLI. */
export interface TestPki {
  /** Folder holding the files; removed by `cleanup()`. */
  dir: string;
  caCertPem: string;
  caCertFile: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Removes the folder. */
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Makes a fresh CA and a server certificate signed by it, valid for `localhost`, `127.0.0.1` and
 * `::1` (plus `extraNames`). Nothing is trusted globally: pass `caCertPem` / `caCertFile` to what
 * should trust it.
 */
export function makeTestPki(extraNames: string[] = []): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'ltp-pki-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', '2', '-subj', '/CN=logicnets-token-proxy test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=localhost'], dir);
  const names = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...extraNames.map((n) => `DNS:${n}`)];
  writeFileSync(join(dir, 'ext.cnf'),
    `subjectAltName=${names.join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf'], dir);
  return {
    dir,
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
 * CA, with a fresh 2048-bit RSA key; files `<name>.crt` and `<name>.key` in `pki.dir`.
 */
export function makeClientCertificate(pki: TestPki, name: string): TestClientCertificate {
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], pki.dir);
  writeFileSync(join(pki.dir, `${name}.cnf`), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.cnf`], pki.dir);
  const certFile = join(pki.dir, `${name}.crt`);
  const keyFile = join(pki.dir, `${name}.key`);
  return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}
