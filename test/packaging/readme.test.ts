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

// The package is not published: `npx logicnets-token-proxy` fetched whatever the registry holds under
// that name (E404 today; someone else's code tomorrow, next to the operator's private key).
test('no command in the docs runs the package by its unpublished registry name', () => {
  const files = ['README.md', 'helm/README.md', 'config/logicnets.env.example', 'config/logicnets-token-proxy.env.example'];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const commands = file.endsWith('.md')
      ? [...text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n'))
      : text.split('\n');
    for (const line of commands) {
      assert.doesNotMatch(line, /\bnpx\s+(--\S+\s+)*logicnets-token-proxy\b/, `${file}: ${line}`);
      if (/\bnpm\s+exec\b.*logicnets-token-proxy/.test(line)) assert.match(line, /--offline/, `${file}: ${line}`);
    }
  }
  assert.match(readFileSync('README.md', 'utf8'), /node dist\/cli\.js check/);
});
