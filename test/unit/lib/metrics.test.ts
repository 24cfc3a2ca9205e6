import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { register as globalRegistry } from 'prom-client';
import { Metrics, TOKEN_FAILURE_REASONS } from '../../../src/lib/metrics.js';

const NAMES = [
  'logicnets_proxy_requests_total',
  'logicnets_proxy_request_duration_seconds',
  'logicnets_proxy_token_requests_total',
  'logicnets_proxy_token_request_failures_total',
  'logicnets_proxy_token_valid',
  'logicnets_proxy_token_expiry_timestamp_seconds',
  'logicnets_proxy_token_forced_refreshes_total',
  'logicnets_proxy_upstream_retries_total',
  'logicnets_proxy_build_info',
];

test('render lists the sidecar metrics and the default process metrics', async () => {
  const metrics = new Metrics();
  const { contentType, body } = await metrics.render();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  for (const name of NAMES) assert.match(body, new RegExp(`^# TYPE ${name} `, 'm'), name);
  assert.match(body, /^# TYPE logicnets_proxy_request_duration_seconds histogram$/m);
  assert.match(body, /^process_cpu_user_seconds_total \d/m);
  assert.match(body, /^nodejs_heap_size_total_bytes \d/m);
});

test('collectDefault: false leaves the process metrics out', async () => {
  const { body } = await new Metrics({ collectDefault: false }).render();
  assert.doesNotMatch(body, /process_cpu_user_seconds_total/);
  assert.match(body, /logicnets_proxy_requests_total/);
});

test('recorded values carry the right labels', async () => {
  const metrics = new Metrics({ collectDefault: false });
  metrics.requestFinished('lua5/logicnets', 200, 0.003);
  metrics.requestFinished('lua5/logicnets', 200, 0.2);
  metrics.requestFinished('lua5/logicnets', 503, 0.0005);
  metrics.requestFinished('other', 404, 2);
  metrics.upstreamRetry('lua5/logicnets');
  let state: { valid: boolean; expiresAt: number | undefined } = { valid: true, expiresAt: Date.UTC(2026, 0, 1, 1) };
  metrics.trackTokens('lua5/logicnets', () => state);
  metrics.tokenSucceeded('lua5/logicnets');
  metrics.tokenSucceeded('lua5/logicnets');
  metrics.tokenFailed('lua5/logicnets', 'invalid_client');
  metrics.tokenForcedRefresh('lua5/logicnets');
  state = { valid: true, expiresAt: Date.UTC(2026, 0, 1, 2) }; // read at scrape time: the newer token counts
  const { body } = await metrics.render();

  const line = (text: string): void => assert.ok(body.split('\n').includes(text), `missing line: ${text}\n${body}`);
  line('logicnets_proxy_requests_total{upstream="lua5/logicnets",code="200"} 2');
  line('logicnets_proxy_requests_total{upstream="lua5/logicnets",code="503"} 1');
  line('logicnets_proxy_requests_total{upstream="other",code="404"} 1');
  line('logicnets_proxy_request_duration_seconds_count{upstream="lua5/logicnets"} 3');
  line('logicnets_proxy_request_duration_seconds_bucket{le="0.001",upstream="lua5/logicnets"} 1');
  line('logicnets_proxy_request_duration_seconds_bucket{le="0.005",upstream="lua5/logicnets"} 2');
  line('logicnets_proxy_request_duration_seconds_bucket{le="60",upstream="lua5/logicnets"} 3');
  line('logicnets_proxy_request_duration_seconds_bucket{le="1",upstream="other"} 0');
  line('logicnets_proxy_request_duration_seconds_bucket{le="2.5",upstream="other"} 1');
  line('logicnets_proxy_upstream_retries_total{upstream="lua5/logicnets"} 1');
  line('logicnets_proxy_token_requests_total{upstream="lua5/logicnets",result="success"} 2');
  line('logicnets_proxy_token_requests_total{upstream="lua5/logicnets",result="failure"} 1');
  line('logicnets_proxy_token_request_failures_total{upstream="lua5/logicnets",reason="invalid_client"} 1');
  line('logicnets_proxy_token_forced_refreshes_total{upstream="lua5/logicnets"} 1');
  line('logicnets_proxy_token_valid{upstream="lua5/logicnets"} 1');
  line(`logicnets_proxy_token_expiry_timestamp_seconds{upstream="lua5/logicnets"} ${Date.UTC(2026, 0, 1, 2) / 1000}`);
  line(`logicnets_proxy_build_info{version="unknown",node="${process.versions.node}"} 1`);
  assert.doesNotMatch(body, /upstream_retries_total\{upstream="other"\} [1-9]/);
});

test('two instances keep separate registries and leave the global one alone', async () => {
  const a = new Metrics();
  const b = new Metrics(); // would throw "already registered" if both used one registry
  a.requestFinished('x', 200, 0.01);
  assert.notEqual(a.registry, b.registry);
  assert.match((await a.render()).body, /logicnets_proxy_requests_total\{upstream="x",code="200"\} 1/);
  assert.doesNotMatch((await b.render()).body, /upstream="x"/);
  assert.doesNotMatch(await globalRegistry.metrics(), /logicnets_proxy_/);
});

test('the token gauges exist from start-up (0 before any token) and follow the cache at each scrape', async () => {
  const metrics = new Metrics({ collectDefault: false, version: '1.2.3' });
  let state: { valid: boolean; expiresAt: number | undefined } = { valid: false, expiresAt: undefined };
  metrics.trackTokens('a', () => state);
  metrics.trackTokens('broken', () => {
    throw new Error('a cache that cannot say');
  });
  let { body } = await metrics.render();
  const has = (text: string): boolean => body.split('\n').includes(text);
  assert.ok(has('logicnets_proxy_token_valid{upstream="a"} 0'), body);
  assert.ok(has('logicnets_proxy_token_expiry_timestamp_seconds{upstream="a"} 0'), body);
  assert.ok(has('logicnets_proxy_token_valid{upstream="broken"} 0'), body);
  assert.ok(has('logicnets_proxy_token_forced_refreshes_total{upstream="a"} 0'), body);
  assert.ok(has(`logicnets_proxy_build_info{version="1.2.3",node="${process.versions.node}"} 1`), body);
  state = { valid: true, expiresAt: 1_800_000_000_000 };
  ({ body } = await metrics.render());
  assert.ok(has('logicnets_proxy_token_valid{upstream="a"} 1'), body);
  assert.ok(has('logicnets_proxy_token_expiry_timestamp_seconds{upstream="a"} 1800000000'), body);
});

test('failure reasons come from a small fixed set; an unknown one is counted as other', async () => {
  const metrics = new Metrics({ collectDefault: false });
  for (const reason of TOKEN_FAILURE_REASONS) metrics.tokenFailed('a', reason);
  metrics.tokenFailed('a', 'made_up' as 'other');
  const { body } = await metrics.render();
  const reasons = [...body.matchAll(/token_request_failures_total\{upstream="a",reason="([^"]+)"\}/g)].map((m) => m[1]);
  assert.deepEqual(reasons.sort(), [...TOKEN_FAILURE_REASONS].sort());
  assert.match(body, /reason="other"\} 2/);
});

test('the nodejs_active_*_total gauges that promtool refuses are not exposed', async () => {
  const { body } = await new Metrics().render();
  assert.doesNotMatch(body, /nodejs_active_\w+_total/);
});

/** promtool from PROMTOOL_BIN, the CI cache (.ci/promtool), or the PATH; `undefined` when none is installed. */
function findPromtool(): string | undefined {
  const candidates = [process.env.PROMTOOL_BIN, join(process.cwd(), '.ci/promtool/promtool')];
  for (const candidate of candidates) if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate;
  const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() !== '' ? which.stdout.trim() : undefined;
}

test('/metrics passes promtool check metrics (required when CI is set)', async (t) => {
  const promtool = findPromtool();
  if (promtool === undefined) {
    if (process.env.CI) assert.fail('promtool is not installed; .ci/run installs it (Debian package prometheus) and exports PROMTOOL_BIN');
    t.skip('promtool is not installed (set CI to make this a failure)');
    return;
  }
  const metrics = new Metrics({ version: '0.1.0' });
  metrics.trackTokens('lua5/logicnets', () => ({ valid: true, expiresAt: Date.now() + 60_000 }));
  metrics.requestFinished('lua5/logicnets', 200, 0.01);
  metrics.upstreamRetry('lua5/logicnets');
  metrics.tokenSucceeded('lua5/logicnets');
  metrics.tokenFailed('lua5/logicnets', 'timeout');
  metrics.tokenForcedRefresh('lua5/logicnets');
  const { body } = await metrics.render();
  const result = spawnSync(promtool, ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.error, undefined, String(result.error));
  assert.equal(result.status, 0, `promtool check metrics failed:\n${result.stdout}${result.stderr}`);
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '', 'promtool reports nothing, not even a lint warning');
});
