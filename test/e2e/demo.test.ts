// The `demo` command end to end: the printed curl lines work as printed (403 without the sidecar,
// 200 through it in both modes), in-process through `startDemo` and as the real CLI process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startDemo } from '../../src/commands/demo.js';
import { startCliProcess, waitFor } from '../helpers/cli.js';
import { call, refused } from '../helpers/e2e-stack.js';

const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;

/** One printed curl line taken apart: `[name=value ...] curl [-i] [-x proxy] url`. */
interface CurlLine {
  readonly line: string;
  readonly env: Record<string, string>;
  readonly proxy: string | undefined;
  readonly url: URL;
}

function curlLines(lines: readonly string[]): CurlLine[] {
  return lines.map((l) => l.trim()).filter((l) => /^(\w+=\S+ )*curl /.test(l)).map((line) => {
    const words = line.split(/\s+/);
    const env: Record<string, string> = {};
    while (words[0] !== 'curl') {
      const [name, ...value] = (words.shift() as string).split('=');
      env[name as string] = value.join('=');
    }
    const x = words.indexOf('-x');
    return { line, env, proxy: x === -1 ? undefined : words[x + 1], url: new URL(words.at(-1) as string) };
  });
}

/** Status of one line run with node:http, reading the proxy the way curl does (`-x`, else lower-case `http_proxy`). */
async function statusWithNode(curl: CurlLine): Promise<number> {
  const proxy = curl.proxy ?? curl.env.http_proxy;
  if (proxy !== undefined) return (await call(Number(new URL(proxy).port), curl.url.href)).status;
  return (await call(Number(curl.url.port), `${curl.url.pathname}${curl.url.search}`)).status;
}

/** Status of one line run by the real curl through a shell, exactly as printed. */
function statusWithCurl(curl: CurlLine): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', `${curl.line} -s -o /dev/null --max-time 10 -w '%{http_code}'`],
      { env: { PATH: process.env.PATH ?? '' } }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${curl.line}: ${stderr}`));
        else resolve(Number(stdout));
      });
  });
}

/** Which status each kind of line must give: the API without the sidecar refuses (403), everything else 200. */
function expectations(lines: readonly string[], emulatorOrigin: string): { curl: CurlLine; expected: number; kind: string }[] {
  return curlLines(lines).map((curl) => {
    const proxied = curl.proxy !== undefined || Object.keys(curl.env).length > 0;
    const direct = !proxied && curl.url.origin === emulatorOrigin;
    const kind = proxied ? 'forward' : direct ? 'direct' : curl.url.pathname.startsWith('/logicnets/') ? 'gateway' : 'admin';
    return { curl, expected: direct ? 403 : 200, kind };
  });
}


function demoDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith('logicnets-token-proxy-demo-'));
}

test('startDemo: the printed lines give 403 direct, 200 in gateway and forward mode; stop() cleans up', async () => {
  const dirsBefore = demoDirs();
  const demo = await startDemo({ LISTEN_PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'silent' });
  const ports = [demo.sidecar.proxyPort, demo.sidecar.adminPort, demo.emulator.port];
  try {
    const cases = expectations(demo.lines, new URL(demo.emulator.url).origin);
    assert.deepEqual([...new Set(cases.map((c) => c.kind))].sort(), ['admin', 'direct', 'forward', 'gateway']);
    for (const { curl, expected } of cases) assert.equal(await statusWithNode(curl), expected, curl.line);
    assert.equal(demo.emulator.stats.tokenRequests, 1);
  } finally {
    await demo.stop();
  }
  for (const port of ports) assert.equal(await refused(port), true, `port ${port} is closed after stop()`);
  assert.deepEqual(demoDirs(), dirsBefore, 'the key folder is removed');
});

test('regression: every printed curl line works when run by curl as printed (curl ignores HTTP_PROXY, reads http_proxy)',
  { skip: hasCurl ? false : 'curl is not installed' }, async () => {
    const demo = await startDemo({ LISTEN_PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'silent' });
    try {
      const cases = expectations(demo.lines, new URL(demo.emulator.url).origin);
      for (const { curl, expected } of cases) assert.equal(await statusWithCurl(curl), expected, curl.line);
      assert.ok(cases.some((c) => 'http_proxy' in c.curl.env), 'a line shows the proxy variable');
    } finally {
      await demo.stop();
    }
  });

test('`demo` as a process prints working lines and exits 0 on SIGINT', async () => {
  const { child, output } = startCliProcess(['demo'], { LISTEN_PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'warn' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`demo exited early: ${output()}`);
      return output().includes('Press Ctrl+C to stop.');
    }, 'the demo to print its lines');
    const lines = output().split('\n');
    const emulatorLine = lines.find((l) => l.startsWith('LogicNets emulator: ')) ?? '';
    const emulatorOrigin = new URL(emulatorLine.split(' ')[2] as string).origin;
    const cases = expectations(lines, emulatorOrigin);
    assert.ok(cases.length >= 5, output());
    for (const { curl, expected } of cases) {
      assert.equal(hasCurl ? await statusWithCurl(curl) : await statusWithNode(curl), expected, curl.line);
    }
    child.kill('SIGINT');
    assert.equal(await exited, 0, output());
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
