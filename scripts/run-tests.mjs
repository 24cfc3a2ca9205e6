#!/usr/bin/env node
// Runs every test file under test/ (*.test.ts) with node:test, TypeScript loaded by tsx.
// Usage: node scripts/run-tests.mjs [--node PATH] [--concurrency N] [file filter...]
// A plain script rather than a shell glob, so the same command works in every shell and on every supported Node.
//
// Each file runs in its own process. When every selected file is a unit test (test/unit/, `npm run test:unit`),
// UNIT_CONCURRENCY files run at once: unit tests wait on sockets and timers much of the time, none asserts on
// elapsed time, and each gets its ports from the system (port 0) and its files from mkdtemp. Otherwise node:test's
// default applies (available CPUs - 1: one file at a time on a 2-core machine), because the e2e, security and
// packaging tiers start whole sidecars, helm and curl with timeouts not sized for sharing the CPU with other files.
// --concurrency N sets the number of files at once for any selection.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const args = process.argv.slice(2);
let nodeBin = process.execPath;
const nodeFlag = args.indexOf('--node');
if (nodeFlag !== -1) {
  nodeBin = args[nodeFlag + 1];
  args.splice(nodeFlag, 2);
}
let concurrency;
const concurrencyFlag = args.indexOf('--concurrency');
if (concurrencyFlag !== -1) {
  concurrency = Number(args[concurrencyFlag + 1]);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    console.error('--concurrency takes a whole number of files, 1 or more');
    process.exit(1);
  }
  args.splice(concurrencyFlag, 2);
}
const UNIT_CONCURRENCY = 4;

/** Lists test files below dir, sorted, so runs are repeatable. */
function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.ts')) found.push(relative(process.cwd(), path));
  }
  return found;
}

const files = findTests('test').filter((file) => args.length === 0 || args.some((a) => file.includes(a)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const unitOnly = files.every((file) => file.split(sep).slice(0, 2).join('/') === 'test/unit');
concurrency ??= unitOnly ? UNIT_CONCURRENCY : undefined;
const concurrencyArgs = concurrency === undefined ? [] : [`--test-concurrency=${concurrency}`];
const result = spawnSync(nodeBin, ['--import', 'tsx', '--test', '--test-reporter=spec', ...concurrencyArgs, ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'test' },
});
process.exit(result.status ?? 1);
