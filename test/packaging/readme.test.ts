// The README's settings table is generated from the convict schema; this fails when they differ.
// Fix with: npm run settings-table -- --write
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { withTable } from '../../scripts/settings-table.js';

test('README settings table matches the config schema', () => {
  const readme = readFileSync('README.md', 'utf8');
  assert.equal(readme, withTable(readme), 'README.md settings table is stale: run `npm run settings-table -- --write`');
});

test('README gives the two commands a newcomer needs, and .ci/run runs the README test command', () => {
  const readme = readFileSync('README.md', 'utf8');
  assert.match(readme, /npm install && npm run demo/);
  assert.match(readme, /^npm test\b/m);
  assert.match(readFileSync('.ci/run', 'utf8'), /^npm test$/m);
});
