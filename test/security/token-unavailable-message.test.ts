// Regression: the 503 a client gets when no token can be had carried the token endpoint's own
// words (error_description, the token URL, configuration hints). Clients get a fixed sentence
// with the failure code; the detail stays in the log and on /status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenEndpointError, TokenUnavailableError } from '../../src/lib/errors.js';
import { CachingTokenSource } from '../../src/token/cache.js';
import { makeLogSink } from '../helpers/log-sink.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';

test('the token-unavailable message names the failure code, never the endpoint\'s description', async () => {
  const clock = new ManualClock();
  const sink = makeLogSink();
  const source = new CachingTokenSource({
    name: 'u1',
    clock,
    logger: sink.logger,
    fetch: () => Promise.reject(new TokenEndpointError('token_request_rejected',
      'the token endpoint https://idp.example/oauth2token refused (HTTP 401, invalid_client: "No client with id WRONG-SECRET-ID")',
      { httpStatus: 401, oauthError: 'invalid_client', oauthErrorDescription: 'No client with id WRONG-SECRET-ID', retryable: false })),
  });
  source.start();
  await flush();
  const error = await source.token().then(() => undefined, (e: unknown) => e);
  source.close();
  assert.ok(error instanceof TokenUnavailableError);
  assert.match(error.message, /token_request_rejected, invalid_client/);
  assert.ok(!error.message.includes('WRONG-SECRET-ID'));
  assert.ok(!error.message.includes('idp.example'));
  assert.match(source.state().lastError?.message ?? '', /WRONG-SECRET-ID/, 'the operator still sees the detail on /status');
});
