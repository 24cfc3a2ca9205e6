/**
 * The settings the token path's messages point at, and its own words for them. The wiring passes
 * names that say where each came from (see `lib/setting-names.ts`).
 */
import { ownTerms } from '../lib/setting-names.js';
import type { SettingNames as NamesOf } from '../lib/setting-names.js';

/** The settings the token path's messages point at. */
export type TokenSetting =
  | 'tokenUrl' | 'tokenMethod' | 'tokenScope' | 'tokenAudience' | 'clientId' | 'clientIssuer'
  | 'assertionTtl' | 'caFile' | 'clientCertFile' | 'clientKeyFile' | 'privateKeyFile';

/** Names a token-path setting for a message. Pure. */
export type SettingNames = NamesOf<TokenSetting>;

/** The token path's own words, for callers that do not know where an option came from. */
export const TOKEN_SETTING_WORDS: SettingNames = ownTerms({
  tokenUrl: 'the token URL',
  tokenMethod: 'the token request method',
  tokenScope: 'the token scope',
  tokenAudience: 'the assertion audience',
  clientId: 'the client id',
  clientIssuer: 'the assertion issuer',
  assertionTtl: 'the assertion lifetime',
  caFile: 'the CA file',
  clientCertFile: 'the client certificate file',
  clientKeyFile: 'the client key file',
  privateKeyFile: 'the private key file setting',
});
