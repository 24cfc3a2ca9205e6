#!/usr/bin/env node
// `npm run bench`: what the sidecar costs, measured against a bare http-proxy-3 proxy (the floor of
// the library it is built on) and against calling the upstream directly, in the same run (issue 5).
//
// The parent process only drives load (autocannon's programmatic API). The lean upstream, the
// sidecar and the baseline each run in a child process (this same file with `--role`), so the load
// generator and the servers do not share an event loop; the children report ports, memory and CPU
// over IPC. Everything listens on 127.0.0.1 port 0; every child is killed at the end, even on error.
//
// Usage: node scripts/bench.mjs [--duration SEC] [--rounds N] [--quick] [--profile] [--out DIR] [--src]
//   --duration  seconds per load (default 5)         --rounds  interleaved rounds (default 2)
//   --quick     short warm-up and idle wait (smoke runs and the test)
//   --profile   run the sidecar and baseline children under `node --cpu-prof`; print where the time goes
//   --out       directory for the JSON results (default bench-results/)
//   --src       load the sidecar from src/*.ts instead of dist/*.js (needs `node --import tsx`)
//   --sidecar-env NAME=VALUE  extra setting for the sidecar (config and process environment), repeatable;
//               measures a feature on and off, e.g. --sidecar-env LOG_LEVEL=warn
import { fork } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SCRIPT = fileURLToPath(import.meta.url);
const REPO = resolve(dirname(SCRIPT), '..');
const LOOPBACK = '127.0.0.1';
const COMPANY = 'logicnets';
const API_PATH = `/${COMPANY}/api/bench`;
const MB = 1024 * 1024;

/** The load configurations, in the order each round runs them. */
const CONFIGS = [
  { id: 'get-c1', label: 'GET c=1', method: 'GET', connections: 1 },
  { id: 'get-c50', label: 'GET c=50', method: 'GET', connections: 50 },
  { id: 'get-c200', label: 'GET c=200', method: 'GET', connections: 200 },
  { id: 'post64k-c50', label: 'POST 64KiB c=50', method: 'POST', connections: 50, bodyBytes: 64 * 1024 },
];
const TARGETS = ['direct', 'baseline', 'sidecar'];

/** Issue 5's targets. */
const LIMITS = {
  throughputVsBaseline: 0.9,
  p99DeltaMs: 1,
  tokenRequests: 1,
  idleRssMB: 70,
  rssVsBaseline: 1.1,
  readyMs: 500,
  noiseSpread: 0.15,
};

const { values: args } = parseArgs({
  options: {
    role: { type: 'string' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO, 'bench-results') },
    src: { type: 'boolean', default: false },
    'sidecar-env': { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', default: false },
    // child-only
    target: { type: 'string' },
    'upstream-url': { type: 'string' },
    'key-file': { type: 'string' },
    'log-file': { type: 'string' },
  },
  strict: true,
});

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

/** Answers the parent's IPC requests `{id, type, ...}` with `{id, ok, value | error}`; exits when the parent goes. */
function serveIpc(handlers) {
  const all = {
    usage: ({ gc }) => {
      if (gc && typeof globalThis.gc === 'function') {
        globalThis.gc();
        globalThis.gc();
      }
      const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
      return { rss, heapTotal, heapUsed, external, arrayBuffers, cpu: process.cpuUsage() };
    },
    ...handlers,
  };
  process.on('message', (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.id !== 'number') return;
    const handler = all[msg.type];
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

/** Closes a server and its idle keep-alive sockets, bounded. */
function closeServer(server) {
  return new Promise((done) => {
    const timer = setTimeout(done, 2000);
    server.close(() => { clearTimeout(timer); done(); });
    server.closeAllConnections?.();
  });
}

/** The lean upstream: a token endpoint at `/<company>/oauth2token` and a small JSON answer everywhere else. */
async function roleUpstream() {
  let tokenRequests = 0;
  let requests = 0;
  const okBody = Buffer.from(JSON.stringify({ ok: true, service: 'bench-upstream' }));
  const tokenBody = Buffer.from(JSON.stringify({ access_token: `bench-${randomUUID()}`, token_type: 'Bearer', expires_in: 3600 }));
  const tokenPath = /^\/[^/?]+\/oauth2token(?:\?|$)/;
  const server = http.createServer((req, res) => {
    requests++;
    const isToken = tokenPath.test(req.url ?? '');
    if (isToken) tokenRequests++;
    req.on('end', () => {
      const body = isToken ? tokenBody : okBody;
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': body.length,
        ...(isToken ? { 'cache-control': 'no-store' } : {}),
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
    stats: () => ({ tokenRequests, requests, connections }),
    stop: () => closeServer(server),
  });
  process.send({ type: 'ready', port: server.address().port });
}

/** The baseline: a bare http-proxy-3 proxy with a keep-alive agent that adds a fixed Authorization header. */
async function roleBaseline() {
  const { createProxyServer } = await import('http-proxy-3');
  const agent = new http.Agent({ keepAlive: true });
  const proxy = createProxyServer({ target: args.target, agent });
  proxy.on('proxyReq', (proxyReq) => proxyReq.setHeader('Authorization', 'Bearer x'));
  proxy.on('error', (_error, _req, res) => {
    if (typeof res.writeHead === 'function' && !res.headersSent) res.writeHead(502);
    res.end?.();
  });
  const server = http.createServer((req, res) => proxy.web(req, res));
  await new Promise((ok) => server.listen(0, LOOPBACK, ok));
  serveIpc({ stop: async () => { await closeServer(server); agent.destroy(); } });
  process.send({ type: 'ready', port: server.address().port });
}

/** The `--sidecar-env NAME=VALUE` settings as an object. */
function sidecarEnv() {
  return Object.fromEntries(args['sidecar-env'].map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--sidecar-env expects NAME=VALUE, got ${JSON.stringify(pair)}`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }));
}

/** GETs an admin path once; resolves with the status (0 when the connection fails). */
function statusOf(port, path) {
  return new Promise((done) => {
    const req = http.get({ host: LOOPBACK, port, path, agent: false }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.on('error', () => done(0));
    req.setTimeout(2000, () => req.destroy());
  });
}

/** The sidecar as an operator runs it: info-level request logs to a file (asynchronous pino), process metrics on. */
async function roleSidecar() {
  const dir = args.src ? '../src/' : '../dist/';
  const ext = args.src ? '.ts' : '.js';
  const importModule = (name) => import(new URL(`${dir}${name}${ext}`, import.meta.url).href);
  const [{ startSidecar }, { loadConfig }, { createLogger }, { systemClock }, { pino }] = await Promise.all([
    importModule('sidecar'), importModule('config/load'), importModule('lib/logger'), importModule('lib/clock'), import('pino'),
  ]);
  const importedMs = performance.now();
  const config = loadConfig({
    env: {
      LOGICNETS_URL: args['upstream-url'],
      LOGICNETS_CLIENT_ID: 'bench-client',
      LOGICNETS_PRIVATE_KEY_FILE: args['key-file'],
      LISTEN_HOST: LOOPBACK,
      LISTEN_PORT: '0',
      ADMIN_HOST: LOOPBACK,
      ADMIN_PORT: '0',
      LOG_LEVEL: 'info',
      ...sidecarEnv(),
    },
  });
  const destination = pino.destination({ dest: args['log-file'], sync: false, minLength: 4096 });
  const logger = createLogger({ level: config.logLevel, destination });
  const sidecar = await startSidecar(config, { logger, clock: systemClock, processMetrics: true });
  const startedMs = performance.now();
  let readyMs;
  const giveUp = startedMs + 10_000;
  while (readyMs === undefined) {
    if ((await statusOf(sidecar.adminPort, '/readyz')) === 200) readyMs = performance.now();
    else if (performance.now() > giveUp) throw new Error('the sidecar did not answer /readyz 200 within 10 s');
    else await new Promise((ok) => setTimeout(ok, 2));
  }
  // Shares the start-up fetch (no extra token request); the bench loads only once a token is in hand.
  await sidecar.stacks[0].tokens.token(AbortSignal.timeout(10_000));
  const firstTokenMs = performance.now();
  serveIpc({
    stop: async () => {
      await Promise.race([sidecar.shutdown('bench finished'), new Promise((ok) => setTimeout(ok, 5000))]);
      try { destination.flushSync(); } catch { /* nothing buffered */ }
    },
  });
  process.send({
    type: 'ready',
    port: sidecar.proxyPort,
    adminPort: sidecar.adminPort,
    // performance.now() counts from this process's start.
    timing: { importedMs, startedMs, readyMs, firstTokenMs },
  });
}

// ---------------------------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------------------------

/** Forks this script in `role`; resolves with a handle once the child reports `ready`. */
function startChild(role, childArgs, extraExecArgv, children, extraEnv = {}) {
  const child = fork(SCRIPT, ['--role', role, ...(args.src ? ['--src'] : []), ...childArgs], {
    execArgv: [...process.execArgv, ...extraExecArgv],
    env: { ...process.env, ...extraEnv },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map();
  let nextId = 1;
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const handle = {
    role,
    child,
    exited,
    info: undefined,
    request(type, payload = {}, timeoutMs = 15_000) {
      if (!child.connected) return Promise.reject(new Error(`the ${role} child is gone`));
      const id = nextId++;
      return new Promise((ok, fail) => {
        const timer = setTimeout(() => { pending.delete(id); fail(new Error(`${role} did not answer ${type} in ${timeoutMs} ms`)); }, timeoutMs);
        pending.set(id, { ok, fail, timer });
        child.send({ ...payload, id, type });
      });
    },
  };
  children.push(handle);
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the ${role} child did not start within 30 s`)), 30_000);
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
      else waiter.fail(new Error(`${role}: ${msg.error}`));
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      const error = new Error(`the ${role} child exited (code ${code}, signal ${signal})`);
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
    await handle.request('stop', {}, 8000);
  } catch { /* killed below */ }
  const done = await Promise.race([handle.exited.then(() => true), new Promise((ok) => setTimeout(() => ok(false), 3000))]);
  if (!done) handle.child.kill('SIGKILL');
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
    ...(config.bodyBytes ? { body: Buffer.alloc(config.bodyBytes, 0x61), headers: { 'content-type': 'application/octet-stream' } } : {}),
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

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const mb = (bytes) => Math.round((bytes / MB) * 10) / 10;
const round = (x, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** Prints rows as an aligned text table. */
function printTable(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((c) => String(c)));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
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

async function main() {
  const seconds = Number(args.duration);
  const rounds = Number(args.rounds);
  if (!(seconds > 0) || !(Number.isInteger(rounds) && rounds >= 1)) {
    throw new Error('--duration must be a positive number of seconds and --rounds a whole number of at least 1');
  }
  if (!args.src && !statSync(join(REPO, 'dist', 'sidecar.js'), { throwIfNoEntry: false })) {
    throw new Error('dist/sidecar.js is missing: build first (`npm run bench` does) or pass --src under `node --import tsx`');
  }
  const warmupS = args.quick ? Math.min(0.2, seconds) : Math.min(1, seconds);
  const idleWaitMs = args.quick ? 200 : 3000;
  // "At idle" after load means idle as an operator's quiet sidecar is: V8 gives its grown young
  // generation back only after some seconds without allocation (measured: 8-15 s), so wait 15 s.
  const idleAfterLoadMs = args.quick ? 200 : 15000;
  const { default: autocannon } = await import('autocannon');
  const startedAt = new Date();
  const cpus = os.cpus();
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    totalMemMB: mb(os.totalmem()),
    loadavgAtStart: os.loadavg().map((x) => round(x, 2)),
  };
  const warnings = [];
  if (machine.loadavgAtStart[0] > machine.cores * 0.5) {
    warnings.push(`the 1-minute load average is ${machine.loadavgAtStart[0]} on ${machine.cores} cores: other work is running, figures may be noisy`);
  }

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
    const logFile = join(tmp, 'sidecar.log');
    const profDir = join(tmp, 'profile');

    const upstream = await startChild('upstream', [], [], children);
    const upstreamBase = `http://${LOOPBACK}:${upstream.info.port}`;
    const profileFlags = (name) => (args.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, name)}`] : []);
    const baseline = await startChild('baseline', ['--target', upstreamBase], ['--expose-gc', ...profileFlags('baseline')], children);
    const sidecar = await startChild('sidecar', [
      '--upstream-url', `${upstreamBase}/${COMPANY}`, '--key-file', keyFile, '--log-file', logFile,
      ...args['sidecar-env'].flatMap((pair) => ['--sidecar-env', pair]),
    ], ['--expose-gc', ...profileFlags('sidecar')], children, sidecarEnv());
    const timing = sidecar.info.timing;
    const servers = { direct: upstream, baseline, sidecar };
    const urls = Object.fromEntries(TARGETS.map((t) => [t, `http://${LOOPBACK}:${servers[t].info.port}${API_PATH}`]));

    await new Promise((ok) => setTimeout(ok, idleWaitMs));
    const sidecarIdleBefore = await sidecar.request('usage', { gc: true });

    if (args['sidecar-env'].length > 0) console.log(`sidecar settings: ${args['sidecar-env'].join(' ')}`);
    console.log(`bench: ${rounds} round(s) x ${CONFIGS.length} configs x ${TARGETS.length} targets, ${seconds} s each` +
      ` (node ${machine.node}, ${machine.cores} x ${machine.cpuModel})`);
    const warmupNon2xx = Object.fromEntries(TARGETS.map((t) => [t, 0]));
    const warmupResponses = Object.fromEntries(TARGETS.map((t) => [t, 0]));
    for (const target of TARGETS) {
      for (const config of [CONFIGS[1], CONFIGS[3]]) {
        const r = await load(autocannon, urls[target], config, warmupS);
        warmupNon2xx[target] += r.non2xx + r.errors;
        warmupResponses[target] += r.responses;
      }
    }

    const runs = [];
    const rss = { sidecarAfter200: [], baselineAfter200: [], sidecarPeak: 0, baselinePeak: 0 };
    for (let r = 1; r <= rounds; r++) {
      for (const config of CONFIGS) {
        for (const target of TARGETS) {
          const server = servers[target];
          const before = await server.request('usage');
          const upstreamBefore = await upstream.request('stats');
          const result = await load(autocannon, urls[target], config, seconds);
          const after = await server.request('usage');
          const upstreamAfter = await upstream.request('stats');
          const cpuUs = (after.cpu.user + after.cpu.system) - (before.cpu.user + before.cpu.system);
          const run = {
            round: r, config: config.id, target, ...result,
            serverCpuUsPerRequest: result.responses ? cpuUs / result.responses : NaN,
            serverRssMB: mb(after.rss),
            // Connections the upstream accepted during the load: the client's own (direct) or the proxy's pool.
            upstreamConnections: upstreamAfter.connections - upstreamBefore.connections,
          };
          runs.push(run);
          if (target === 'sidecar') rss.sidecarPeak = Math.max(rss.sidecarPeak, after.rss);
          if (target === 'baseline') rss.baselinePeak = Math.max(rss.baselinePeak, after.rss);
          if (config.id === 'get-c200' && target === 'sidecar') rss.sidecarAfter200.push(after.rss);
          if (config.id === 'get-c200' && target === 'baseline') rss.baselineAfter200.push(after.rss);
          process.stdout.write(`  round ${r} ${config.label.padEnd(16)} ${target.padEnd(8)} ${Math.round(result.rps)} req/s\n`);
        }
      }
    }

    await new Promise((ok) => setTimeout(ok, idleAfterLoadMs));
    const sidecarIdle = await sidecar.request('usage', { gc: true });
    const baselineIdle = await baseline.request('usage', { gc: true });
    const upstreamStats = await upstream.request('stats');

    // Stop the proxies politely: a CPU profile is written on exit.
    await stopChild(sidecar);
    await stopChild(baseline);
    const profiles = {};
    if (args.profile) {
      for (const name of ['sidecar', 'baseline']) {
        const dir = join(profDir, name);
        const found = readdirSync(dir, { withFileTypes: true }).find((e) => e.name.endsWith('.cpuprofile'));
        if (found === undefined) {
          warnings.push(`--profile: the ${name} wrote no .cpuprofile`);
          continue;
        }
        mkdirSync(args.out, { recursive: true });
        const kept = join(args.out, `${name}-${startedAt.toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
        copyFileSync(join(dir, found.name), kept);
        const handled = warmupResponses[name] + runs.filter((x) => x.target === name).reduce((a, x) => a + x.responses, 0);
        profiles[name] = { file: kept, ...summariseProfile(JSON.parse(readFileSync(kept, 'utf8')), handled) };
      }
    }
    const logText = readFileSync(logFile, 'utf8');
    const logLines = logText.split('\n').filter((l) => l !== '');
    const sidecarLog = {
      lines: logLines.length,
      bytes: Buffer.byteLength(logText),
      warnOrWorse: logLines.filter((l) => /"level":"(warn|error|fatal)"/.test(l)).length,
      messages: [...new Set(logLines.filter((l) => /"level":"(warn|error|fatal)"/.test(l)).map((l) => {
        try { return JSON.parse(l).msg; } catch { return l.slice(0, 120); }
      }))].slice(0, 5),
    };

    // ---- summaries ----
    const summary = {};
    for (const config of CONFIGS) {
      summary[config.id] = {};
      for (const target of TARGETS) {
        const rs = runs.filter((x) => x.config === config.id && x.target === target);
        const rpsList = rs.map((x) => x.rps);
        summary[config.id][target] = {
          rps: round(mean(rpsList), 1),
          p50Ms: round(mean(rs.map((x) => x.latencyMs.p50))),
          p99Ms: round(mean(rs.map((x) => x.latencyMs.p99))),
          non2xx: rs.reduce((a, x) => a + x.non2xx, 0),
          errors: rs.reduce((a, x) => a + x.errors, 0),
          cpuUsPerRequest: target === 'direct' ? null : round(mean(rs.map((x) => x.serverCpuUsPerRequest)), 1),
          upstreamConnections: rs.reduce((a, x) => a + x.upstreamConnections, 0),
          roundsRps: rpsList.map((x) => round(x, 1)),
          spread: rpsList.length > 1 ? round((Math.max(...rpsList) - Math.min(...rpsList)) / Math.min(...rpsList)) : 0,
        };
        if (rpsList.length > 1 && summary[config.id][target].spread > LIMITS.noiseSpread) {
          warnings.push(`noisy: ${target} ${config.label} throughput differs by ${Math.round(summary[config.id][target].spread * 100)}% between rounds (${rpsList.map((x) => Math.round(x)).join(' vs ')} req/s)`);
        }
      }
    }
    const ratios = {};
    for (const config of CONFIGS) {
      const per = (other, pick) => mean(Array.from({ length: rounds }, (_, i) => {
        const get = (t) => runs.find((x) => x.round === i + 1 && x.config === config.id && x.target === t);
        return pick(get('sidecar')) / pick(get(other));
      }));
      const p99Delta = mean(Array.from({ length: rounds }, (_, i) => {
        const get = (t) => runs.find((x) => x.round === i + 1 && x.config === config.id && x.target === t);
        return get('sidecar').latencyMs.p99 - get('baseline').latencyMs.p99;
      }));
      ratios[config.id] = {
        sidecarOverBaseline: { throughput: round(per('baseline', (x) => x.rps)), p99: round(per('baseline', (x) => x.latencyMs.p99)) },
        sidecarOverDirect: { throughput: round(per('direct', (x) => x.rps)), p99: round(per('direct', (x) => x.latencyMs.p99)) },
        p99DeltaVsBaselineMs: round(p99Delta),
      };
    }
    const memory = {
      sidecarIdleBeforeLoadMB: mb(sidecarIdleBefore.rss),
      sidecarIdleMB: mb(sidecarIdle.rss),
      sidecarAfter200MB: mb(Math.max(...rss.sidecarAfter200)),
      sidecarPeakAfterLoadMB: mb(rss.sidecarPeak),
      baselineAfter200MB: mb(Math.max(...rss.baselineAfter200)),
      baselinePeakAfterLoadMB: mb(rss.baselinePeak),
      baselineIdleMB: mb(baselineIdle.rss),
      // Where idle RSS sits: V8's heap (reserved and used) versus native memory outside it.
      sidecarIdleHeapTotalMB: mb(sidecarIdle.heapTotal),
      sidecarIdleHeapUsedMB: mb(sidecarIdle.heapUsed),
      sidecarIdleExternalMB: mb(sidecarIdle.external),
      sidecarIdleBeforeLoadHeapUsedMB: mb(sidecarIdleBefore.heapUsed),
      baselineIdleHeapTotalMB: mb(baselineIdle.heapTotal),
      baselineIdleHeapUsedMB: mb(baselineIdle.heapUsed),
    };
    const startup = {
      readyMs: round(timing.readyMs, 1),
      modulesLoadedMs: round(timing.importedMs, 1),
      startSidecarDoneMs: round(timing.startedMs, 1),
      firstTokenMs: round(timing.firstTokenMs, 1),
    };
    const sidecarNon2xx = CONFIGS.reduce((a, c) => a + summary[c.id].sidecar.non2xx, 0);
    const sidecarErrors = CONFIGS.reduce((a, c) => a + summary[c.id].sidecar.errors, 0);
    const check = (name, pass, measured, limit) => ({ name, pass, measured, limit });
    const targets = [
      check('throughput GET c=50 >= 0.90x baseline', ratios['get-c50'].sidecarOverBaseline.throughput >= LIMITS.throughputVsBaseline,
        `${ratios['get-c50'].sidecarOverBaseline.throughput}x`, `>= ${LIMITS.throughputVsBaseline}x`),
      check('throughput POST 64KiB c=50 >= 0.90x baseline', ratios['post64k-c50'].sidecarOverBaseline.throughput >= LIMITS.throughputVsBaseline,
        `${ratios['post64k-c50'].sidecarOverBaseline.throughput}x`, `>= ${LIMITS.throughputVsBaseline}x`),
      check('p99 GET c=1 within 1 ms of baseline', ratios['get-c1'].p99DeltaVsBaselineMs <= LIMITS.p99DeltaMs,
        `${ratios['get-c1'].p99DeltaVsBaselineMs} ms`, `<= ${LIMITS.p99DeltaMs} ms`),
      check('exactly one token request', upstreamStats.tokenRequests === LIMITS.tokenRequests, String(upstreamStats.tokenRequests), '1'),
      check('zero non-2xx / errors from the sidecar (incl. warm-up)', sidecarNon2xx + sidecarErrors + warmupNon2xx.sidecar === 0,
        `${sidecarNon2xx} non-2xx, ${sidecarErrors} errors, ${warmupNon2xx.sidecar} in warm-up`, '0'),
      check('sidecar idle RSS < 70 MB', memory.sidecarIdleMB < LIMITS.idleRssMB, `${memory.sidecarIdleMB} MB`, `< ${LIMITS.idleRssMB} MB`),
      check('RSS after GET c=200 <= 1.10x baseline', memory.sidecarAfter200MB <= LIMITS.rssVsBaseline * memory.baselineAfter200MB,
        `${memory.sidecarAfter200MB} vs ${memory.baselineAfter200MB} MB (${round(memory.sidecarAfter200MB / memory.baselineAfter200MB, 2)}x)`, `<= ${LIMITS.rssVsBaseline}x`),
      check('process start to /readyz 200 < 0.5 s', startup.readyMs < LIMITS.readyMs, `${startup.readyMs} ms`, `< ${LIMITS.readyMs} ms`),
    ];
    if (rounds < 2) warnings.push('one round only: noise between rounds was not checked');
    if (args.profile) warnings.push('--profile: the proxies ran under the CPU profiler, so their figures are slower than without it');

    // ---- print ----
    console.log('');
    printTable(['target', 'config', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'cpu us/req', 'upstream conns', 'req/s per round'],
      CONFIGS.flatMap((c) => TARGETS.map((t) => {
        const s = summary[c.id][t];
        return [t, c.label, s.rps.toFixed(0), s.p50Ms.toFixed(3), s.p99Ms.toFixed(3), s.non2xx, s.errors,
          s.cpuUsPerRequest === null ? '-' : s.cpuUsPerRequest.toFixed(0), s.upstreamConnections, s.roundsRps.map((x) => x.toFixed(0)).join(' / ')];
      })));
    console.log('');
    console.log(`sidecar RSS: idle before load ${memory.sidecarIdleBeforeLoadMB} MB, after GET c=200 ${memory.sidecarAfter200MB} MB,` +
      ` peak after a load ${memory.sidecarPeakAfterLoadMB} MB, idle after load (${idleAfterLoadMs / 1000} s + gc) ${memory.sidecarIdleMB} MB` +
      ` (V8 heap ${memory.sidecarIdleHeapUsedMB} used of ${memory.sidecarIdleHeapTotalMB} MB, external ${memory.sidecarIdleExternalMB} MB)`);
    console.log(`baseline RSS: after GET c=200 ${memory.baselineAfter200MB} MB, peak after a load ${memory.baselinePeakAfterLoadMB} MB, idle ${memory.baselineIdleMB} MB` +
      ` (V8 heap ${memory.baselineIdleHeapUsedMB} used of ${memory.baselineIdleHeapTotalMB} MB)`);
    console.log(`token requests seen by the upstream: ${upstreamStats.tokenRequests} (of ${upstreamStats.requests} upstream requests)`);
    console.log(`sidecar start: modules loaded ${startup.modulesLoadedMs} ms, startSidecar done ${startup.startSidecarDoneMs} ms,` +
      ` /readyz 200 at ${startup.readyMs} ms, first token at ${startup.firstTokenMs} ms (from process start)`);
    console.log(`sidecar log: ${sidecarLog.lines} lines, ${mb(sidecarLog.bytes)} MB, ${sidecarLog.warnOrWorse} at warn or worse` +
      (sidecarLog.messages.length ? ` (${sidecarLog.messages.join('; ')})` : ''));
    console.log('');
    printTable(['config', 'thr side/base', 'thr side/direct', 'p99 side/base', 'p99 side/direct', 'p99 side-base ms'],
      CONFIGS.map((c) => {
        const x = ratios[c.id];
        return [c.label, x.sidecarOverBaseline.throughput.toFixed(3), x.sidecarOverDirect.throughput.toFixed(3),
          x.sidecarOverBaseline.p99.toFixed(3), x.sidecarOverDirect.p99.toFixed(3), x.p99DeltaVsBaselineMs.toFixed(3)];
      }));
    console.log('');
    for (const t of targets) console.log(`${t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.measured} (target ${t.limit})`);
    const sp = profiles.sidecar;
    const bp = profiles.baseline;
    if (sp) {
      console.log(`\nsidecar CPU profile ${sp.file}: ${sp.busyMs} ms busy (${sp.busyUsPerRequest} us per request), ${sp.idleMs} ms idle`);
      if (bp) console.log(`baseline CPU profile ${bp.file}: ${bp.busyMs} ms busy (${bp.busyUsPerRequest} us per request)`);
      console.log('\nsidecar, top self time:');
      printTable(['function', 'self ms', '%', 'us/req'], sp.selfByFunction.map((f) => [f.name, f.ms, f.percent, f.usPerRequest]));
      console.log('\nsidecar functions, inclusive time (anything they call):');
      printTable(['function', 'incl ms', '%', 'us/req'], sp.inclusiveBySidecarFunction.map((f) => [f.name, f.ms, f.percent, f.usPerRequest]));
      const areas = [...new Set([...sp.selfByArea, ...(bp?.selfByArea ?? [])].map((a) => a.name))];
      const lookup = (list, name) => list?.find((a) => a.name === name)?.usPerRequest ?? 0;
      const rows = areas.map((name) => [name, lookup(sp.selfByArea, name), lookup(bp?.selfByArea, name), lookup(sp.inclusiveByArea, name)])
        .sort((a, b) => (b[1] - b[2]) - (a[1] - a[2])).slice(0, 20);
      console.log('\nper area, us per request (sorted by what the sidecar adds over the baseline):');
      printTable(['area', 'sidecar self', 'baseline self', 'sidecar incl'], rows.map((r) => [r[0], r[1].toFixed(2), r[2].toFixed(2), r[3].toFixed(2)]));
    }
    for (const w of warnings) console.log(`WARNING: ${w}`);

    const results = {
      version: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: { ...machine, loadavgAtEnd: os.loadavg().map((x) => round(x, 2)) },
      options: { durationS: seconds, rounds, quick: args.quick, profile: args.profile, sidecarEnv: sidecarEnv(), warmupS, idleWaitMs, idleAfterLoadMs, configs: CONFIGS, path: API_PATH },
      summary,
      ratios,
      memory,
      tokenRequests: upstreamStats.tokenRequests,
      upstreamRequests: upstreamStats.requests,
      startup,
      warmupNon2xx,
      warmupResponses,
      sidecarLog,
      targets,
      warnings,
      runs: runs.map((x) => ({ ...x, rps: round(x.rps, 1), latencyMs: Object.fromEntries(Object.entries(x.latencyMs).map(([k, v]) => [k, round(v)])) })),
      ...(args.profile ? { profiles } : {}),
    };
    mkdirSync(args.out, { recursive: true });
    const file = join(args.out, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nresults written to ${file}`);
  } finally {
    await Promise.all(children.map((c) => stopChild(c).catch(() => undefined)));
    killAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(tmp, { recursive: true, force: true });
  }
}

const roles = { upstream: roleUpstream, baseline: roleBaseline, sidecar: roleSidecar };
if (args.help) {
  const lines = readFileSync(SCRIPT, 'utf8').split('\n').slice(1);
  const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')));
  console.log(header.map((l) => l.slice(3)).join('\n'));
} else if (args.role !== undefined) {
  const role = roles[args.role];
  if (role === undefined) {
    console.error(`unknown --role ${args.role}; expected upstream, baseline or sidecar`);
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
