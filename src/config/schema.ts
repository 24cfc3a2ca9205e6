/**
 * The configuration schema: every setting of the sidecar and of an upstream, with its
 * environment variable, default, format and description (convict). `config/load.ts` loads and
 * validates against it; `settingsDoc()` documents it for `--help` and the README table.
 */
// Registers the strict formats named below ('seconds', 'bytes', 'count', 'tcp-port', 'strict-boolean', ...).
import { settingText } from './formats.js';

/** One documented setting, for `--help` and the README table (`npm run settings-table`). */
export interface SettingDoc {
  readonly key: string;
  readonly env: string;
  readonly doc: string;
  readonly default: string;
  /** `global` settings apply to the sidecar; `upstream` ones may also appear in each `upstreams` entry. */
  readonly scope: 'global' | 'upstream';
}

/** pino's levels, as LOG_LEVEL accepts them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Settings of the sidecar itself; a config file sets them by key, the environment by `env`. */
export const GLOBAL_SCHEMA = {
  logLevel: { doc: 'pino log level.', format: LOG_LEVELS, default: 'info', env: 'LOG_LEVEL' },
  listenHost: {
    doc: 'Address the proxy listens on. Keep it on loopback: the sidecar adds credentials to what it forwards.',
    format: String, default: '127.0.0.1', env: 'LISTEN_HOST',
  },
  listenPort: { doc: 'Port of the proxy listener.', format: 'tcp-port', default: 8080, env: 'LISTEN_PORT' },
  allowRemoteClients: {
    doc: 'Allow a LISTEN_HOST that is not loopback, which lets every client that reaches it use the credentials the sidecar adds; logged as a warning at start.',
    format: 'strict-boolean', default: false, env: 'ALLOW_REMOTE_CLIENTS',
  },
  adminHost: {
    doc: 'Address of the admin listener (probes, metrics, status); all interfaces so the kubelet can probe it.',
    format: String, default: '0.0.0.0', env: 'ADMIN_HOST',
  },
  adminPort: { doc: 'Port of the admin listener.', format: 'tcp-port', default: 9090, env: 'ADMIN_PORT' },
  adminAllowRemote: {
    doc: '`/status` and `POST /shutdown` also answer clients that are not on loopback (probes and `/metrics` always do); `/shutdown` still needs its token.',
    format: 'strict-boolean', default: false, env: 'ADMIN_ALLOW_REMOTE',
  },
  adminShutdownTokenFile: {
    doc: 'Turns `POST /shutdown` on: at start the sidecar writes a new random token to this file, and a shutdown request must send `Authorization: Bearer <token>`. Put it where only the pod\'s containers can read it.',
    format: String, default: '', env: 'ADMIN_SHUTDOWN_TOKEN_FILE',
  },
  upstreamTimeout: {
    doc: 'Seconds to wait for the upstream\'s response headers once the request is sent, before answering 504.',
    format: 'seconds', default: 60, env: 'UPSTREAM_TIMEOUT',
  },
  idleTimeout: {
    doc: 'Seconds a request or response body may stall (no byte moves either way) before the exchange is cut.',
    format: 'seconds', default: 60, env: 'IDLE_TIMEOUT',
  },
  headersTimeout: {
    doc: 'Seconds a client may take to send its request line and header fields (Node `headersTimeout`); then 408.',
    format: 'seconds', default: 20, env: 'HEADERS_TIMEOUT',
  },
  requestTimeout: {
    doc: 'Seconds a client may take to send its whole request (Node `requestTimeout`); 0: no limit, IDLE_TIMEOUT still cuts a stalled upload.',
    format: 'seconds-or-zero', default: 0, env: 'REQUEST_TIMEOUT',
  },
  keepAliveTimeout: {
    doc: 'Seconds an idle client connection is kept open for its next request.', format: 'seconds', default: 5, env: 'KEEP_ALIVE_TIMEOUT',
  },
  maxHeaderCount: {
    doc: 'Most header fields a request may have; more are refused with 431, never forwarded.', format: 'count', default: 200, env: 'MAX_HEADER_COUNT',
  },
  maxHeaderSize: {
    doc: 'Largest request header section in bytes (Node `maxHeaderSize`); larger ones are refused with 431.',
    format: 'bytes', min: 1024, default: 16384, env: 'MAX_HEADER_SIZE',
  },
  maxConnections: {
    doc: 'Most client connections open at once; a connection beyond it is answered 503 and closed.',
    format: 'count', default: 1024, env: 'MAX_CONNECTIONS',
  },
  shutdownDelay: {
    doc: 'Seconds to keep serving after SIGTERM before closing the listener (set a few seconds for a non-native sidecar).',
    format: 'seconds-or-zero', default: 0, env: 'SHUTDOWN_DELAY',
  },
  shutdownTimeout: {
    doc: 'Seconds in-flight requests get to finish once the listener is closed.', format: 'seconds', default: 20, env: 'SHUTDOWN_TIMEOUT',
  },
  readinessRequireToken: {
    doc: '`/readyz` also requires a valid token for every upstream.', format: 'strict-boolean', default: false, env: 'READINESS_REQUIRE_TOKEN',
  },
  xForwarded: {
    doc: 'Add X-Forwarded-For, -Proto and -Host to forwarded requests.', format: 'strict-boolean', default: false, env: 'X_FORWARDED',
  },
  retryBodyLimit: {
    doc: 'Largest request body in bytes kept while sending, so the request can be resent once after a 401.',
    format: 'bytes', default: 1048576, env: 'RETRY_BODY_LIMIT',
  },
  retryBodyBudget: {
    doc: 'Most bytes of request bodies kept for a resend at once, over all requests; a request that would exceed it is sent without a copy (a 401 then reaches the client).',
    format: 'bytes', default: 4194304, env: 'RETRY_BODY_BUDGET',
  },
  tokenForcedRefreshFloor: {
    doc: 'Least seconds between two token refreshes forced by a 401 from an upstream: a 401 sooner after the last one is passed to the client and the token kept, so an upstream that refuses every token cannot turn traffic into token requests.',
    format: 'seconds-or-zero', default: 30, env: 'TOKEN_FORCED_REFRESH_FLOOR',
  },
  upstreams: {
    doc: 'Upstreams from the config file (each entry uses the upstream settings below in camelCase).',
    format: Array, default: [] as unknown[], env: undefined,
  },
};

/** Settings of one upstream; a config file's `upstreams` entries use the keys, the environment the `env` names. */
export const UPSTREAM_SCHEMA = {
  name: {
    doc: 'Name of the upstream in metrics and logs.', format: String, default: '', env: 'LOGICNETS_NAME',
  },
  url: {
    doc: 'Base URL of the LogicNets installation including the company, e.g. `https://lua5.logicnets.local/logicnets`.',
    format: String, default: '', env: 'LOGICNETS_URL',
  },
  clientId: {
    doc: 'Client id of the LogicNets server user (the assertion\'s `sub`).', format: String, default: '', env: 'LOGICNETS_CLIENT_ID',
  },
  clientIssuer: {
    doc: '`iss` of the client assertion; defaults to the client id.', format: String, default: '', env: 'LOGICNETS_CLIENT_ISSUER',
  },
  privateKeyFile: {
    doc: 'File with the server user\'s RSA private key (PEM PKCS#8 or PKCS#1, or JWK JSON); re-read when it changes.',
    format: String, default: '', env: 'LOGICNETS_PRIVATE_KEY_FILE',
  },
  privateKey: {
    doc: 'The RSA private key inline (PEM or JWK JSON), instead of a file.',
    format: String, default: '', env: 'LOGICNETS_PRIVATE_KEY', sensitive: true,
  },
  keyId: { doc: 'Optional `kid` header of the assertion.', format: String, default: '', env: 'LOGICNETS_KEY_ID' },
  tokenUrl: {
    doc: 'Token endpoint; defaults to `${LOGICNETS_URL}/oauth2token`.', format: String, default: '', env: 'LOGICNETS_TOKEN_URL',
  },
  tokenAudience: {
    doc: '`aud` of the client assertion; defaults to `${LOGICNETS_URL}`.', format: String, default: '', env: 'LOGICNETS_TOKEN_AUDIENCE',
  },
  tokenMethod: {
    doc: '`GET` (query parameters, as LogicNets documents) or `POST` (form body, RFC 6749).',
    format: String, default: 'GET', env: 'LOGICNETS_TOKEN_METHOD',
  },
  tokenScope: { doc: 'Optional `scope` parameter of the token request.', format: String, default: '', env: 'LOGICNETS_TOKEN_SCOPE' },
  assertionTtl: {
    doc: 'Lifetime of a client assertion in seconds (1 to 3600).', format: 'whole-seconds', min: 1, max: 3600, default: 300, env: 'LOGICNETS_ASSERTION_TTL',
  },
  caFile: {
    doc: 'Extra CA certificates (PEM) trusted for the token endpoint and the upstream, besides the system CAs; re-read when it changes.',
    format: String, default: '', env: 'LOGICNETS_CA_FILE',
  },
  clientCertFile: {
    doc: 'Client certificate (PEM, intermediates may follow) presented to the token endpoint and the upstream when they require mTLS; re-read when it changes. Needs LOGICNETS_CLIENT_KEY_FILE.',
    format: String, default: '', env: 'LOGICNETS_CLIENT_CERT_FILE',
  },
  clientKeyFile: {
    doc: 'Unencrypted private key (PEM) of LOGICNETS_CLIENT_CERT_FILE; re-read when it changes.',
    format: String, default: '', env: 'LOGICNETS_CLIENT_KEY_FILE',
  },
  egressProxy: {
    doc: 'Egress proxy for this upstream\'s token endpoint and API (`http://[user:password@]host:port`), instead of HTTPS_PROXY/NO_PROXY; `none`: connect directly.',
    format: String, default: '', env: 'LOGICNETS_EGRESS_PROXY', sensitive: true,
  },
  tokenTimeout: {
    doc: 'Seconds one token request may take.', format: 'seconds', default: 10, env: 'LOGICNETS_TOKEN_TIMEOUT',
  },
  tokenDefaultLifetime: {
    doc: 'Lifetime in seconds assumed for a token that has neither `expires_in` nor a JWT `exp`.',
    format: 'whole-seconds', min: 30, default: 300, env: 'LOGICNETS_TOKEN_DEFAULT_LIFETIME',
  },
  assertionType: {
    doc: '`typ` header of the client assertion: `JWT` (the LogicNets tutorial) or `client-authentication+jwt` (RFC 10070, for servers that require it).',
    format: ['JWT', 'client-authentication+jwt'], default: 'JWT', env: 'LOGICNETS_ASSERTION_TYP',
  },
  tokenParams: {
    doc: 'Extra token request parameters as a form query, e.g. `audience=api&resource=https://api.example` (in the query for GET, the form for POST); never logged. `grant_type`, `client_assertion`, `client_assertion_type`, `client_id`, `client_secret` and `scope` are refused.',
    format: String, default: '', env: 'LOGICNETS_TOKEN_PARAMS', sensitive: true,
  },
};

/** A setting of an upstream. */
export type UpstreamKey = keyof typeof UPSTREAM_SCHEMA;
/** A setting of the sidecar. */
export type GlobalKey = keyof typeof GLOBAL_SCHEMA;
/** Every upstream setting. */
export const UPSTREAM_KEYS = Object.keys(UPSTREAM_SCHEMA) as UpstreamKey[];
/** Upstream settings without a default, with what to say when they are missing. */
export const REQUIRED: Partial<Record<UpstreamKey, string>> = {
  url: 'it is required: the base URL of the LogicNets installation including the company',
  clientId: 'it is required: the client id of the LogicNets server user',
};

/** Every setting with its environment variable, default and description. */
export function settingsDoc(): SettingDoc[] {
  const rows: SettingDoc[] = [];
  const add = (scope: 'global' | 'upstream', schema: Record<string, { doc: string; default: unknown; env?: string }>) => {
    for (const [key, item] of Object.entries(schema)) {
      if (item.env === undefined) continue;
      rows.push({ key, env: item.env, doc: item.doc, default: describeDefault(key, item.default), scope });
    }
  };
  add('upstream', UPSTREAM_SCHEMA);
  add('global', GLOBAL_SCHEMA);
  rows.push({
    key: 'configFile', env: 'CONFIG_FILE', scope: 'global', default: 'none',
    doc: 'A JSON or YAML file that can set everything above (camelCase names), including a list of `upstreams`. Also `--config FILE`.',
  });
  return rows;
}

function describeDefault(key: string, value: unknown): string {
  if (key === 'clientIssuer') return 'the client id';
  if (key === 'tokenUrl') return '`${LOGICNETS_URL}/oauth2token`';
  if (key === 'tokenAudience') return '`${LOGICNETS_URL}`';
  if (key === 'name') return 'host and company of the URL';
  if (key === 'url' || key === 'clientId') return 'required';
  if (key === 'privateKeyFile' || key === 'privateKey') return 'one of the two required';
  if (key === 'adminShutdownTokenFile') return 'none: `POST /shutdown` is off';
  if (key === 'egressProxy') return 'from HTTPS_PROXY / NO_PROXY';
  if (value === '' || value === undefined) return 'none';
  return `\`${settingText(value)}\``;
}

