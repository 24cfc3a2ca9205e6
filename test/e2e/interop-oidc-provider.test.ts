/**
 * Interop: an independent, certified OpenID provider (npm `oidc-provider`) accepts our client
 * assertions. The client is registered with `private_key_jwt` and the public JWK; the provider
 * checks the signature, `iss` = client id, `aud` (its issuer or token endpoint URL), `exp`, and
 * `jti` replay (oidc-provider `lib/shared/jwt_client_auth.js`). Also: the RFC 10070 `typ` header
 * (`client-authentication+jwt`) is accepted, and extra token request parameters reach it (a
 * `resource` indicator, RFC 8707, which it turns into the access token's `aud`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { privateKeyJwt } from '../../src/token/assertion.js';
import type { AssertionType } from '../../src/token/assertion.js';
import { systemClock } from '../../src/lib/clock.js';
import { TokenEndpointError } from '../../src/lib/errors.js';
import { TokenEndpointClient } from '../../src/token/endpoint.js';
import { makeLogSink, secretFragments } from '../helpers/log-sink.js';
import { makeRsaKey } from '../helpers/rsa-keys.js';
import type { RsaTestKey } from '../helpers/rsa-keys.js';

/** The little of oidc-provider's API this test uses (the package ships no type declarations). */
interface OidcProvider {
  readonly issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): void;
}
type OidcProviderClass = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

const CLIENT_ID = 'logicnets-token-proxy-interop';
/** The one resource server the provider knows (RFC 8707 resource indicator). */
const RESOURCE = 'https://lua5.logicnets.local/logicnets';

describe('interop with oidc-provider (private_key_jwt, client_credentials)', () => {
  let key: RsaTestKey;
  let server: Server;
  let provider: OidcProvider;
  const providerErrors: string[] = [];
  const sink = makeLogSink('trace');
  const clients: TokenEndpointClient[] = [];

  before(async () => {
    key = makeRsaKey();
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // A variable specifier: the package has no type declarations for a static import to use.
    const specifier = 'oidc-provider';
    const { default: Provider, errors } = (await import(specifier)) as {
      default: OidcProviderClass; errors: { InvalidTarget: new (description?: string) => Error };
    };
    provider = new Provider(issuer, {
      clients: [{
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'RS256',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        jwks: { keys: [key.publicJwk] },
      }],
      clientAuthMethods: ['private_key_jwt'],
      // The provider's own signing key (it signs nothing this test reads; it silences the dev-key warning).
      jwks: { keys: [JSON.parse(makeRsaKey().jwkJson)] },
      ttl: { ClientCredentials: 600 },
      features: {
        clientCredentials: { enabled: true },
        devInteractions: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined,
          useGrantedResource: () => false,
          getResourceServerInfo: (_ctx: unknown, resource: string) => {
            if (resource !== RESOURCE) throw new errors.InvalidTarget('unknown resource');
            return { scope: '', audience: RESOURCE, accessTokenFormat: 'jwt', accessTokenTTL: 600 };
          },
        },
      },
    });
    provider.on('grant.error', (_ctx, error) => providerErrors.push(String(error)));
    provider.on('server_error', (_ctx, error) => providerErrors.push(String(error)));
    server.on('request', provider.callback());
  });

  after(async () => {
    for (const c of clients) c.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function makeClient(audience: string, privateKey = key.privateKey,
    more: { type?: AssertionType; extraParams?: [string, string][]; method?: 'GET' | 'POST' } = {}): TokenEndpointClient {
    const c = new TokenEndpointClient({
      tokenUrl: `${provider.issuer}/token`,
      method: more.method ?? 'POST',
      extraParams: more.extraParams,
      clientAuth: privateKeyJwt({ current: () => privateKey },
        { issuer: CLIENT_ID, subject: CLIENT_ID, audience, ttlSeconds: 60, type: more.type }, systemClock),
      clock: systemClock,
      logger: sink.logger,
      timeoutMs: 5000,
      defaultLifetimeSeconds: 300,
    });
    clients.push(c);
    return c;
  }

  it('gets a token with aud = the issuer, and again with aud = the token endpoint URL', async () => {
    for (const audience of [provider.issuer, `${provider.issuer}/token`]) {
      const startedAt = Date.now();
      const token = await makeClient(audience).fetchToken();
      assert.equal(token.tokenType, 'Bearer');
      assert.ok(token.accessToken.length >= 32, 'a real access token came back');
      assert.ok(token.expiresAt >= startedAt + 600_000 && token.expiresAt <= Date.now() + 600_000,
        'expires_in (600 s) came from the provider');
      for (const fragment of secretFragments(token.accessToken)) assert.ok(!sink.text().includes(fragment));
    }
    assert.deepEqual(providerErrors, []);
  });

  it('is refused with invalid_client (not retryable) when signed with another key', async () => {
    const other = makeRsaKey();
    await assert.rejects(makeClient(provider.issuer, other.privateKey).fetchToken(), (error: unknown) => {
      assert.ok(error instanceof TokenEndpointError);
      assert.equal(error.code, 'token_request_rejected');
      assert.equal(error.oauthError, 'invalid_client');
      assert.equal(error.retryable, false);
      assert.match(error.message, /private key matches/);
      return true;
    });
  });

  it('is refused when the audience is not the provider', async () => {
    await assert.rejects(makeClient('https://somewhere.else/logicnets').fetchToken(),
      (error: unknown) => error instanceof TokenEndpointError && error.oauthError === 'invalid_client');
  });

  it('accepts an assertion with typ client-authentication+jwt (RFC 10070)', async () => {
    const errorsBefore = providerErrors.length;
    const token = await makeClient(provider.issuer, key.privateKey, { type: 'client-authentication+jwt' }).fetchToken();
    assert.ok(token.accessToken.length >= 32);
    assert.deepEqual(providerErrors.slice(errorsBefore), []);
  });

  it('sends extra token request parameters in the form: a resource indicator becomes the token audience', async () => {
    const token = await makeClient(provider.issuer, key.privateKey, { extraParams: [['resource', RESOURCE]] }).fetchToken();
    assert.equal(decodeJwt(token.accessToken).aud, RESOURCE, 'the provider read the resource parameter');
    await assert.rejects(
      makeClient(provider.issuer, key.privateKey, { extraParams: [['resource', 'https://unknown.example/']] }).fetchToken(),
      (error: unknown) => error instanceof TokenEndpointError && error.oauthError === 'invalid_target',
    );
    for (const fragment of secretFragments(token.accessToken)) assert.ok(!sink.text().includes(fragment));
    assert.ok(!sink.text().includes('unknown.example'), 'extra parameters are never logged');
  });
});
