/**
 * How the token path names the settings behind its options in messages. The token path describes
 * problems in its own terms ("the token URL"); the wiring, which knows whether an option came from
 * an environment variable or `upstreams[N]` in a file, passes names that point at the setting.
 */

/** The settings the token path's messages point at. */
export type TokenSetting =
  | 'tokenUrl' | 'tokenMethod' | 'tokenScope' | 'tokenAudience' | 'clientId' | 'clientIssuer'
  | 'assertionTtl' | 'caFile' | 'clientCertFile' | 'clientKeyFile' | 'privateKeyFile';

/** Names a setting for a message. Pure. */
export type SettingNames = (setting: TokenSetting) => string;

const OWN_TERMS: Readonly<Record<TokenSetting, string>> = {
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
};

/** The token path's own words, for callers that do not know where an option came from. */
export const ownTerms: SettingNames = (setting) => OWN_TERMS[setting];
