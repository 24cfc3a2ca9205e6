/**
 * Configuration: one convict schema for the sidecar and one for an upstream, loaded from the
 * environment and an optional JSON or YAML file, validated strictly. Every problem is reported at
 * once, each line naming the setting, its environment variable and what is wrong; sensitive values
 * are never echoed. Environment variables override the file for global settings; environment
 * variables alone describe one upstream, a file may list several.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, extname } from 'node:path';
import convict from 'convict';
import type { LevelWithSilent } from 'pino';
import { parse as parseYaml } from 'yaml';
import { checkClientCertificate, isCertificateProblem } from '../lib/client-certificate.js';
import { chooseEgressProxy, isOwnListener, parseProxyUrl, readProxyEnvironment, redactProxyUrl } from '../lib/egress-proxy.js';
import type { ExplicitEgress, OwnListener, ProxyEnvironment } from '../lib/egress-proxy.js';
import { ConfigError } from '../lib/errors.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { parseExtraTokenParams } from '../lib/token-params.js';
import type { Config, EgressRoute, UpstreamConfig } from './types.js';
import { overlappingUpstreams } from './ambiguity.js';
import { settingProblem, settingText } from './formats.js';
import type { FormatItem } from './formats.js';
import { GLOBAL_SCHEMA, REQUIRED, UPSTREAM_KEYS, UPSTREAM_SCHEMA } from './schema.js';
import type { GlobalKey, UpstreamKey } from './schema.js';

export type { Config, UpstreamConfig } from './types.js';
export { settingsDoc } from './schema.js';
export type { SettingDoc } from './schema.js';

/** Where configuration comes from. */
export interface ConfigSources {
  /** Environment variables; defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** A JSON or YAML file; defaults to `env.CONFIG_FILE`. */
  configFile?: string;
}

/**
 * Loads and validates the configuration. Throws `ConfigError` listing every problem; the lines
 * never contain a sensitive value.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const file = sources.configFile ?? (env.CONFIG_FILE || undefined);
  const problems: string[] = [];

  let fileData: Record<string, unknown> = {};
  if (file !== undefined) {
    try {
      fileData = readConfigFile(file);
    } catch (error) {
      throw new ConfigError([`CONFIG_FILE (${file}): ${(error as Error).message}`]);
    }
  }

  const { upstreams: fileUpstreams, ...fileGlobals } = fileData;
  for (const key of Object.keys(fileGlobals)) {
    if (!Object.hasOwn(GLOBAL_SCHEMA, key) && !Object.hasOwn(UPSTREAM_SCHEMA, key)) problems.push(`${key} (config file): is not a known setting`);
  }
  const knownGlobals = Object.fromEntries(Object.entries(fileGlobals).filter(([k]) => Object.hasOwn(GLOBAL_SCHEMA, k)));
  const globalLabel = sourceLabel(GLOBAL_SCHEMA, knownGlobals, env);
  const globalSetting = loadSettings(GLOBAL_SCHEMA, knownGlobals, env, globalLabel, problems);

  const fileUpstreamGlobals = Object.fromEntries(Object.entries(fileGlobals).filter(([k]) => Object.hasOwn(UPSTREAM_SCHEMA, k)));
  const upstreams: UpstreamConfig[] = [];
  const egress: EgressContext = {
    environment: readProxyEnvironment(env),
    listener: { host: String(globalSetting('listenHost')), port: Number(globalSetting('listenPort')), localAddresses: localAddresses() },
    listenerName: `${globalLabel('listenHost')} and ${globalLabel('listenPort')}`,
  };

  if (fileUpstreams !== undefined) {
    if (!Array.isArray(fileUpstreams) || fileUpstreams.length === 0) {
      problems.push('upstreams (config file): must be a non-empty list of upstream entries');
    } else {
      const envNames = UPSTREAM_KEYS.map((k) => UPSTREAM_SCHEMA[k].env).filter((n) => env[n] !== undefined && env[n] !== '');
      if (envNames.length > 0) {
        problems.push(`${envNames.join(', ')}: set while the config file lists upstreams; describe upstreams either in the file or with environment variables, not both`);
      }
      fileUpstreams.forEach((entry: unknown, index) => {
        const label = (key: string) => `upstreams[${index}].${key} (config file)`;
        if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
          problems.push(`upstreams[${index}] (config file): must be an object with url, clientId and a private key`);
          return;
        }
        const upstream = loadUpstream({ ...entry as Record<string, unknown> }, undefined, label, problems, egress);
        if (upstream) upstreams.push(upstream);
      });
    }
  } else {
    const label = sourceLabel(UPSTREAM_SCHEMA, fileUpstreamGlobals, env);
    const upstream = loadUpstream(fileUpstreamGlobals, env, label, problems, egress);
    if (upstream) upstreams.push(upstream);
  }

  checkUniqueAndUnambiguous(upstreams, problems);
  const g = (key: GlobalKey) => globalSetting(key);
  const headersTimeout = g('headersTimeout') as number;
  const requestTimeout = g('requestTimeout') as number;
  if (requestTimeout > 0 && requestTimeout < headersTimeout) {
    problems.push(`${globalLabel('requestTimeout')}: ${requestTimeout} s is shorter than ${globalLabel('headersTimeout')}, ${headersTimeout} s; ` +
      'a whole request cannot take less time than its header section (0: no limit)');
  }
  const listenHost = String(g('listenHost')).trim();
  if (!isLoopbackHost(listenHost) && g('allowRemoteClients') !== true) {
    problems.push(`${globalLabel('listenHost')}: ${JSON.stringify(listenHost)} is not a loopback address: every client that reaches it ` +
      'would get the LogicNets credentials the sidecar adds. Keep 127.0.0.1, or set ' +
      `${globalLabel('allowRemoteClients')} to true if the network in front of it is trusted`);
  }
  const shutdownTokenFile = String(g('adminShutdownTokenFile')).trim() || undefined;
  if (shutdownTokenFile !== undefined) checkWritableFile(shutdownTokenFile, globalLabel('adminShutdownTokenFile'), problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    upstreams,
    settingName: globalLabel,
    logLevel: g('logLevel') as LevelWithSilent,
    listenHost,
    listenPort: g('listenPort') as number,
    allowRemoteClients: g('allowRemoteClients') as boolean,
    adminHost: g('adminHost') as string,
    adminPort: g('adminPort') as number,
    adminAllowRemote: g('adminAllowRemote') as boolean,
    adminShutdownTokenFile: shutdownTokenFile,
    upstreamTimeout: g('upstreamTimeout') as number,
    shutdownDelay: g('shutdownDelay') as number,
    shutdownTimeout: g('shutdownTimeout') as number,
    readinessRequireToken: g('readinessRequireToken') as boolean,
    xForwarded: g('xForwarded') as boolean,
    retryBodyLimit: g('retryBodyLimit') as number,
    retryBodyBudget: g('retryBodyBudget') as number,
    idleTimeout: g('idleTimeout') as number,
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: g('keepAliveTimeout') as number,
    maxHeaderCount: g('maxHeaderCount') as number,
    maxHeaderSize: g('maxHeaderSize') as number,
    maxConnections: g('maxConnections') as number,
    tokenForcedRefreshFloor: g('tokenForcedRefreshFloor') as number,
  };
}

/** A schema item as the loader reads it. */
type Item = FormatItem & { readonly env?: string };

/**
 * How to name a setting in a problem line: `key (ENV_NAME)` when its value came from the
 * environment (or from nowhere: then the variable is what to set), `key (config file)` when from
 * the file.
 */
function sourceLabel(schema: Readonly<Record<string, Item>>, fileData: Readonly<Record<string, unknown>>, env: NodeJS.ProcessEnv): (key: string) => string {
  return (key) => {
    const name = schema[key]?.env;
    if (name !== undefined && env[name] !== undefined) return `${key} (${name})`;
    if (Object.hasOwn(fileData, key)) return `${key} (config file)`;
    return name === undefined ? key : `${key} (${name})`;
  };
}

/**
 * Loads `data` (a config file's known settings) and the environment into a convict instance of
 * `schema`, whose strict formats read each value (`coerce`), and adds a problem line per setting
 * that is wrong. convict 6 reports its own validation only as one joined message, so the problems
 * come from the same format checks, run per setting here; convict's `validate` then runs as a
 * safety net for formats this loader does not know, and its message is passed on as it is.
 */
function loadSettings<T extends Record<string, Item>>(
  schema: T,
  data: Readonly<Record<string, unknown>>,
  env: NodeJS.ProcessEnv,
  label: (key: string) => string,
  problems: string[],
): (key: string) => unknown {
  const conf = convict(schema as convict.Schema<Record<string, unknown>>, { env, args: [] });
  // convict types `get` by a schema type this loader does not declare; the keys come from `schema`.
  const get = (key: string): unknown => conf.get(key as never);
  const before = problems.length;
  const scalars: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    // A list or object where one value belongs would make convict nest into it: refuse it here.
    if (schema[key]?.format !== Array && typeof value === 'object' && value !== null) {
      problems.push(`${label(key)}: is ${Array.isArray(value) ? 'a list' : 'an object'}; expected a single value`);
    } else {
      scalars[key] = value;
    }
  }
  conf.load(scalars);
  for (const [key, item] of Object.entries(schema)) {
    const problem = settingProblem(item, get(key));
    if (problem !== undefined) problems.push(`${label(key)}: ${problem}`);
  }
  if (problems.length === before) {
    try {
      conf.validate({ allowed: 'strict' });
    } catch (error) {
      problems.push(...(error as Error).message.split('\n'));
    }
  }
  return get;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let data: unknown;
  try {
    data = ['.yaml', '.yml'].includes(extname(file).toLowerCase()) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new Error(`is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new Error('must hold an object of settings');
  return data as Record<string, unknown>;
}

/** What deciding an upstream's egress proxy needs besides the upstream. */
interface EgressContext {
  readonly environment: ProxyEnvironment;
  readonly listener: OwnListener;
  /** The listener's settings as the operator set them, for messages. */
  readonly listenerName: string;
}

/** This machine's interface addresses, to recognise a proxy setting that names the sidecar itself. */
function localAddresses(): string[] {
  try {
    return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((entry) => entry.address));
  } catch {
    return [];
  }
}

function loadUpstream(
  data: Record<string, unknown>,
  env: NodeJS.ProcessEnv | undefined,
  label: (key: string) => string,
  problems: string[],
  egressContext: EgressContext,
): UpstreamConfig | undefined {
  const before = problems.length;
  for (const key of Object.keys(data)) {
    if (!Object.hasOwn(UPSTREAM_SCHEMA, key)) problems.push(`${label(key)}: is not a known setting`);
  }
  const known = Object.fromEntries(Object.entries(data).filter(([k]) => Object.hasOwn(UPSTREAM_SCHEMA, k)));
  const schema = env === undefined
    ? Object.fromEntries(Object.entries(UPSTREAM_SCHEMA).map(([k, v]) => [k, { ...v, env: undefined }]))
    : UPSTREAM_SCHEMA;
  const setting = loadSettings(schema, known, env ?? {}, label, problems);
  const get = (key: UpstreamKey): string => settingText(setting(key)).trim();

  for (const [key, message] of Object.entries(REQUIRED)) {
    if (get(key as UpstreamKey) === '') problems.push(`${label(key)}: ${message}`);
  }
  const url = checkUrl(get('url'), label('url'), problems, true);
  const tokenUrl = get('tokenUrl') === '' ? (url ? `${url}/oauth2token` : '') : checkUrl(get('tokenUrl'), label('tokenUrl'), problems, false);
  const tokenAudience = get('tokenAudience') || url || '';

  const privateKeyFile = get('privateKeyFile') || undefined;
  const privateKey = get('privateKey') || undefined;
  if (privateKeyFile === undefined && privateKey === undefined) {
    problems.push(`${label('privateKeyFile')}: a private key is required: set ${label('privateKeyFile')} or ${label('privateKey')}`);
  } else if (privateKeyFile !== undefined && privateKey !== undefined) {
    problems.push(`${label('privateKeyFile')}: set either the key file or ${label('privateKey')}, not both`);
  } else if (privateKeyFile !== undefined) {
    checkReadableFile(privateKeyFile, label('privateKeyFile'), problems);
  }

  const method = get('tokenMethod').toUpperCase();
  if (method !== 'GET' && method !== 'POST') problems.push(`${label('tokenMethod')}: must be GET or POST, not "${method}"`);
  const ttl = setting('assertionTtl') as number;
  const timeout = setting('tokenTimeout') as number;
  const lifetime = setting('tokenDefaultLifetime') as number;
  let tokenParams: [string, string][] = [];
  try {
    tokenParams = parseExtraTokenParams(settingText(setting('tokenParams')));
  } catch (error) {
    problems.push(`${label('tokenParams')}: ${(error as Error).message}`);
  }
  const caFile = get('caFile') || undefined;
  if (caFile !== undefined && checkReadableFile(caFile, label('caFile'), problems)) {
    if (!readFileSync(caFile, 'utf8').includes('-----BEGIN CERTIFICATE-----')) {
      problems.push(`${label('caFile')}: ${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    }
  }
  const clientCertFile = get('clientCertFile') || undefined;
  const clientKeyFile = get('clientKeyFile') || undefined;
  checkClientCertificateFiles(clientCertFile, clientKeyFile, label, problems);
  const explicit = explicitEgress(get('egressProxy'), label('egressProxy'), egressContext, problems);
  if (problems.length > before || url === undefined || tokenUrl === undefined) return undefined;
  const egress = {
    api: egressRoute(url, explicit, egressContext, problems),
    token: egressRoute(tokenUrl, explicit, egressContext, problems),
  };
  if (problems.length > before) return undefined;

  const parsed = new URL(url);
  return {
    settingName: label,
    name: get('name') || `${parsed.host}${parsed.pathname}`,
    url,
    clientId: get('clientId'),
    clientIssuer: get('clientIssuer') || get('clientId'),
    privateKeyFile,
    privateKey,
    keyId: get('keyId') || undefined,
    tokenUrl,
    tokenAudience,
    tokenMethod: method as 'GET' | 'POST',
    tokenScope: get('tokenScope') || undefined,
    assertionTtl: ttl,
    caFile,
    tokenTimeout: timeout,
    tokenDefaultLifetime: lifetime,
    assertionType: get('assertionType') as 'JWT' | 'client-authentication+jwt',
    tokenParams,
    clientCertFile,
    clientKeyFile,
    egress,
  };
}

/** Both client certificate files or neither; readable; a certificate, a key, and the two belonging together. */
function checkClientCertificateFiles(certFile: string | undefined, keyFile: string | undefined,
  label: (key: string) => string, problems: string[]): void {
  if (certFile === undefined && keyFile === undefined) return;
  if (certFile === undefined || keyFile === undefined) {
    const [set, missing] = certFile === undefined ? ['clientKeyFile', 'clientCertFile'] : ['clientCertFile', 'clientKeyFile'];
    problems.push(`${label(missing)}: is required when ${label(set)} is set: a client certificate needs both the certificate and its key`);
    return;
  }
  const readable = checkReadableFile(certFile, label('clientCertFile'), problems);
  if (!checkReadableFile(keyFile, label('clientKeyFile'), problems) || !readable) return;
  const checked = checkClientCertificate(readFileSync(certFile, 'utf8'), readFileSync(keyFile, 'utf8'));
  if (!isCertificateProblem(checked)) return;
  if (checked.which === 'cert') problems.push(`${label('clientCertFile')}: ${certFile} ${checked.message}`);
  else if (checked.which === 'key') problems.push(`${label('clientKeyFile')}: ${keyFile} ${checked.message}`);
  else problems.push(`${label('clientCertFile')}: the certificate in ${certFile} does not match the private key in ${keyFile} (${label('clientKeyFile')}): ${checked.message}`);
}

/**
 * The upstream's own egress setting: empty (the environment decides), `none` (direct) or a proxy
 * URL. A URL naming the sidecar's own listener is refused: unlike HTTPS_PROXY, which may be meant
 * for the application, this setting is the sidecar's alone.
 */
function explicitEgress(value: string, name: string, context: EgressContext, problems: string[]): ExplicitEgress | undefined {
  if (value === '') return undefined;
  if (value.toLowerCase() === 'none') return { direct: true, origin: name };
  try {
    const proxy = parseProxyUrl(value);
    if (isOwnListener(proxy, context.listener)) {
      problems.push(`${name}: ${redactProxyUrl(proxy)} is this sidecar's own listener (${context.listenerName}); requests would loop`);
      return undefined;
    }
    return { proxy, origin: name };
  } catch (error) {
    problems.push(`${name}: ${(error as Error).message}`);
    return undefined;
  }
}

/** How `destination` is reached, decided once at start-up. */
function egressRoute(destination: string, explicit: ExplicitEgress | undefined, context: EgressContext, problems: string[]): EgressRoute {
  const target = new URL(destination);
  try {
    const choice = chooseEgressProxy(target, explicit, context.environment, context.listener);
    if (choice.proxy === undefined) {
      return {
        proxyUrl: undefined,
        description: `direct (${choice.reason})`,
        warning: choice.ignored === undefined ? undefined
          : `${choice.ignored.origin} (${choice.ignored.proxy}) names this sidecar's own listener, so it is ignored for ${target.host}: it was probably meant for the application; the sidecar connects directly`,
      };
    }
    return { proxyUrl: choice.proxy.href, description: `via ${redactProxyUrl(choice.proxy)} (${choice.reason})` };
  } catch (error) {
    const variable = target.protocol === 'https:' ? context.environment.httpsProxy : context.environment.httpProxy;
    const problem = `${variable?.origin ?? 'https_proxy'}: ${(error as Error).message}`;
    if (!problems.includes(problem)) problems.push(problem); // once, not for the API and the token endpoint each
    return { proxyUrl: undefined, description: 'direct' };
  }
}

/** Checks an https URL (http only towards loopback); returns it without a trailing slash. */
function checkUrl(value: string, name: string, problems: string[], needsPath: boolean): string | undefined {
  if (value === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    problems.push(`${name}: is not a URL; expected e.g. https://lua5.logicnets.local/logicnets`);
    return undefined;
  }
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname))) {
    problems.push(`${name}: must use https:// (plain http:// is only accepted for loopback hosts), got ${parsed.protocol}//`);
    return undefined;
  }
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
    problems.push(`${name}: must not contain credentials, a query or a fragment`);
    return undefined;
  }
  const path = parsed.pathname.replace(/\/+$/, '');
  if (needsPath && path === '') {
    problems.push(`${name}: must include the company path, e.g. https://${parsed.host}/logicnets`);
    return undefined;
  }
  return `${parsed.protocol}//${parsed.host}${path}`;
}

function checkReadableFile(file: string, name: string, problems: string[]): boolean {
  try {
    if (!statSync(file).isFile()) {
      problems.push(`${name}: ${file} is not a file`);
      return false;
    }
    accessSync(file, constants.R_OK);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push(`${name}: ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'error'})`}`);
    return false;
  }
}

/** Checks that `file` can be (re)written: its folder exists and is writable, and it is no folder itself. */
function checkWritableFile(file: string, name: string, problems: string[]): void {
  try {
    if (statSync(file, { throwIfNoEntry: false })?.isDirectory() === true) {
      problems.push(`${name}: ${file} is a folder; name a file in it`);
      return;
    }
    accessSync(dirname(file), constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push(`${name}: the folder of ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be written (${code ?? 'error'})`}`);
  }
}

/** Refuses duplicate names and two upstreams that would match the same request. */
function checkUniqueAndUnambiguous(upstreams: readonly UpstreamConfig[], problems: string[]): void {
  for (let i = 0; i < upstreams.length; i++) {
    for (let j = i + 1; j < upstreams.length; j++) {
      if (upstreams[i]!.name === upstreams[j]!.name) {
        problems.push(`upstreams[${j}].name: "${upstreams[j]!.name}" is used by upstreams[${i}] too; names must be unique`);
      }
    }
  }
  for (const [i, j] of overlappingUpstreams(upstreams.map((u) => u.url))) {
    problems.push(`upstreams[${i}] (${upstreams[i]!.url}) and upstreams[${j}] (${upstreams[j]!.url}): ambiguous, a request for the same host and company path would match both; give each upstream its own host or company path`);
  }
}
