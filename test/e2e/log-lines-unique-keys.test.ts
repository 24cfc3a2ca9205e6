// Regression: every JSON log line of the full stack has each key once. The token cache used to add
// `upstream` to lines of a logger that already carried it, so its lines held `"upstream"` twice,
// which log pipelines that parse strictly (Elasticsearch, for one) refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, makeServerUser, makeWorkDir, startStack } from '../helpers/e2e-stack.js';
import { makeLogSink } from '../helpers/log-sink.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { waitUntil } from '../helpers/wait-until.js';

/** The keys of the top-level object of a JSON text, in order, duplicates kept (JSON.parse drops them). */
function topLevelKeys(json: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const char = json[i];
    if (char === '"') {
      let end = i + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      let next = end + 1;
      while (json[next] === ' ') next++;
      if (depth === 1 && json[next] === ':') keys.push(JSON.parse(json.slice(i, end + 1)) as string);
      i = end;
    } else if (char === '{' || char === '[') {
      depth++;
    } else if (char === '}' || char === ']') {
      depth--;
    }
  }
  return keys;
}

test('topLevelKeys sees duplicates', () => {
  assert.deepEqual(topLevelKeys('{"a":1,"b":{"a":2},"c":"x\\"a\\":","a":[{"a":3}]}'), ['a', 'b', 'c', 'a']);
});

test('regression: no log line of the full stack repeats a key (token refresh, failure and retry included)', async () => {
  const dir = makeWorkDir();
  const sink = makeLogSink('trace');
  const clock = new ManualClock();
  const stack = await startStack(makeServerUser(dir), { clock, fault: { status: 503 }, logger: sink.logger });
  try {
    const tokens = stack.sidecar.stacks[0]!.tokens;
    await waitUntil(() => tokens.state().consecutiveFailures === 1, 'the first token request failed');
    assert.equal((await call(stack.proxyPort, '/logicnets/_echo')).status, 503);
    stack.emulator.setTokenEndpointFault(null);
    await clock.advance((tokens.state().nextRefreshAt ?? Number.NaN) - clock.now());
    await waitUntil(() => tokens.peek() !== undefined, 'the retry got a token');
    stack.emulator.revokeAll();
    assert.equal((await call(stack.proxyPort, '/logicnets/_echo')).status, 200);
  } finally {
    await stack.close();
    dir.cleanup();
  }
  const lines = sink.text().split('\n').filter(Boolean);
  assert.ok(lines.some((l) => l.includes('could not get an access token')) && lines.some((l) => l.includes('obtained a new access token')));
  for (const line of lines) {
    const keys = topLevelKeys(line);
    assert.equal(keys.length, Object.keys(JSON.parse(line) as object).length, `a key repeats in: ${line}`);
  }
});
