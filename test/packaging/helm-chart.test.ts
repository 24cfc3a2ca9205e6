/**
 * The Helm charts under helm/, checked without a helm binary (there is none in CI): what `helm lint`
 * would catch, and more. Values are merged the way Helm merges them (chart defaults, the library's
 * defaults under its alias, user values) and validated with ajv (draft-07, as Helm does) against
 * each chart's values.schema.json; every `.Values.x` a template reads must exist in values.yaml;
 * every `include` must name a defined template; Chart.yaml must hold together; the environment
 * variables the sidecar template sets must be real settings of the sidecar.
 *
 * When a helm binary is available (HELM_BIN, or `helm` on PATH), the last suite also lints and
 * renders the example chart with each ci/*.yaml file and checks the manifests; without one it is
 * skipped and says so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { loadConfig, settingsDoc } from '../../src/config/load.js';
import { makeTestPki } from '../helpers/tls.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HELM_DIR = join(ROOT, 'helm');
const LIBRARY = 'logicnets-token-proxy';
const EXAMPLE = 'example-legacy-app';

type Values = Record<string, unknown>;

interface Dependency {
  name: string;
  version: string;
  repository: string;
  alias?: string;
}

interface ChartMeta {
  apiVersion: string;
  name: string;
  version: string;
  appVersion?: string;
  type?: string;
  dependencies?: Dependency[];
}

interface Chart {
  dir: string;
  meta: ChartMeta;
  values: Values;
  validate: ValidateFunction;
  templates: Map<string, string>;
}

function isTable(value: unknown): value is Values {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readYamlFile(path: string): unknown {
  return parseYaml(readFileSync(path, 'utf8'));
}

const ajv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true });

function loadChart(name: string): Chart {
  const dir = join(HELM_DIR, name);
  const templatesDir = join(dir, 'templates');
  const templates = new Map<string, string>();
  for (const file of readdirSync(templatesDir).sort()) {
    if (statSync(join(templatesDir, file)).isFile()) templates.set(file, readFileSync(join(templatesDir, file), 'utf8'));
  }
  const schema = JSON.parse(readFileSync(join(dir, 'values.schema.json'), 'utf8')) as object;
  return {
    dir,
    meta: readYamlFile(join(dir, 'Chart.yaml')) as ChartMeta,
    values: (readYamlFile(join(dir, 'values.yaml')) ?? {}) as Values,
    validate: ajv.compile(schema),
    templates,
  };
}

const library = loadChart(LIBRARY);
const example = loadChart(EXAMPLE);
const libraryDependency = example.meta.dependencies?.find((d) => d.name === LIBRARY);
const alias = libraryDependency?.alias ?? LIBRARY;

// ---- Helm's value merging (pkg/chartutil/coalesce.go and the -f file merge), in miniature ----

/** Merges user values files as `helm -f a -f b` does: later files win, tables merge. */
function mergeUserValues(...files: Values[]): Values {
  const out: Values = {};
  const merge = (dst: Values, src: Values) => {
    for (const [key, value] of Object.entries(src)) {
      const current = dst[key];
      if (isTable(value) && isTable(current)) merge(current, value);
      else dst[key] = structuredClone(value);
    }
  };
  for (const file of files) merge(out, file);
  return out;
}

/** Fills `dst` with `defaults` where it has no value; a null in `dst` removes the default. */
function coalesceTables(dst: Values, defaults: Values): Values {
  for (const [key, value] of Object.entries(defaults)) {
    if (!(key in dst)) dst[key] = structuredClone(value);
    else if (dst[key] === null) delete dst[key];
    else if (isTable(value) && isTable(dst[key])) coalesceTables(dst[key] as Values, value);
  }
  return dst;
}

/** The values the example chart's templates see, from user values: chart defaults, then the library's under its alias. */
function exampleValues(...userFiles: Values[]): Values {
  const values = coalesceTables(mergeUserValues(...userFiles), example.values);
  const sub = isTable(values[alias]) ? values[alias] as Values : {};
  sub.global = { ...(isTable(values.global) ? values.global : {}) };
  values[alias] = coalesceTables(sub, library.values);
  return values;
}

/** Validates as Helm does: the chart's schema on everything, the library's on its part. */
function validateExample(values: Values): ErrorObject[] {
  const errors: ErrorObject[] = [];
  if (!example.validate(values)) errors.push(...(example.validate.errors ?? []));
  if (!library.validate(values[alias])) {
    errors.push(...(library.validate.errors ?? []).map((e) => ({ ...e, instancePath: `/${alias}${e.instancePath}` })));
  }
  return errors;
}

function describeErrors(errors: ErrorObject[]): string {
  return errors.map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ');
}

const ciDir = join(example.dir, 'ci');
const ciFiles = readdirSync(ciDir).filter((f) => f.endsWith('.yaml')).sort();
const minimal = readYamlFile(join(ciDir, 'minimal-values.yaml')) as Values;

// ---- Template scanning ----

/** The actions (`{{ ... }}`) of a template, without comments and string literals. */
function actions(template: string): string[] {
  const found: string[] = [];
  for (const match of template.matchAll(/\{\{([\s\S]*?)\}\}/g)) {
    const body = match[1]!.replace(/^-?\s*/, '');
    if (body.startsWith('/*')) continue;
    found.push(body.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/`[^`]*`/g, '``'));
  }
  return found;
}

/** Every `.Values` path a template reads, also through a variable (`$v := .Values.a` then `$v.b`). */
function valueReferences(template: string): string[][] {
  const refs: string[][] = [];
  const variables = new Map<string, string[]>();
  for (const action of actions(template)) {
    for (const m of action.matchAll(/\$([A-Za-z_]\w*)\s*:?=\s*\$?\.Values((?:\.[A-Za-z_]\w*)*)\s*$/g)) {
      variables.set(m[1]!, m[2]!.split('.').filter(Boolean));
    }
    for (const m of action.matchAll(/\$?\.Values((?:\.[A-Za-z_]\w*)+)/g)) refs.push(m[1]!.split('.').filter(Boolean));
    for (const m of action.matchAll(/\$([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)/g)) {
      const base = variables.get(m[1]!);
      if (base) refs.push([...base, ...m[2]!.split('.').filter(Boolean)]);
    }
  }
  return refs;
}

/** True when `path` names a key that exists in `values` (its value may be empty or null). */
function pathExists(values: Values, path: string[]): boolean {
  let node: unknown = values;
  for (const key of path) {
    if (!isTable(node) || !(key in node)) return false;
    node = node[key];
  }
  return true;
}

/** Paths of the leaves of `values` (scalars, lists and empty tables). */
function leaves(values: Values, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [key, value] of Object.entries(values)) {
    if (isTable(value) && Object.keys(value).length > 0) out.push(...leaves(value, [...prefix, key]));
    else out.push([...prefix, key]);
  }
  return out;
}

function defines(chart: Chart): Set<string> {
  const names = new Set<string>();
  for (const text of chart.templates.values()) {
    for (const m of text.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)) names.add(m[1]!);
  }
  return names;
}

function includes(chart: Chart): Map<string, string> {
  const used = new Map<string, string>();
  for (const [file, text] of chart.templates) {
    for (const m of text.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)) used.set(m[1]!, file);
  }
  return used;
}

function allRefs(chart: Chart): Array<{ file: string; path: string[] }> {
  return [...chart.templates].flatMap(([file, text]) => valueReferences(text).map((path) => ({ file, path })));
}

// ---- The tests ----

describe('Chart.yaml files', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

  test('every chart under helm/ is one of the two known charts and has its files', () => {
    const charts = readdirSync(HELM_DIR).filter((d) => existsSync(join(HELM_DIR, d, 'Chart.yaml'))).sort();
    assert.deepEqual(charts, [EXAMPLE, LIBRARY].sort());
    for (const chart of [library, example]) {
      for (const file of ['values.yaml', 'values.schema.json']) assert.ok(existsSync(join(chart.dir, file)), `${chart.dir}/${file}`);
      assert.equal(chart.meta.apiVersion, 'v2', `${chart.meta.name}: apiVersion v2 (Helm 3 and later)`);
      assert.match(chart.meta.version, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/, `${chart.meta.name}: version is SemVer 2`);
      assert.equal(typeof chart.meta.appVersion, 'string', `${chart.meta.name}: appVersion is quoted`);
    }
    assert.equal(example.meta.name, EXAMPLE);
    assert.equal(library.meta.name, LIBRARY);
  });

  test('the library chart is a library, versioned with the app, and its default image tag is that version', () => {
    assert.equal(library.meta.type, 'library');
    assert.equal(library.meta.appVersion, pkg.version);
    assert.equal((library.values.image as Values).tag, pkg.version);
    const rendered = [...library.templates.keys()].filter((f) => !f.startsWith('_'));
    assert.deepEqual(rendered, [], 'a library chart holds only named templates (files starting with _)');
  });

  test('the example chart depends on the local library, at its version, under the alias its templates read', () => {
    assert.equal(example.meta.type, 'application');
    assert.ok(libraryDependency, `${EXAMPLE} lists ${LIBRARY} as a dependency`);
    assert.equal(libraryDependency.repository, `file://../${LIBRARY}`);
    assert.equal(resolve(example.dir, libraryDependency.repository.slice('file://'.length)), library.dir);
    assert.equal(libraryDependency.version, library.meta.version);
    const roots = new Set(allRefs(library).map((r) => r.path[0]));
    assert.deepEqual([...roots], [alias], 'the library templates read .Values.<alias> only');
  });
});

describe('values against values.schema.json (draft-07, as helm checks them)', () => {
  test('the library values.yaml passes the library schema', () => {
    const values = { ...structuredClone(library.values), global: {} };
    assert.ok(library.validate(values), describeErrors(library.validate.errors ?? []));
  });

  for (const file of ciFiles) {
    test(`example values.yaml with ci/${file} passes both schemas`, () => {
      const errors = validateExample(exampleValues(readYamlFile(join(ciDir, file)) as Values));
      assert.deepEqual(errors, [], describeErrors(errors));
    });
  }

  test('example values.yaml alone fails on exactly the three required values', () => {
    const paths = validateExample(exampleValues()).map((e) => e.instancePath).filter((p) => p.split('/').length > 3).sort();
    assert.deepEqual([...new Set(paths)], [
      `/${alias}/privateKey/secretName`, `/${alias}/upstream/clientId`, `/${alias}/upstream/url`,
    ]);
  });

  test('the minimal values without a client id fail, naming it', () => {
    const values = structuredClone(minimal);
    delete ((values[alias] as Values).upstream as Values).clientId;
    const errors = validateExample(exampleValues(values));
    assert.ok(errors.some((e) => e.instancePath === `/${alias}/upstream/clientId`), describeErrors(errors));
  });

  test('an upstream URL without the company path fails (gateway mode needs it)', () => {
    const errors = validateExample(exampleValues(minimal, { [alias]: { upstream: { url: 'https://lua5.logicnets.local' } } }));
    assert.ok(errors.some((e) => e.instancePath === `/${alias}/upstream/url`), describeErrors(errors));
  });

  test('a misspelt setting fails instead of being ignored', () => {
    const errors = validateExample(exampleValues(minimal, { [alias]: { upstream: { clientID: 'x' } } }));
    assert.ok(errors.some((e) => e.instancePath === `/${alias}/upstream` && e.keyword === 'additionalProperties'), describeErrors(errors));
    const appErrors = validateExample(exampleValues(minimal, { mdoe: 'forward' }));
    assert.ok(appErrors.some((e) => e.keyword === 'additionalProperties'), describeErrors(appErrors));
  });
});

describe('security guards in the schema', () => {
  const rejects = (overrides: Values, path: string) => {
    const errors = validateExample(exampleValues(minimal, { [alias]: overrides }));
    assert.ok(errors.some((e) => e.instancePath.startsWith(`/${alias}${path}`)), `expected an error at ${path}: ${describeErrors(errors)}`);
  };

  test('an inline private key in the config file (a ConfigMap) is refused', () => {
    rejects({ config: { privateKey: '-----BEGIN PRIVATE KEY-----' } }, '/config/privateKey');
    rejects({ config: { upstreams: [{ url: 'https://a.example/c', clientId: 'x', privateKey: 'k' }] } }, '/config/upstreams/0');
  });

  test('the key cannot be passed as an environment variable', () => {
    rejects({ extraEnv: [{ name: 'LOGICNETS_PRIVATE_KEY', value: 'k' }] }, '/extraEnv/0/name');
  });

  test('the restricted security context cannot be weakened', () => {
    rejects({ securityContext: { readOnlyRootFilesystem: false } }, '/securityContext/readOnlyRootFilesystem');
    rejects({ securityContext: { allowPrivilegeEscalation: true } }, '/securityContext/allowPrivilegeEscalation');
    rejects({ securityContext: { runAsNonRoot: false } }, '/securityContext/runAsNonRoot');
    rejects({ securityContext: { capabilities: { drop: ['NET_RAW'] } } }, '/securityContext/capabilities/drop');
  });

  test('the proxy address and port cannot be moved through the config file', () => {
    rejects({ config: { listenHost: '0.0.0.0' } }, '/config/listenHost');
    rejects({ config: { listenPort: 80 } }, '/config/listenPort');
  });
});

describe('templates against values.yaml (what helm would fail or silently render empty)', () => {
  test('every .Values path a library template reads exists in the library values.yaml', () => {
    const missing = allRefs(library).filter((r) => !pathExists(library.values, r.path.slice(1))).map((r) => `${r.file}: .Values.${r.path.join('.')}`);
    assert.deepEqual(missing, []);
  });

  test('every .Values path an example template reads exists in the merged values.yaml', () => {
    const values = exampleValues();
    const missing = allRefs(example).filter((r) => !pathExists(values, r.path)).map((r) => `${r.file}: .Values.${r.path.join('.')}`);
    assert.deepEqual(missing, []);
  });

  test('every value in values.yaml is read by some template', () => {
    const libraryRefs = allRefs(library).map((r) => r.path.slice(1).join('.'));
    const unusedLibrary = leaves(library.values).map((p) => p.join('.'))
      .filter((leaf) => !libraryRefs.some((ref) => leaf === ref || leaf.startsWith(`${ref}.`)));
    assert.deepEqual(unusedLibrary, [], 'library values no template reads');
    const exampleRefs = [...allRefs(example).map((r) => r.path.join('.')), ...libraryRefs.map((r) => `${alias}.${r}`)];
    const unusedExample = leaves(example.values).map((p) => p.join('.'))
      .filter((leaf) => !exampleRefs.some((ref) => leaf === ref || leaf.startsWith(`${ref}.`)));
    assert.deepEqual(unusedExample, [], 'example values no template reads');
  });

  test('every include names a defined template, and every library template is used', () => {
    const known = new Set([...defines(library), ...defines(example)]);
    const used = new Map([...includes(library), ...includes(example)]);
    const undefinedNames = [...used].filter(([name]) => !known.has(name)).map(([name, file]) => `${file}: ${name}`);
    assert.deepEqual(undefinedNames, []);
    assert.deepEqual([...defines(library)].filter((n) => !n.startsWith(`${LIBRARY}.`)), [], 'library templates are namespaced');
    assert.deepEqual([...defines(example)].filter((n) => !n.startsWith(`${EXAMPLE}.`)), [], 'example templates are namespaced');
    assert.deepEqual([...defines(library)].filter((n) => !used.has(n)), [], 'library templates nothing uses');
  });

  test('the sidecar environment names real settings, never the inline key, and keeps the proxy on loopback', () => {
    const container = library.templates.get('_container.tpl') ?? '';
    const names = [...container.matchAll(/^\s*- name: ([A-Z][A-Z0-9_]*)\s*$/gm)].map((m) => m[1]!);
    const known = new Set(settingsDoc().map((s) => s.env));
    assert.ok(names.length >= 10, `found env names: ${names.join(', ')}`);
    assert.deepEqual(names.filter((n) => !known.has(n)), [], 'env names the sidecar does not know');
    assert.ok(!names.includes('LOGICNETS_PRIVATE_KEY'));
    assert.match(container, /- name: LISTEN_HOST\s+value: "127\.0\.0\.1"/);
    assert.match(container, /- name: LOGICNETS_PRIVATE_KEY_FILE\n/);
  });

  test('the chart defaults agree with the sidecar defaults', () => {
    const defaults = new Map(settingsDoc().map((s) => [s.env, s.default.replace(/`/g, '')]));
    const v = library.values as { ports: { proxy: number; admin: number }; logLevel: string; upstreamTimeout: number; shutdownTimeout: number };
    assert.equal(String(v.ports.proxy), defaults.get('LISTEN_PORT'));
    assert.equal(String(v.ports.admin), defaults.get('ADMIN_PORT'));
    assert.equal(v.logLevel, defaults.get('LOG_LEVEL'));
    assert.equal(String(v.upstreamTimeout), defaults.get('UPSTREAM_TIMEOUT'));
    assert.equal(String(v.shutdownTimeout), defaults.get('SHUTDOWN_TIMEOUT'));
  });

  test('the key volume is the Secret, read-only, mode 0400, mounted whole (no subPath)', () => {
    const volumes = library.templates.get('_volumes.tpl') ?? '';
    assert.match(volumes, /secret:\s+secretName: \{\{ \.Values\.tokenProxy\.privateKey\.secretName \| quote \}\}\s+defaultMode: 256\n/);
    assert.match(volumes, /- name: logicnets-token-proxy-key\n\s+mountPath: [^\n]+\n\s+readOnly: true/);
    assert.match(volumes, /emptyDir:/);
    assert.doesNotMatch(volumes, /subPath:/);
  });
});

/** A helm binary to render with, if this machine has one: HELM_BIN, or `helm` on PATH. */
function findHelm(): string | undefined {
  if (process.env.HELM_BIN) return process.env.HELM_BIN;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'helm'))) return join(dir, 'helm');
  }
  return undefined;
}

interface Manifest {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec: Values;
}

interface Container {
  name: string;
  restartPolicy?: string;
  env?: Array<{ name: string; value?: string }>;
  args?: string[];
  startupProbe?: { httpGet: { path: string; port: number } };
  livenessProbe?: { httpGet: { path: string; port: number } };
  readinessProbe?: { httpGet: { path: string; port: number } };
  securityContext?: Values;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
}

interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  securityContext: Values;
  volumes: Array<{ name: string; secret?: { secretName: string; defaultMode: number } }>;
  terminationGracePeriodSeconds: number;
}

const helm = findHelm();

describe('rendered with a real helm binary (optional)', { skip: helm ? false : 'no helm binary (set HELM_BIN or put helm on PATH); the schema and template checks above stand in for helm lint' }, () => {
  const work = mkdtempSync(join(tmpdir(), 'ltp-helm-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const chartDir = join(work, EXAMPLE);

  const run = (args: string[]) => spawnSync(helm!, args, { cwd: chartDir, encoding: 'utf8', timeout: 60_000 });
  const render = (...valueFiles: string[]): Manifest[] => {
    const result = run(['template', 'demo', '.', ...valueFiles.flatMap((f) => ['-f', f])]);
    assert.equal(result.status, 0, result.stderr);
    return parseAllDocuments(result.stdout).map((d) => d.toJS() as Manifest).filter(Boolean);
  };
  const podOf = (manifests: Manifest[], kind: string): PodSpec =>
    ((manifests.find((m) => m.kind === kind)?.spec.template as Values).spec) as PodSpec;
  const envOf = (c: Container) => new Map((c.env ?? []).map((e) => [e.name, e.value]));

  before(() => {
    cpSync(HELM_DIR, work, { recursive: true });
    const dep = run(['dependency', 'update', '--skip-refresh', '.']);
    assert.equal(dep.status, 0, dep.stderr);
  });

  test('helm lint --strict passes for the library and for the example with every ci file', () => {
    const libraryLint = run(['lint', '--strict', join(work, LIBRARY)]);
    assert.equal(libraryLint.status, 0, `${libraryLint.stdout}${libraryLint.stderr}`);
    for (const file of ciFiles) {
      const lint = run(['lint', '--strict', '.', '-f', join('ci', file)]);
      assert.equal(lint.status, 0, `${file}: ${lint.stdout}${lint.stderr}`);
    }
  });

  test('minimal values: a native sidecar with probes, the key file from the Secret, restricted, on loopback', () => {
    const manifests = render('ci/minimal-values.yaml');
    const pod = podOf(manifests, 'Deployment');
    const sidecar = pod.initContainers?.[0];
    assert.ok(sidecar, 'the sidecar is the first init container');
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.startupProbe?.httpGet.path, '/livez');
    assert.equal(sidecar.livenessProbe?.httpGet.path, '/livez');
    assert.equal(sidecar.readinessProbe?.httpGet.path, '/readyz');
    assert.equal(sidecar.readinessProbe?.httpGet.port, 9090);
    assert.deepEqual(pod.containers.map((c) => c.name), ['app']);
    const env = envOf(sidecar);
    assert.equal(env.get('LISTEN_HOST'), '127.0.0.1');
    assert.equal(env.get('LOGICNETS_PRIVATE_KEY_FILE'), '/var/run/secrets/logicnets-token-proxy/private-key.pem');
    assert.equal(env.has('LOGICNETS_PRIVATE_KEY'), false);
    assert.equal(env.has('SHUTDOWN_DELAY'), false);
    assert.deepEqual(pod.volumes.find((v) => v.secret)?.secret, { secretName: 'logicnets-client-key', defaultMode: 256 });
    assert.ok(sidecar.volumeMounts?.some((m) => m.mountPath === '/tmp'));
    assert.ok(sidecar.volumeMounts?.every((m) => m.subPath === undefined));
    assert.equal(pod.securityContext.fsGroup, 65532);
    assert.deepEqual(sidecar.securityContext, {
      allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true,
      runAsGroup: 65532, runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.equal(envOf(pod.containers[0]!).get('API_URL'), 'http://127.0.0.1:8080/logicnets/WebAPIExample/function_1');
    assert.equal(manifests.some((m) => m.kind === 'ConfigMap'), false, 'no config, no ConfigMap');
  });

  test('forward mode with a plain sidecar: drain delay, proxy variables, the Job stops the sidecar, config checksum', () => {
    const manifests = render('ci/forward-legacy-job-values.yaml');
    const pod = podOf(manifests, 'Deployment');
    assert.equal(pod.initContainers, undefined);
    const sidecar = pod.containers.find((c) => c.name === 'logicnets-token-proxy');
    assert.ok(sidecar);
    assert.equal(sidecar.restartPolicy, undefined);
    assert.ok(Number(envOf(sidecar).get('SHUTDOWN_DELAY')) > 0);
    assert.ok(pod.terminationGracePeriodSeconds > Number(envOf(sidecar).get('SHUTDOWN_DELAY')) + Number(envOf(sidecar).get('SHUTDOWN_TIMEOUT')));
    const app = envOf(pod.containers.find((c) => c.name === 'app')!);
    assert.equal(app.get('API_URL'), 'http://lua5.logicnets.local/logicnets/WebAPIExample/function_1');
    assert.equal(app.get('http_proxy'), 'http://127.0.0.1:8080');
    assert.equal(app.get('HTTP_PROXY'), 'http://127.0.0.1:8080');
    assert.match(app.get('NO_PROXY') ?? '', /(^|,)\.svc(,|$)/);
    assert.match(app.get('NO_PROXY') ?? '', /(^|,)\.cluster\.local(,|$)/);
    const job = podOf(manifests, 'Job');
    assert.match(job.containers.find((c) => c.name === 'app')?.args?.[0] ?? '', /-X POST "\$SIDECAR_ADMIN_URL\/shutdown"/);
    const configMap = manifests.find((m) => m.kind === 'ConfigMap');
    assert.ok(configMap?.data?.['config.yaml']);
    const checksum = createHash('sha256').update(configMap.data['config.yaml'].replace(/\n$/, '')).digest('hex');
    const deployment = manifests.find((m) => m.kind === 'Deployment')!;
    assert.equal(((deployment.spec.template as Values).metadata as Manifest['metadata']).annotations?.['checksum/logicnets-token-proxy-config'], checksum);
  });

  test('the rendered sidecar environment and config file load through the real config loader', () => {
    const pki = makeTestPki();
    after(() => pki.cleanup());
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    for (const file of ciFiles) {
      const manifests = render(join('ci', file));
      const pod = podOf(manifests, 'Deployment');
      const sidecar = [...(pod.initContainers ?? []), ...pod.containers].find((c) => c.name === 'logicnets-token-proxy');
      assert.ok(sidecar);
      const env: Record<string, string> = Object.fromEntries((sidecar.env ?? []).map((e) => [e.name, e.value ?? '']));
      // What the pod mounts, made here: the key from the Secret, the CA and the config file from ConfigMaps.
      const files = mkdtempSync(join(work, 'mounts-'));
      const mounted = (variable: string, content: string) => {
        if (env[variable] === undefined) return;
        env[variable] = join(files, basename(env[variable]));
        writeFileSync(env[variable], content, { mode: 0o400 });
      };
      mounted('LOGICNETS_PRIVATE_KEY_FILE', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      mounted('LOGICNETS_CA_FILE', pki.caCertPem);
      mounted('CONFIG_FILE', manifests.find((m) => m.kind === 'ConfigMap')?.data?.['config.yaml'] ?? '');
      const config = loadConfig({ env });
      assert.equal(config.listenHost, '127.0.0.1', file);
      assert.equal(config.listenPort, 8080, file);
      assert.equal(config.adminPort, 9090, file);
      assert.deepEqual(config.upstreams.map((u) => u.url), ['https://lua5.logicnets.local/logicnets'], file);
      assert.equal(config.upstreams[0]!.privateKeyFile, env.LOGICNETS_PRIVATE_KEY_FILE, file);
      assert.equal(config.shutdownDelay > 0, sidecar.restartPolicy !== 'Always', `${file}: a drain delay exactly for a plain sidecar`);
    }
  });

  test('another chart using the library with several upstreams in a config file: it loads through the real config loader', () => {
    // A minimal consumer chart; the mount paths point into this test's folder, so the files it names exist.
    const consumer = join(work, 'consumer');
    const keys = join(work, 'consumer-keys');
    const ca = join(work, 'consumer-ca');
    const conf = join(work, 'consumer-config');
    for (const dir of [join(consumer, 'templates'), keys, ca, conf]) mkdirSync(dir, { recursive: true });
    writeFileSync(join(consumer, 'Chart.yaml'), stringifyYaml({
      apiVersion: 'v2', name: 'consumer', version: '0.0.1',
      dependencies: [{ name: LIBRARY, version: library.meta.version, repository: `file://${library.dir}`, alias }],
    }));
    writeFileSync(join(consumer, 'values.yaml'), stringifyYaml({ [alias]: {
      privateKey: { secretName: 'keys', mountPath: keys },
      ca: { configMapName: 'company-ca', mountPath: ca },
      configMountPath: conf,
      config: { retryBodyLimit: 4096, upstreams: [
        { url: 'https://lua5.logicnets.local/logicnets', clientId: 'one' },
        { url: 'https://lua5.logicnets.local/other', clientId: 'two', privateKeyFile: join(keys, 'other.pem') },
      ] },
    } }));
    writeFileSync(join(consumer, 'templates', 'pod.yaml'), [
      '{{ include "logicnets-token-proxy.configmap" . }}',
      '---',
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      '  name: consumer',
      'spec:',
      '  containers:',
      '    {{- include "logicnets-token-proxy.container" . | nindent 4 }}',
      '  volumes:',
      '    {{- include "logicnets-token-proxy.volumes" . | nindent 4 }}',
      '',
    ].join('\n'));
    const dep = spawnSync(helm!, ['dependency', 'update', '--skip-refresh', '.'], { cwd: consumer, encoding: 'utf8', timeout: 60_000 });
    assert.equal(dep.status, 0, dep.stderr);
    const rendered = spawnSync(helm!, ['template', 'r', '.'], { cwd: consumer, encoding: 'utf8', timeout: 60_000 });
    assert.equal(rendered.status, 0, rendered.stderr);
    const manifests = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as Manifest).filter(Boolean);
    const container = (manifests.find((m) => m.kind === 'Pod')!.spec as unknown as PodSpec).containers[0]!;
    const env: Record<string, string> = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
    assert.equal(env.LOGICNETS_URL, undefined, 'no single-upstream variables next to config upstreams');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    for (const name of ['private-key.pem', 'other.pem']) writeFileSync(join(keys, name), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const pki = makeTestPki();
    after(() => pki.cleanup());
    writeFileSync(join(ca, 'ca.crt'), pki.caCertPem);
    writeFileSync(env.CONFIG_FILE!, manifests.find((m) => m.kind === 'ConfigMap')!.data!['config.yaml']!);
    const config = loadConfig({ env });
    assert.deepEqual(config.upstreams.map((u) => [u.privateKeyFile, u.caFile]), [
      [join(keys, 'private-key.pem'), join(ca, 'ca.crt')],
      [join(keys, 'other.pem'), join(ca, 'ca.crt')],
    ]);
    assert.equal(config.retryBodyLimit, 4096);
  });

  test('missing values and an old cluster fail the render with a sentence', () => {
    const missing = run(['template', 'demo', '.', '-f', 'ci/minimal-values.yaml', '--set', `${alias}.upstream.clientId=`]);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /clientId/);
    const old = run(['template', 'demo', '.', '-f', 'ci/minimal-values.yaml', '--kube-version', '1.27.0']);
    assert.notEqual(old.status, 0);
    assert.match(old.stderr, /nativeSidecar=false/);
  });
});
