/**
 * The commands of the command line: `logicnets-token-proxy [serve|demo|token|assertion|check] [options]`.
 * Parses arguments, loads the configuration and hands over to the command. A bad setting ends
 * with one message naming it and exit code 2, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { signClientAssertion } from '../token/assertion.js';
import { runCheck } from './check.js';
import { systemClock } from '../lib/clock.js';
import { loadConfig, settingsDoc } from '../config/load.js';
import type { Config, UpstreamConfig } from '../config/types.js';
import { runDemo } from './demo.js';
import { ConfigError, ProxyError } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { serve } from '../sidecar.js';
import { createUpstreamStack } from '../upstream-stack.js';

const COMMANDS = ['serve', 'demo', 'token', 'assertion', 'check', 'help', 'version'] as const;
type Command = (typeof COMMANDS)[number];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Width the `--help` text fits in. */
export const HELP_COLUMNS = 100;

/** `text` broken at spaces into lines of at most `width` characters (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The `--help` text, with every setting and its environment variable, in `HELP_COLUMNS` columns. */
export function helpText(): string {
  const indent = 37;
  const settings = settingsDoc().flatMap((s) => {
    const [first = '', ...rest] = wrap(`${s.doc} (default: ${s.default})`.replace(/`/g, ''), HELP_COLUMNS - indent);
    const name = `  ${s.env}`.padEnd(indent - 1);
    return name.length < indent
      ? [`${name} ${first}`, ...rest.map((l) => `${' '.repeat(indent)}${l}`)]
      : [name, ...[first, ...rest].map((l) => `${' '.repeat(indent)}${l}`)];
  });
  return [
    'Usage: logicnets-token-proxy [command] [options]',
    '',
    'Adds LogicNets OAuth 2.0 access tokens (client credentials, RS256 JWT client assertion) to plain',
    'HTTP calls: point a legacy app at the sidecar as if it were LogicNets, or use it as HTTP_PROXY.',
    '',
    'Commands:',
    '  serve        run the sidecar (the default)',
    '  demo         run a LogicNets emulator on loopback with the sidecar in front of it',
    '  token        print a fresh access token on stdout (details on stderr)',
    '  assertion    print one signed client assertion (the jwt.io step of the tutorial)',
    '  check        walk the setup step by step: configuration, key, clock, token request, probe',
    '  help         show this help',
    '  version      show the version',
    '',
    'Options:',
    '  --config FILE      JSON or YAML config file (also CONFIG_FILE)',
    '  --upstream NAME    with token, assertion, check: which upstream (default: the first)',
    '  --probe URL        with check: an API URL to call without and with the token (403, then 200)',
    '  -h, --help         show this help',
    '  -v, --version      show the version',
    '',
    'Settings (environment variables; a config file uses the camelCase names). Durations are seconds',
    'or take a unit (500ms, 30s, 1m, 1h); sizes are bytes or take KiB, MiB, GiB; switches are',
    'true or false. A value that does not read exactly stops the start, naming the setting.',
    ...settings,
  ].join('\n');
}

function pickUpstream(config: Config, name: string | undefined): UpstreamConfig {
  if (name === undefined) return config.upstreams[0]!;
  const found = config.upstreams.find((u) => u.name === name);
  if (found === undefined) {
    throw new ConfigError([`--upstream: no upstream is named "${name}"; known: ${config.upstreams.map((u) => u.name).join(', ')}`]);
  }
  return found;
}

async function tokenCommand(config: Config, upstreamName: string | undefined): Promise<number> {
  const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, destination: process.stderr });
  const stack = await createUpstreamStack(pickUpstream(config, upstreamName), { logger, clock: systemClock });
  try {
    const token = await stack.endpoint.fetchToken();
    process.stdout.write(`${token.accessToken}\n`);
    const seconds = Math.round((token.expiresAt - systemClock.now()) / 1000);
    process.stderr.write(`token_type=${token.tokenType} expires_in=${seconds}s${token.scope ? ` scope="${token.scope}"` : ''} upstream=${stack.upstream.name}\n`);
    return 0;
  } finally {
    stack.close();
  }
}

async function assertionCommand(config: Config, upstreamName: string | undefined): Promise<number> {
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const upstream = pickUpstream(config, upstreamName);
  const stack = await createUpstreamStack(upstream, { logger, clock: systemClock });
  try {
    const assertion = await signClientAssertion(stack.keys.current(), {
      issuer: upstream.clientIssuer,
      subject: upstream.clientId,
      audience: upstream.tokenAudience,
      ttlSeconds: upstream.assertionTtl,
      keyId: upstream.keyId,
    }, systemClock);
    process.stdout.write(`${assertion}\n`);
    return 0;
  } finally {
    stack.close();
  }
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        upstream: { type: 'string' },
        probe: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    process.stderr.write(`logicnets-token-proxy: ${(error as Error).message}\nTry --help.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = (positionals[0] ?? 'serve') as Command;
  if (values.help || command === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  if (values.version || command === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (!COMMANDS.includes(command) || positionals.length > 1) {
    process.stderr.write(`logicnets-token-proxy: unknown command "${positionals.join(' ')}"; commands: ${COMMANDS.join(', ')}. Try --help.\n`);
    return 2;
  }
  if (command === 'check') return runCheck({ env, configFile: values.config, upstream: values.upstream, probe: values.probe });
  if (command === 'demo') return runDemo({ env });

  const config = loadConfig({ env, configFile: values.config });
  switch (command) {
    case 'token':
      return tokenCommand(config, values.upstream);
    case 'assertion':
      return assertionCommand(config, values.upstream);
    case 'serve': {
      const logger = createLogger({ level: config.logLevel });
      if (!isLoopbackHost(config.listenHost)) {
        // Only reachable with allowRemoteClients (the loader refuses it otherwise): say so at every start.
        const name = config.settingName ?? ((key: string) => key);
        logger.warn({ listenHost: config.listenHost }, `${name('listenHost')} is not loopback (${name('allowRemoteClients')} is true): ` +
          'every client that reaches it gets LogicNets credentials added to its requests');
      }
      await serve(config, { logger, clock: systemClock });
      logger.flush();
      return 0;
    }
  }
}

/** Prints an error for an operator: the message only, never a stack. */
export function reportError(error: unknown): number {
  if (error instanceof ConfigError) {
    process.stderr.write(`logicnets-token-proxy: ${error.message}\n`);
    return 2;
  }
  if (error instanceof ProxyError) {
    process.stderr.write(`logicnets-token-proxy: ${error.message}\n`);
    return 1;
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    const err = error as NodeJS.ErrnoException & { address?: string; port?: number };
    process.stderr.write(`logicnets-token-proxy: cannot listen on ${err.address ?? ''}:${err.port ?? ''} (${code}); check the listen and admin addresses\n`);
    return 1;
  }
  process.stderr.write(`logicnets-token-proxy: unexpected error: ${(error as Error | undefined)?.message ?? String(error)}\n`);
  return 1;
}
