/**
 * The `check` command: walks the setup the way the tutorial does and reports each step as ok,
 * warn or failed with a one-line reason: configuration, key, clock against the token endpoint's
 * `Date` header, token request, and optionally a probe URL called without and with the token.
 */
import { request as httpRequest } from 'node:http';
import type { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { systemClock } from '../lib/clock.js';
import type { Clock } from '../lib/clock.js';
import { loadConfig } from '../config/load.js';
import type { ConfigSources } from '../config/load.js';
import type { UpstreamConfig } from '../config/types.js';
import { ConfigError, TokenEndpointError } from '../lib/errors.js';
import { createLogger, urlForLog } from '../lib/logger.js';
import type { Token } from '../token/token.js';
import { createUpstreamStack } from '../upstream-stack.js';
import type { UpstreamStack } from '../upstream-stack.js';

/** Clock skew beyond which `check` warns (assertions carry `iat`/`exp` the server compares). */
export const SKEW_WARN_MS = 30_000;

/** The outcome of one step. */
export interface CheckStep {
  readonly step: string;
  readonly status: 'ok' | 'warn' | 'failed' | 'skipped';
  readonly detail: string;
}

/** Options of `runCheck`. `write` receives each line (default stdout). */
export interface CheckOptions extends ConfigSources {
  upstream?: string;
  probe?: string;
  clock?: Clock;
  write?: (line: string) => void;
}

function formatStep(s: CheckStep): string {
  const mark = s.status === 'ok' ? 'ok    ' : s.status === 'warn' ? 'warn  ' : s.status === 'skipped' ? 'skip  ' : 'FAILED';
  return `${mark}  ${s.step.padEnd(14)} ${s.detail}`;
}

/** Runs the checks; returns 0 when no step failed, 1 otherwise (2 for a configuration error). */
export async function runCheck(options: CheckOptions): Promise<number> {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const clock = options.clock ?? systemClock;
  const steps: CheckStep[] = [];
  const report = (s: CheckStep) => {
    steps.push(s);
    write(formatStep(s));
  };

  let config;
  try {
    config = loadConfig(options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) report({ step: 'configuration', status: 'failed', detail: problem });
    return 2;
  }
  const upstreams = options.upstream === undefined ? config.upstreams : config.upstreams.filter((u) => u.name === options.upstream);
  if (upstreams.length === 0) {
    report({ step: 'configuration', status: 'failed', detail: `no upstream is named "${options.upstream}"` });
    return 2;
  }
  report({ step: 'configuration', status: 'ok', detail: `${config.upstreams.length} upstream(s): ${config.upstreams.map((u) => u.name).join(', ')}` });
  // The token goes only to its own installation: the probe must lie under an upstream's URL.
  const probeUpstream = options.probe === undefined ? undefined : upstreams.find((u) => isUnder(options.probe as string, u.url));
  if (options.probe !== undefined && probeUpstream === undefined) {
    report({ step: 'probe', status: 'failed', detail: `${urlForLog(options.probe)} is not under ${upstreams.map((u) => u.url).join(' or ')}; the token is only sent to its own installation` });
  }

  const logger = createLogger({ level: 'silent' });
  for (const upstream of upstreams) {
    const prefix = upstreams.length > 1 ? `[${upstream.name}] ` : '';
    let stack: UpstreamStack;
    try {
      stack = await createUpstreamStack(upstream, { logger, clock });
    } catch (error) {
      report({ step: 'key', status: 'failed', detail: prefix + (error as Error).message });
      continue;
    }
    try {
      const jwk = stack.keys.publicJwk();
      const bits = Buffer.from(String(jwk.n), 'base64url').length * 8;
      report({ step: 'key', status: 'ok', detail: `${prefix}RSA ${bits}-bit private key from ${stack.keys.origin}; sub=${upstream.clientId} iss=${upstream.clientIssuer} aud=${upstream.tokenAudience}` });
      report(egressStep(upstream, prefix));
      if (stack.tls.clientCertificate !== undefined) {
        report({ step: 'client cert', status: 'ok', detail: `${prefix}${stack.tls.clientCertificate} (${upstream.clientCertFile})` });
      }

      const { token, error: tokenError, responseDate: serverDate } = await stack.endpoint.exchangeToken();
      // No answer at all (refused, unreachable, TLS, timeout): nothing to compare, and the token step says why.
      const answered = token !== undefined || (tokenError instanceof TokenEndpointError && tokenError.httpStatus !== undefined);
      if (serverDate === undefined && !answered) {
        report({ step: 'clock', status: 'skipped', detail: `${prefix}skipped: no answer from ${urlForLog(upstream.tokenUrl)} to compare clocks with` });
      } else if (serverDate === undefined) {
        report({ step: 'clock', status: 'warn', detail: `${prefix}no Date header from ${urlForLog(upstream.tokenUrl)}; cannot compare clocks` });
      } else {
        const skew = clock.now() - serverDate;
        const seconds = Math.round(skew / 1000);
        report(Math.abs(skew) > SKEW_WARN_MS
          ? { step: 'clock', status: 'warn', detail: `${prefix}this machine's clock is ${Math.abs(seconds)} s ${skew > 0 ? 'ahead of' : 'behind'} the token endpoint; assertions may be refused (iat/exp): sync the clock (NTP)` }
          : { step: 'clock', status: 'ok', detail: `${prefix}within ${Math.abs(seconds)} s of the token endpoint` });
      }
      if (token === undefined) {
        report({ step: 'token request', status: 'failed', detail: prefix + (tokenError?.message ?? 'no token') });
        continue;
      }
      const lifetime = Math.round((token.expiresAt - clock.now()) / 1000);
      report({ step: 'token request', status: 'ok', detail: `${prefix}${upstream.tokenMethod} ${urlForLog(upstream.tokenUrl)} gave a Bearer token valid for ${lifetime} s${token.scope ? ` (scope "${token.scope}")` : ''}` });

      if (options.probe !== undefined && probeUpstream === upstream) {
        await probe(options.probe, token, stack.agent, report, prefix, upstream.settingName?.('url') ?? 'the upstream URL');
      }
    } finally {
      stack.close();
    }
  }
  return steps.some((s) => s.status === 'failed') ? 1 : 0;
}

/** How the token endpoint and the API are reached (the proxy without credentials, or direct, and why). */
function egressStep(upstream: UpstreamConfig, prefix: string): CheckStep {
  const api = upstream.egress?.api ?? { proxyUrl: undefined, description: 'direct' };
  const token = upstream.egress?.token ?? api;
  const detail = api.description === token.description
    ? `token endpoint and API ${api.description}`
    : `token endpoint ${token.description}; API ${api.description}`;
  const warnings = [...new Set([token.warning, api.warning].filter((w): w is string => w !== undefined))];
  return { step: 'egress', status: warnings.length > 0 ? 'warn' : 'ok', detail: [prefix + detail, ...warnings].join('; ') };
}

/** Whether `url` names `base` or a path below it (same scheme, host and port). */
function isUnder(url: string, base: string): boolean {
  try {
    const target = new URL(url);
    const root = new URL(base);
    return target.origin === root.origin && `${target.pathname}/`.startsWith(`${root.pathname}/`);
  } catch {
    return false;
  }
}

async function probe(url: string, token: Token, agent: HttpAgent | HttpsAgent, report: (s: CheckStep) => void, prefix: string,
  upstreamUrlName: string): Promise<void> {
  let without: number;
  let withToken: number;
  try {
    without = await statusOf(url, undefined, agent);
    withToken = await statusOf(url, token.accessToken, agent);
  } catch (error) {
    report({ step: 'probe', status: 'failed', detail: `${prefix}${urlForLog(url)} cannot be reached: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
    return;
  }
  const seen = `without token ${without}, with token ${withToken}`;
  if (withToken >= 200 && withToken < 300) {
    report({ step: 'probe', status: without === 403 || without === 401 ? 'ok' : 'warn', detail: `${prefix}${urlForLog(url)}: ${seen}${without === 403 || without === 401 ? '' : ' (expected 403 without a token: is the endpoint protected?)'}` });
  } else if (withToken === 403) {
    report({ step: 'probe', status: 'failed', detail: `${prefix}${urlForLog(url)}: ${seen}; the token is accepted but lacks a role: add the server user to a group with the API's role` });
  } else if (withToken === 401) {
    report({ step: 'probe', status: 'failed', detail: `${prefix}${urlForLog(url)}: ${seen}; the API refuses the token: check that ${upstreamUrlName} names the same installation and company` });
  } else {
    report({ step: 'probe', status: 'failed', detail: `${prefix}${urlForLog(url)}: ${seen}` });
  }
}

function statusOf(url: string, accessToken: string | undefined, agent: HttpAgent | HttpsAgent): Promise<number> {
  return new Promise((resolve, reject) => {
    const parsed = new URL(url);
    const send = parsed.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`;
    const req = send(parsed, {
      method: 'GET',
      headers,
      agent: (parsed.protocol === 'https:') === (agent instanceof HttpsAgent) ? agent : undefined,
      signal: AbortSignal.timeout(10_000),
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
