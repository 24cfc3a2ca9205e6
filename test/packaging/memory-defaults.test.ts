// The memory defaults are one decision written in several places: the image's NODE_OPTIONS (the
// Dockerfile's runtime stage), the systemd unit's, the chart's memory request and limit (measured
// with those flags, the chart does not override them), the chart's README and the README's
// performance section. This fails when one of them drifts from the others, or when node refuses the
// flags (a flag node does not allow in NODE_OPTIONS would stop the container at start-up).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const dockerfile = readFileSync('Dockerfile', 'utf8');
const values = readFileSync('helm/logicnets-token-proxy/values.yaml', 'utf8');
const readme = readFileSync('README.md', 'utf8');
const chartReadme = readFileSync('helm/README.md', 'utf8');
const unit = readFileSync('config/logicnets-token-proxy.service', 'utf8');

/** NODE_OPTIONS of the last stage (the runtime), or undefined. */
function imageNodeOptions(): string | undefined {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const match = /^ENV\s+(?:.*\s)?NODE_OPTIONS=("[^"]*"|\S+)/m.exec(runtime);
  return match?.[1]!.replace(/^"|"$/g, '');
}

/** The chart's `resources:` block, comments above it included. */
function resourcesBlock(): { comments: string; requestMi: number; limitMi: number } {
  const match = /((?:^#.*\n)+)^resources:\n((?:^ .*\n)+)/m.exec(values);
  assert.ok(match, 'values.yaml has a commented top-level resources: block');
  const memoryOf = (section: string) => {
    const m = new RegExp(`^\\s+${section}:\\n(?:\\s+cpu:.*\\n)?\\s+memory:\\s*(\\d+)Mi\\s*$`, 'm').exec(match[2]!);
    assert.ok(m, `resources.${section}.memory in Mi`);
    return Number(m[1]);
  };
  return { comments: match[1]!, requestMi: memoryOf('requests'), limitMi: memoryOf('limits') };
}

test('the image sets a bounded young generation through NODE_OPTIONS, and node accepts the flags', () => {
  const options = imageNodeOptions();
  assert.ok(options, 'the runtime stage sets NODE_OPTIONS');
  assert.match(options, /--max-semi-space-size=\d+\b/);
  const run = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.execArgv.length))'],
    { env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: options }, encoding: 'utf8' });
  assert.equal(run.status, 0, `node refuses NODE_OPTIONS=${options}: ${run.stderr}`);
  assert.equal(run.stderr, '');
});

test('the chart states the flags its memory values were measured with, and the README gives the same figures', () => {
  const options = imageNodeOptions()!;
  const { comments, requestMi, limitMi } = resourcesBlock();
  assert.ok(requestMi > 0 && limitMi >= requestMi, `request ${requestMi}Mi, limit ${limitMi}Mi`);
  assert.ok(comments.includes(options), `the resources comment names NODE_OPTIONS=${options}`);
  assert.match(comments, /\d+(?:\.\d+)? ?Mi?B?\b/, 'the resources comment states measurements');
  const section = readme.slice(readme.indexOf('## Performance'));
  assert.ok(section.includes(options), `README's performance section names ${options}`);
  assert.ok(section.includes(`${requestMi}Mi`) && section.includes(`${limitMi}Mi`), `README states the chart's ${requestMi}Mi / ${limitMi}Mi`);
});

test('the systemd unit runs node with the image\'s NODE_OPTIONS', () => {
  const match = /^Environment=(?:"NODE_OPTIONS=([^"]*)"|NODE_OPTIONS=(.*))$/m.exec(unit);
  assert.ok(match, 'the unit sets NODE_OPTIONS');
  assert.equal(match[1] ?? match[2], imageNodeOptions());
});

test('the chart\'s README states the chart\'s memory request and limit', () => {
  const { requestMi, limitMi } = resourcesBlock();
  assert.ok(chartReadme.includes(`${requestMi}Mi memory`), `helm/README.md names the ${requestMi}Mi request`);
  assert.ok(chartReadme.includes(`${limitMi}Mi memory limit`), `helm/README.md names the ${limitMi}Mi limit`);
  // The default of the chart is not silently changed by the chart itself.
  assert.doesNotMatch(readFileSync('helm/logicnets-token-proxy/templates/_container.tpl', 'utf8'), /NODE_OPTIONS/);
});
