/**
 * The container image, proven without a Docker engine (there is none in CI). The Dockerfile is
 * parsed; the runtime stage's COPY lines say what the image holds (they are read, not restated
 * here). That tree is laid out in a temporary folder from a fresh build of the repository: dist/
 * compiled as the build stage compiles it, node_modules installed with production dependencies
 * only (`npm ci --omit=dev`, as the build stage's `npm prune --omit=dev` leaves it), the rest
 * copied. Then `--help`, `--version` and a `demo` request run from that tree with nothing else to
 * resolve modules from, so a dev dependency needed at run time, or a file the image lacks, fails
 * here. The folder must not change while the demo runs (the image runs with a read-only root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// ---- A small Dockerfile reader ----

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

interface Dockerfile {
  globalArgs: Map<string, string>;
  stages: Stage[];
}

/** Parses instructions (continuations joined, comments dropped) into stages. */
function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(`${pending}${line}`.trim());
    pending = '';
  }
  if (pending.trim() !== '') logical.push(pending.trim());

  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical.filter((l) => l !== '')) {
    const [, word = '', rest = ''] = /^(\S+)\s*([\s\S]*)$/.exec(line) ?? [];
    const keyword = word.toUpperCase();
    if (keyword === 'FROM') {
      const parts = rest.split(/\s+/).filter((p) => !p.startsWith('--'));
      const image = parts[0]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => globalArgs.get(a ?? b ?? '') ?? '');
      const name = parts[1]?.toUpperCase() === 'AS' ? parts[2] : undefined;
      stages.push({ image, name, instructions: [] });
    } else if (stages.length === 0) {
      if (keyword === 'ARG') {
        const [key, value = ''] = rest.split('=', 2);
        globalArgs.set(key!.trim(), value.trim());
      }
    } else {
      stages.at(-1)!.instructions.push({ keyword, args: rest });
    }
  }
  return { globalArgs, stages };
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

function copiesOf(stage: Stage): Copy[] {
  return stage.instructions.filter((i) => i.keyword === 'COPY').map((i) => {
    const flags = i.args.match(/--\S+/g) ?? [];
    const rest = i.args.replace(/--\S+\s*/g, '').trim();
    const words = rest.startsWith('[') ? JSON.parse(rest) as string[] : rest.split(/\s+/);
    const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
    return { from, sources: words.slice(0, -1), dest: words.at(-1)! };
  });
}

function workdirOf(stage: Stage): string {
  let dir = '/';
  for (const i of stage.instructions) if (i.keyword === 'WORKDIR') dir = posix.resolve(dir, i.args.trim());
  return dir;
}

function envOf(instructions: Instruction[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of instructions.filter((x) => x.keyword === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env.set(m[1]!, m[2]!.replace(/^"|"$/g, ''));
  }
  return env;
}

/** `.dockerignore` semantics (moby patternmatcher): last matching pattern wins; a pattern matching a parent folder matches its files. */
function dockerignoreExcludes(ignoreFile: string, path: string): boolean {
  const rules = ignoreFile.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((line) => {
    const negate = line.startsWith('!');
    const pattern = posix.normalize((negate ? line.slice(1) : line).replace(/^\/+/, '')).replace(/\/+$/, '');
    const source = pattern.split(/(\*\*\/|\*\*|\*|\?)/).map((part) => {
      if (part === '**/') return '(?:.*/)?';
      if (part === '**') return '.*';
      if (part === '*') return '[^/]*';
      if (part === '?') return '[^/]';
      return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }).join('');
    return { negate, regex: new RegExp(`^${source}$`) };
  });
  const segments = path.split('/');
  const prefixes = segments.map((_s, i) => segments.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of rules) {
    if (prefixes.some((p) => rule.regex.test(p))) excluded = !rule.negate;
  }
  return excluded;
}

// ---- What the Dockerfile says ----

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
const runtime = dockerfile.stages.at(-1)!;
const runtimeWorkdir = workdirOf(runtime);
const runtimeCopies = copiesOf(runtime);
const cmdInstruction = runtime.instructions.filter((i) => i.keyword === 'CMD').at(-1);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };

/** Where one runtime COPY source lands, relative to the runtime WORKDIR. */
function destinations(copy: Copy): Array<{ source: string; target: string }> {
  const target = posix.relative(runtimeWorkdir, posix.resolve(runtimeWorkdir, copy.dest));
  return copy.sources.map((source) => {
    const base = copy.from === undefined ? source : posix.relative(workdirOf(stageNamed(copy.from)), posix.resolve(workdirOf(stageNamed(copy.from)), source));
    return { source: posix.normalize(base).replace(/\/+$/, ''), target: copy.dest.endsWith('/') ? posix.join(target, posix.basename(base)) : target };
  });
}

function stageNamed(name: string): Stage {
  const stage = dockerfile.stages.find((s) => s.name === name);
  assert.ok(stage, `COPY --from=${name}: no stage of that name`);
  return stage;
}

const laidOut = runtimeCopies.flatMap((c) => destinations(c).map((d) => ({ ...d, fromBuild: c.from !== undefined })));

describe('Dockerfile', () => {
  test('two stages: a Node 24 build stage, then a Node 24 runtime stage', () => {
    assert.ok(dockerfile.stages.length >= 2, 'multi-stage');
    const build = dockerfile.stages[0]!;
    assert.match(build.image, /^node:24\b/);
    assert.match(runtime.image, /(^gcr\.io\/distroless\/nodejs24-debian\d+:nonroot$)|(^node:24[-.\w]*slim$)/);
    const runs = build.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs, /npm ci\b/);
    assert.match(runs, /npm run build\b/);
    assert.match(runs, /npm prune --omit=dev\b/);
  });

  test('NODE_ENV=production at run time only', () => {
    assert.equal(envOf(runtime.instructions).get('NODE_ENV'), 'production');
    for (const stage of dockerfile.stages.slice(0, -1)) assert.equal(envOf(stage.instructions).has('NODE_ENV'), false, `stage ${stage.name ?? stage.image}`);
    assert.equal(dockerfile.globalArgs.has('NODE_ENV'), false);
  });

  test('a numeric non-root user, both ports exposed, node run directly in exec form, the proxy left on loopback', () => {
    const user = runtime.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args.trim() ?? '';
    assert.match(user, /^\d+(:\d+)?$/, 'numeric, so runAsNonRoot can be checked');
    assert.notEqual(Number(user.split(':')[0]), 0);
    const exposed = runtime.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''));
    assert.ok(exposed.includes('8080') && exposed.includes('9090'), `EXPOSE ${exposed.join(' ')}`);
    assert.ok(cmdInstruction, 'a CMD');
    const cmd = JSON.parse(cmdInstruction.args) as string[];
    assert.ok(Array.isArray(cmd), 'exec form');
    assert.equal(cmd[0], 'dist/cli.js', 'the distroless ENTRYPOINT is node; the CMD is the script');
    assert.ok(!cmd.some((w) => /\bnpm\b/.test(w)));
    assert.notEqual(envOf(runtime.instructions).get('LISTEN_HOST') ?? '127.0.0.1', '0.0.0.0');
    assert.equal(envOf(runtime.instructions).has('LOGICNETS_PRIVATE_KEY'), false);
  });

  test('the runtime stage copies the build output, production modules, config, package.json and the license, and no source', () => {
    const targets = laidOut.map((d) => d.target).sort();
    assert.deepEqual(targets, ['LICENSE', 'config', 'dist', 'node_modules', 'package.json']);
    assert.ok(existsSync(join(ROOT, 'LICENSE')));
    assert.ok(existsSync(join(ROOT, 'config')));
  });

  test('.dockerignore lets in what the Dockerfile copies from the context and keeps secrets and clutter out', () => {
    const fromContext = dockerfile.stages.flatMap((s) => copiesOf(s)).filter((c) => c.from === undefined).flatMap((c) => c.sources);
    assert.ok(fromContext.length > 0);
    for (const source of fromContext) {
      const path = posix.normalize(source).replace(/^\.\/|\/+$/g, '');
      assert.equal(dockerignoreExcludes(dockerignore, path), false, `${path} is copied but .dockerignore leaves it out`);
      assert.equal(dockerignoreExcludes(dockerignore, `${path}/x.ts`), false);
    }
    for (const path of ['.env', 'config/.env', 'server-user.pem', 'config/private-key.pem', 'node_modules/jose/package.json', '.git/config', 'test/helpers/tls.ts', 'dist/cli.js', 'helm/README.md']) {
      assert.equal(dockerignoreExcludes(dockerignore, path), true, `${path} must stay out of the build context`);
    }
  });
});

// ---- The image's tree, laid out and run ----

/** Every file below `dir` with its size and modification time, to see whether anything wrote there. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else out.push(`${path} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out.sort();
}

/** Runs a command to completion, bounded. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 60_000) {
  return spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout });
}

async function poll(what: string, limitMs: number, attempt: () => Promise<boolean> | boolean): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  for (;;) {
    if (await Promise.resolve().then(attempt).catch(() => false)) return;
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the runtime tree, with production dependencies only', () => {
  const work = mkdtempSync(join(tmpdir(), 'ltp-image-'));
  const app = join(work, 'app');
  /** The environment of the image: nothing from the test runner's (no NODE_OPTIONS with tsx, no NODE_PATH). */
  const imageEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    HOME: join(work, 'home'),
    TMPDIR: join(work, 'tmp'),
  };
  const script = cmdInstruction ? (JSON.parse(cmdInstruction.args) as string[])[0]! : 'dist/cli.js';
  let demo: ChildProcess | undefined;

  before(() => {
    mkdirSync(app);
    mkdirSync(imageEnv.HOME!);
    mkdirSync(imageEnv.TMPDIR!);
    const needsInstall = laidOut.some((d) => d.target === 'node_modules');
    for (const { source, target, fromBuild } of laidOut) {
      if (fromBuild && source === 'dist') {
        // The build stage's `npm run build`, into the tree instead of the repository.
        const tsc = run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(app, target)], ROOT, process.env, 120_000);
        assert.equal(tsc.status, 0, `the build fails, so the image build would too:\n${tsc.stdout}${tsc.stderr}`);
      } else if (fromBuild && source === 'node_modules') {
        continue; // installed below, production dependencies only
      } else {
        cpSync(join(ROOT, source), join(app, target), { recursive: true });
      }
    }
    if (needsInstall) {
      const lockCopied = laidOut.some((d) => d.target === 'package-lock.json');
      if (!lockCopied) cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
      const npm = run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], app,
        { ...process.env, NODE_OPTIONS: '', NODE_ENV: 'production' }, 120_000);
      assert.equal(npm.status, 0, `npm ci --omit=dev failed:\n${npm.stdout}${npm.stderr}`);
      if (!lockCopied) rmSync(join(app, 'package-lock.json'));
    }
  });

  after(() => {
    if (demo && demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  test('the tree holds exactly what the runtime stage copies, and no dev-only package', () => {
    assert.deepEqual(readdirSync(app).sort(), laidOut.map((d) => d.target).sort());
    const devOnly = Object.entries(lock.packages).filter(([path, entry]) => entry.dev === true && path.startsWith('node_modules/')).map(([path]) => path);
    assert.ok(devOnly.length > 0);
    assert.deepEqual(devOnly.filter((path) => existsSync(join(app, path))), []);
    assert.ok(existsSync(join(app, script)), `${script} (the CMD) exists in the tree`);
  });

  test('a dev dependency cannot be loaded from the tree (so a run-time need for one fails below)', () => {
    const probe = run(process.execPath, ['--input-type=module', '-e',
      `for (const name of ${JSON.stringify(Object.keys(pkg.devDependencies).filter((n) => !n.startsWith('@types/')))}) {
         try { await import(name); console.log('loaded ' + name); } catch { /* not there, as it should be */ }
       }`], app, imageEnv);
    assert.equal(probe.status, 0, probe.stderr);
    assert.equal(probe.stdout.trim(), '', 'dev dependencies resolvable from the runtime tree');
  });

  test('--help and --version run from the tree', () => {
    const help = run(process.execPath, [script, '--help'], app, imageEnv);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: logicnets-token-proxy/);
    assert.match(help.stdout, /LOGICNETS_URL/);
    const version = run(process.execPath, [script, '--version'], app, imageEnv);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), pkg.version);
  });

  test('demo: a request through the sidecar reaches the emulator (200), SIGTERM stops it, the tree is unchanged', async () => {
    const before_ = snapshot(app);
    let output = '';
    const child = spawn(process.execPath, [script, 'demo'], {
      cwd: app,
      env: { ...imageEnv, LISTEN_PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo = child;
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));

    // The demo prints "Sidecar: proxy http://127.0.0.1:<port>, admin http://127.0.0.1:<port>" once both listen.
    const sidecarLine = /Sidecar: proxy (http:\/\/127\.0\.0\.1:\d+), admin (http:\/\/127\.0\.0\.1:\d+)/;
    await poll('the demo to print its proxy and admin addresses', 20_000, () => {
      if (child.exitCode !== null) throw new Error(`demo exited early (${child.exitCode}):\n${output}`);
      return sidecarLine.test(output);
    }).catch((error: Error) => assert.fail(`${error.message}\noutput so far:\n${output}`));
    const [, proxy, admin] = sidecarLine.exec(output)!;

    await poll('/readyz to answer 200', 10_000, async () => (await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200);
    const response = await fetch(`${proxy}/logicnets/WebAPIExample/function_1`, { signal: AbortSignal.timeout(10_000) });
    const body = await response.text();
    assert.equal(response.status, 200, `gateway request through the sidecar: ${body}\n${output}`);

    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000).unref())]);
    assert.equal(code, 0, `the demo exits 0 on SIGTERM (got ${String(code)}):\n${output}`);
    assert.deepEqual(snapshot(app), before_, 'something wrote into the image tree (the root file system is read-only in the pod)');
  });
});
