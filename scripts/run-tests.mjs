#!/usr/bin/env node
// Runs every test file under test/ (*.test.ts) with node:test, TypeScript loaded by tsx.
// Usage: node scripts/run-tests.mjs [--node PATH] [file filter...]
// A plain script rather than a shell glob, so the same command works in every shell and on every supported Node.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
let nodeBin = process.execPath;
const nodeFlag = args.indexOf('--node');
if (nodeFlag !== -1) {
  nodeBin = args[nodeFlag + 1];
  args.splice(nodeFlag, 2);
}

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
const result = spawnSync(nodeBin, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'test' },
});
process.exit(result.status ?? 1);
