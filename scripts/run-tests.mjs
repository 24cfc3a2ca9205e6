#!/usr/bin/env node
// Runs every test file under test/ (*.test.ts) with node:test.
// Usage: node scripts/run-tests.mjs [--node PATH] [--concurrency N] [--tsx] [file filter...]
// A plain script rather than a shell glob, so the same command works in every shell and on every supported Node.
//
// Each file runs in its own process, its TypeScript turned into JavaScript by esbuild either way:
// - The whole suite, or any selection beyond test/unit/: tsx loads each file (it transforms every module
//   with esbuild as it is imported), one file at a time on any machine, because the e2e, security and
//   packaging tiers start whole sidecars, helm and curl with timeouts not sized for sharing the CPU
//   with other files.
// - The unit tier alone (`npm run test:unit`): src/ and test/ are first transpiled once with the same
//   esbuild into .test-build/<pid>/ (about 0.2 s; the same per-file transform tsx does, done once, with
//   source maps so stack traces name the .ts lines; removed afterwards), and the compiled files run under
//   plain node: loading tsx and transforming the project again in every process was half of the tier's
//   CPU. UNIT_CONCURRENCY files run at once: unit tests wait on sockets and timers much of the time, the
//   few time bounds they check leave room for a shared CPU (seconds where a regression costs minutes;
//   timeouts that must not fire several times what a loaded machine needs), and each test gets its
//   ports from the system (port 0) and its files from mkdtemp.
// --concurrency N sets the number of files at once for any selection; --tsx runs the unit tier under tsx too.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const args = process.argv.slice(2);
/** Removes `--name` (and its value when `withValue`) from args; returns the value, true, or undefined. */
function takeFlag(name, withValue) {
  const at = args.indexOf(name);
  if (at === -1) return undefined;
  const [, value] = args.splice(at, withValue ? 2 : 1);
  if (withValue && (value === undefined || value.startsWith('--'))) {
    console.error(`${name} needs a value`);
    process.exit(1);
  }
  return withValue ? value : true;
}
const nodeBin = takeFlag('--node', true) ?? process.execPath;
const forceTsx = takeFlag('--tsx', false) === true;
let concurrency = takeFlag('--concurrency', true);
if (concurrency !== undefined) {
  concurrency = Number(concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    console.error('--concurrency takes a whole number of files, 1 or more');
    process.exit(1);
  }
}
const UNIT_CONCURRENCY = 4;
const BUILD_DIR = join('.test-build', String(process.pid));

/** Lists files below dir ending in `suffix`, sorted, so runs are repeatable. */
function findFiles(dir, suffix) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findFiles(path, suffix));
    else if (name.endsWith(suffix)) found.push(relative(process.cwd(), path).split(sep).join('/'));
  }
  return found;
}

/**
 * Transpiles src/ and test/ into BUILD_DIR (one per run, so two runs at once do not meet) with the
 * folder layout kept, so the `.js` import specifiers resolve as they do under tsx, bare imports find
 * node_modules/ above it, and `new URL('../package.json', import.meta.url)` in src/ finds the copy of
 * package.json put beside them.
 */
async function compile() {
  const { build } = await import('esbuild');
  rmSync(BUILD_DIR, { recursive: true, force: true });
  await build({
    entryPoints: [...findFiles('src', '.ts'), ...findFiles('test', '.ts')],
    outdir: BUILD_DIR, outbase: '.', format: 'esm', platform: 'node', target: 'node22', sourcemap: 'inline', logLevel: 'warning',
  });
  copyFileSync('package.json', join(BUILD_DIR, 'package.json'));
}

const files = findFiles('test', '.test.ts').filter((file) => args.length === 0 || args.some((a) => file.includes(a)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const unitOnly = files.every((file) => file.startsWith('test/unit/'));
concurrency ??= unitOnly ? UNIT_CONCURRENCY : 1;
const concurrencyArgs = [`--test-concurrency=${concurrency}`];
const compiled = unitOnly && !forceTsx;
if (compiled) await compile();
const loader = compiled ? ['--enable-source-maps'] : ['--import', 'tsx'];
const targets = compiled ? files.map((file) => join(BUILD_DIR, file.replace(/\.ts$/, '.js'))) : files;
const result = spawnSync(nodeBin, [...loader, '--test', '--test-reporter=spec', ...concurrencyArgs, ...targets], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'test' },
});
if (compiled) rmSync(BUILD_DIR, { recursive: true, force: true });
process.exit(result.status ?? 1);
