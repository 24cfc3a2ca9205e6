import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegistry } from 'prom-client';
import { Metrics } from '../../../src/lib/metrics.js';

const NAMES = [
  'logicnets_proxy_requests_total',
  'logicnets_proxy_request_duration_seconds',
  'logicnets_proxy_token_requests_total',
  'logicnets_proxy_token_expiry_timestamp_seconds',
  'logicnets_proxy_upstream_retries_total',
];

test('render lists the five sidecar metrics and the default process metrics', async () => {
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
  metrics.tokenRequest('lua5/logicnets', 'success');
  metrics.tokenRequest('lua5/logicnets', 'success');
  metrics.tokenRequest('lua5/logicnets', 'failure');
  metrics.tokenExpiry('lua5/logicnets', Date.UTC(2026, 0, 1, 1));
  metrics.tokenExpiry('lua5/logicnets', Date.UTC(2026, 0, 1, 2)); // a newer token replaces the value
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
  line(`logicnets_proxy_token_expiry_timestamp_seconds{upstream="lua5/logicnets"} ${Date.UTC(2026, 0, 1, 2) / 1000}`);
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
