// `npm run bench` (scripts/bench.mjs) must keep starting its three child servers, driving load
// through each, collecting figures and stopping everything. Run tiny and from source (--src, tsx),
// so CI needs no build. Figures (times, ratios, memory) are never asserted: only that they exist.
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
}

interface BenchResults {
  machine: { node: string; cpuModel: string; cores: number };
  summary: Record<string, Record<string, { rps: number; p50Ms: number; p99Ms: number; non2xx: number; errors: number }>>;
  ratios: Record<string, {
    sidecarOverBaseline: { throughput: number; p99: number };
    sidecarOverDirect: { throughput: number; p99: number };
    p99DeltaVsBaselineMs: number;
  }>;
  memory: Record<string, number>;
  tokenRequests: number;
  startup: { readyMs: number; firstTokenMs: number };
  targets: { name: string; pass: boolean; measured: string; limit: string }[];
  runs: BenchRun[];
}

const CONFIG_IDS = ['get-c1', 'get-c50', 'get-c200', 'post64k-c50'];
const TARGETS = ['direct', 'baseline', 'sidecar'];

function runBench(outDir: string): Promise<CliResult> {
  // A bound, not a timing assertion: a hung bench must fail the test instead of hanging CI.
  return runNodeProcess([
    '--import', 'tsx', 'scripts/bench.mjs', '--src', '--duration', '0.3', '--rounds', '1', '--quick', '--out', outDir,
  ], { timeoutMs: 120_000 });
}

test('the bench starts upstream, baseline and sidecar, loads each, writes its figures and stops', async (t) => {
  const outDir = mkdtempSync(join(tmpdir(), 'bench-script-test-'));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));

  const { code, stdout, stderr } = await runBench(outDir);
  assert.equal(code, 0, `bench failed:\n${stdout}\n${stderr}`);

  const files = readdirSync(outDir).filter((f) => /^bench-.*\.json$/.test(f));
  assert.equal(files.length, 1, `expected one results file in ${outDir}, found ${files.join(', ')}`);
  assert.match(stdout, new RegExp(`results written to .*${files[0]!.replace(/[.]/g, '\\.')}`));
  const results = JSON.parse(readFileSync(join(outDir, files[0]!), 'utf8')) as BenchResults;

  assert.equal(results.machine.node, process.version);
  assert.equal(typeof results.machine.cpuModel, 'string');
  assert.ok(results.machine.cores >= 1);

  // Every configuration ran against every target and got answers.
  for (const config of CONFIG_IDS) {
    for (const target of TARGETS) {
      const run = results.runs.find((r) => r.config === config && r.target === target);
      assert.ok(run, `no run for ${target} ${config}`);
      assert.ok(run.responses > 0, `${target} ${config} got no responses`);
      assert.equal(typeof run.latencyMs.p99, 'number');
      assert.ok(results.summary[config]?.[target], `no summary for ${target} ${config}`);
    }
    const ratio = results.ratios[config];
    assert.ok(ratio, `no ratios for ${config}`);
    assert.deepEqual(Object.keys(ratio).sort(), ['p99DeltaVsBaselineMs', 'sidecarOverBaseline', 'sidecarOverDirect']);
    for (const pair of [ratio.sidecarOverBaseline, ratio.sidecarOverDirect]) {
      assert.deepEqual(Object.keys(pair).sort(), ['p99', 'throughput']);
      assert.equal(typeof pair.throughput, 'number');
      assert.equal(typeof pair.p99, 'number');
    }
  }
  // The direct runs hit the lean upstream itself: it must answer 2xx, or every figure is meaningless.
  for (const run of results.runs.filter((r) => r.target === 'direct')) {
    assert.equal(run.non2xx + run.errors, 0, `the upstream failed requests in ${run.config}`);
  }

  // The upstream counted the sidecar's token request; the sidecar reported memory and start-up.
  assert.ok(results.tokenRequests >= 1, 'the upstream saw no token request');
  for (const key of ['sidecarIdleMB', 'sidecarAfter200MB', 'baselineAfter200MB']) {
    assert.equal(typeof results.memory[key], 'number', `memory.${key}`);
    assert.ok(results.memory[key]! > 0, `memory.${key}`);
  }
  assert.equal(typeof results.startup.readyMs, 'number');
  assert.ok(results.startup.firstTokenMs > 0);

  // One PASS/FAIL line per target of issue 5, printed and recorded.
  assert.equal(results.targets.length, 8);
  for (const target of results.targets) {
    assert.equal(typeof target.pass, 'boolean');
    assert.ok(stdout.includes(`${target.pass ? 'PASS' : 'FAIL'}  ${target.name}`), `not printed: ${target.name}`);
  }
  assert.match(stdout, /thr side\/base/);
});
