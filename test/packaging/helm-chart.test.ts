/**
 * The Helm charts under helm/. First without helm: values are merged the way Helm merges them
 * (chart defaults, the library's defaults under its alias, user values) and validated with ajv
 * (draft-07, as Helm does) against each chart's values.schema.json, which must refuse every URL the
 * sidecar's own config loader refuses and every environment name the chart sets itself; every
 * `.Values.x` a template reads must exist in values.yaml; every `include` must name a defined
 * template; Chart.yaml must hold together.
 *
 * Then with real helm binaries (HELM_BIN and HELM4_BIN, which .ci/run installs: helm v3 and v4):
 * `helm lint --strict`, and `helm template` for native and plain sidecars, with and without the Job,
 * with and without the app's own init containers, as root and restricted; every rendered object is
 * parsed with unique keys enforced, validated against the Kubernetes schemas (kubernetes-models),
 * and the sidecar container is checked against the restricted Pod Security Standard. Under CI
 * (`CI` set) a missing helm fails; elsewhere the helm suites are skipped with a message.
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
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadConfig, settingsDoc } from '../../src/config/load.js';
import { parseManifests, restrictedViolations, schemaProblems } from '../helpers/kubernetes-manifests.js';
import type { ContainerSpec, Manifest } from '../helpers/kubernetes-manifests.js';
import { makeClientCertificate, makeTestPki } from '../helpers/tls.js';
import { seededRandom as seeded } from '../helpers/seeded-random.js';

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
    else if (isTable(value) && isTable(dst[key])) coalesceTables(dst[key], value);
  }
  return dst;
}

/** The values the example chart's templates see, from user values: chart defaults, then the library's under its alias. */
function exampleValues(...userFiles: Values[]): Values {
  const values = coalesceTables(mergeUserValues(...userFiles), example.values);
  const sub = isTable(values[alias]) ? values[alias] : {};
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
    for (const m of action.matchAll(/\$([A-Za-z_]\w*)\s*:?=\s*(?:\$[A-Za-z_]\w*)?\$?\.Values((?:\.[A-Za-z_]\w*)*)\s*$/g)) {
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

  test('the key volume is the Secret, read-only, readable by uid 65532 without an fsGroup, mounted whole (no subPath)', () => {
    const volumes = library.templates.get('_volumes.tpl') ?? '';
    assert.match(volumes, /secret:\s+secretName: \{\{ \.Values\.tokenProxy\.privateKey\.secretName \| quote \}\}\s+defaultMode: \{\{ \.Values\.tokenProxy\.privateKey\.defaultMode \}\}\n/);
    // Secret files are root:root without a pod-wide fsGroup, which the chart never sets: the sidecar reads through "other".
    assert.equal((library.values.privateKey as Values).defaultMode, 0o444);
    assert.match(volumes, /- name: logicnets-token-proxy-key\n\s+mountPath: [^\n]+\n\s+readOnly: true/);
    assert.match(volumes, /emptyDir:/);
    assert.doesNotMatch(volumes, /subPath:/);
  });
});


// ---- What the sidecar would refuse, the schema refuses (checked with ajv for a whole class) ----

/** Names of the environment variables the library's container template sets itself (not extraEnv). */
function chartEnvNames(): string[] {
  const text = library.templates.get('_container.tpl') ?? '';
  const start = text.indexOf('{{- define "logicnets-token-proxy.chartEnv" -}}');
  const body = text.slice(start, text.indexOf('{{- define', start + 1));
  return [...new Set([...body.matchAll(/^\s*- name: ([A-Z][A-Z0-9_]*)\s*$/gm)].map((m) => m[1]!))];
}


const URL_SCHEMES = ['https', 'http', 'HTTPS', 'Http', 'ftp', 'ws'];
const URL_HOSTS = [
  'lua5.logicnets.local', 'localhost', 'LOCALHOST', 'api.localhost', '127.0.0.1', '127.10.20.30', '[::1]',
  '10.0.0.1', '192.168.1.5', 'localhost.evil.example', '127.0.0.1.nip.io', 'evil-localhost', '[fe80::1]', '0.0.0.0',
];
const URL_TAILS = ['/logicnets', ':8443/logicnets', '/a/b', '/logicnets?x=1', '/logicnets#f'];
/** Every scheme x host x tail: the class of upstream URLs an operator might write. */
const upstreamUrls = URL_SCHEMES.flatMap((scheme) => URL_HOSTS.flatMap((host) => URL_TAILS.map((tail) => `${scheme}://${host}${tail}`)));

const keyDir = mkdtempSync(join(tmpdir(), 'ltp-helm-key-'));
after(() => rmSync(keyDir, { recursive: true, force: true }));
const placeholderKey = join(keyDir, 'private-key.pem');
writeFileSync(placeholderKey, 'placeholder\n');

/** Whether the sidecar's own config loader accepts `url` as LOGICNETS_URL (or as the token URL). */
function sidecarAccepts(variable: 'LOGICNETS_URL' | 'LOGICNETS_TOKEN_URL', url: string): boolean {
  const env: Record<string, string> = {
    LOGICNETS_URL: 'https://lua5.logicnets.local/logicnets', LOGICNETS_CLIENT_ID: 'x', LOGICNETS_PRIVATE_KEY_FILE: placeholderKey,
    [variable]: url,
  };
  try {
    loadConfig({ env });
    return true;
  } catch (error) {
    if (!String((error as Error).message).includes(variable)) throw error;
    return false;
  }
}

describe('the schema refuses what the sidecar refuses', () => {
  const libraryAccepts = (overrides: Values) => {
    const values = exampleValues(minimal, { [alias]: overrides });
    return library.validate(values[alias]);
  };

  test(`every upstream URL the sidecar refuses is refused as upstream.url, tokenUrl and config.upstreams[].url (${upstreamUrls.length} URLs)`, () => {
    const wrong: string[] = [];
    for (const url of upstreamUrls) {
      const checks: Array<[string, boolean, boolean]> = [
        ['upstream.url', sidecarAccepts('LOGICNETS_URL', url), libraryAccepts({ upstream: { url } })],
        ['upstream.tokenUrl', sidecarAccepts('LOGICNETS_TOKEN_URL', url), libraryAccepts({ upstream: { tokenUrl: url } })],
        ['config.upstreams[0].url', sidecarAccepts('LOGICNETS_URL', url), libraryAccepts({ upstream: { url: '', clientId: '' }, config: { upstreams: [{ url, clientId: 'x' }] } })],
      ];
      for (const [where, sidecar, schema] of checks) if (!sidecar && schema) wrong.push(`${where} = ${url}: the sidecar refuses it, the schema accepts it`);
    }
    assert.deepEqual(wrong, []);
    // And the schema is not simply refusing everything: the plain good forms pass.
    for (const url of ['https://lua5.logicnets.local/logicnets', 'https://lua5.logicnets.local:8443/logicnets', 'http://localhost:8000/logicnets', 'http://127.0.0.1/logicnets', 'http://[::1]:9000/c']) {
      assert.ok(libraryAccepts({ upstream: { url } }), url);
      assert.ok(sidecarAccepts('LOGICNETS_URL', url), url);
    }
  });

  test('every environment variable the chart sets itself is refused in extraEnv, as is the inline key', () => {
    const names = chartEnvNames();
    assert.ok(names.length >= 15, `found: ${names.join(', ')}`);
    for (const name of [...names, 'LOGICNETS_PRIVATE_KEY']) {
      assert.equal(libraryAccepts({ extraEnv: [{ name: 'LOGICNETS_TOKEN_TIMEOUT', value: '5' }, { name, value: 'x' }] }), false, name);
    }
    assert.ok(libraryAccepts({ extraEnv: [{ name: 'LOGICNETS_TOKEN_TIMEOUT', value: '5' }] }), 'a setting the chart does not set passes');
  });

  test('nothing renders a pod-level security context or an fsGroup', () => {
    assert.equal('podSecurityContext' in library.values, false);
    for (const [file, text] of library.templates) {
      const code = text.replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '');
      assert.doesNotMatch(code, /fsGroup|podSecurityContext/, file);
    }
  });
});

describe('the restricted Pod Security Standard check used on the rendered sidecar', () => {
  const volumes = [{ name: 'key', secret: { secretName: 's' } }, { name: 'tmp', emptyDir: {} }];
  const compliant = (): ContainerSpec => ({
    name: 'sidecar', securityContext: structuredClone(library.values.securityContext) as ContainerSpec['securityContext'],
    ports: [{ name: 'proxy-admin', containerPort: 9090 }], volumeMounts: [{ name: 'key', mountPath: '/k' }, { name: 'tmp', mountPath: '/tmp' }],
  });

  test('the chart\'s own security context for the sidecar is compliant on its own', () => {
    assert.deepEqual(restrictedViolations(compliant(), volumes), []);
  });

  // Each member of the class of violations the profile names, one at a time: the check must see every one.
  const mutations: Array<[string, (c: ContainerSpec, v: Array<Record<string, unknown>>) => void]> = [
    ['privileged', (c) => { c.securityContext!.privileged = true; }],
    ['allowPrivilegeEscalation true', (c) => { c.securityContext!.allowPrivilegeEscalation = true; }],
    ['allowPrivilegeEscalation unset', (c) => { delete c.securityContext!.allowPrivilegeEscalation; }],
    ['runAsNonRoot false', (c) => { c.securityContext!.runAsNonRoot = false; }],
    ['runAsNonRoot unset', (c) => { delete c.securityContext!.runAsNonRoot; }],
    ['runAsUser 0', (c) => { c.securityContext!.runAsUser = 0; }],
    ['seccomp Unconfined', (c) => { c.securityContext!.seccompProfile = { type: 'Unconfined' }; }],
    ['seccomp unset', (c) => { delete c.securityContext!.seccompProfile; }],
    ['drop without ALL', (c) => { c.securityContext!.capabilities = { drop: ['NET_RAW'] }; }],
    ['add NET_ADMIN', (c) => { c.securityContext!.capabilities!.add = ['NET_ADMIN']; }],
    ['procMount Unmasked', (c) => { c.securityContext!.procMount = 'Unmasked'; }],
    ['appArmor Unconfined', (c) => { c.securityContext!.appArmorProfile = { type: 'Unconfined' }; }],
    ['SELinux type spc_t', (c) => { c.securityContext!.seLinuxOptions = { type: 'spc_t' }; }],
    ['SELinux user', (c) => { c.securityContext!.seLinuxOptions = { user: 'system_u' }; }],
    ['windows hostProcess', (c) => { c.securityContext!.windowsOptions = { hostProcess: true }; }],
    ['hostPort', (c) => { c.ports![0]!.hostPort = 9090; }],
    ['hostPath volume', (_c, v) => { v[0] = { name: 'key', hostPath: { path: '/etc' } }; }],
    ['no security context', (c) => { delete c.securityContext; }],
  ];
  for (const [name, mutate] of mutations) {
    test(`a violation is reported: ${name}`, () => {
      const container = compliant();
      const podVolumes = structuredClone(volumes) as Array<Record<string, unknown>>;
      mutate(container, podVolumes);
      assert.notDeepEqual(restrictedViolations(container, podVolumes), [], name);
    });
  }

  test('NET_BIND_SERVICE is the one capability the profile lets a container add', () => {
    const container = compliant();
    container.securityContext!.capabilities!.add = ['NET_BIND_SERVICE'];
    assert.deepEqual(restrictedViolations(container, volumes), []);
  });
});

// ---- Rendered with real helm binaries ----

interface HelmBinary { bin: string; version: string; major: number }

/**
 * The helm binaries to render with: HELM_BIN (or `helm` on PATH) and HELM4_BIN. `.ci/run` installs
 * helm v3 and v4 from npm packages and sets both; elsewhere the suite runs with what is found.
 */
function findHelms(): HelmBinary[] {
  const candidates = [process.env.HELM_BIN, process.env.HELM4_BIN];
  if (!process.env.HELM_BIN) {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (dir && existsSync(join(dir, 'helm'))) { candidates.push(join(dir, 'helm')); break; }
    }
  }
  const found = new Map<string, HelmBinary>();
  for (const bin of candidates) {
    if (!bin) continue;
    const result = spawnSync(bin, ['version', '--short'], { encoding: 'utf8', timeout: 30_000 });
    const version = /^v(\d+)\.\d+\.\d+/.exec(result.stdout.trim());
    if (result.status !== 0 || !version) throw new Error(`${bin} is not a working helm binary: ${result.stderr || result.stdout}`);
    found.set(version[0], { bin, version: version[0], major: Number(version[1]) });
  }
  return [...found.values()];
}

const helms = findHelms();

describe('helm binaries', () => {
  test('under CI a helm v3 and a helm v4 are present (a chart test never skips there)', { skip: process.env.CI ? false : 'not under CI (CI unset): the helm suites run with whatever helm is found' }, () => {
    assert.deepEqual([...new Set(helms.map((h) => h.major))].sort(), [3, 4], `found: ${helms.map((h) => `${h.bin} ${h.version}`).join(', ') || 'none'}; .ci/run installs both and sets HELM_BIN and HELM4_BIN`);
  });
});

if (helms.length === 0) {
  describe('rendered with a real helm binary', { skip: process.env.CI ? false : 'no helm binary (set HELM_BIN/HELM4_BIN or put helm on PATH; .ci/run installs them)' }, () => {
    test('a helm binary is required under CI', () => assert.fail('CI is set and no helm binary was found: .ci/run must install it'));
  });
}

interface PodSpec {
  initContainers?: ContainerSpec[];
  containers: ContainerSpec[];
  securityContext?: Values;
  volumes: Array<Record<string, unknown> & { name: string; secret?: { secretName: string; defaultMode: number } }>;
  terminationGracePeriodSeconds: number;
}

const SIDECAR = (library.values as { containerName: string }).containerName;
const envOf = (c: ContainerSpec) => new Map((c.env ?? []).map((e) => [e.name, e.value]));
const specOf = (m: Manifest) => m.spec as Values;
const podTemplateOf = (m: Manifest) => specOf(m).template as { metadata: Manifest['metadata']; spec: PodSpec };

/** The checks every rendered pod template gets, whatever the values. */
function checkPod(pod: PodSpec, values: { native: boolean; appInit: ContainerSpec[]; podSecurityContext: Values; appSecurityContext: Values }, label: string) {
  const all = [...(pod.initContainers ?? []), ...pod.containers];
  const sidecars = all.filter((c) => c.name === SIDECAR);
  assert.equal(sidecars.length, 1, `${label}: exactly one sidecar`);
  const sidecar = sidecars[0]!;
  if (values.native) {
    assert.equal(pod.initContainers?.[0]?.name, SIDECAR, `${label}: the native sidecar is the first init container`);
    assert.equal(sidecar.restartPolicy, 'Always', label);
    assert.deepEqual(pod.initContainers.slice(1), values.appInit, `${label}: the app's init containers follow, unchanged and in order`);
  } else {
    assert.ok(pod.containers.includes(sidecar), `${label}: a plain sidecar is a container`);
    assert.equal(sidecar.restartPolicy, undefined, label);
    assert.deepEqual(pod.initContainers ?? [], values.appInit, `${label}: the app's init containers, unchanged`);
  }
  assert.deepEqual(restrictedViolations(sidecar, pod.volumes), [], `${label}: the sidecar container is restricted on its own`);
  // The pod and the app are the app's business: the chart adds nothing there.
  assert.deepEqual(pod.securityContext ?? {}, values.podSecurityContext, `${label}: pod security context as the app set it`);
  const app = pod.containers.find((c) => c.name === 'app')!;
  assert.deepEqual(app.securityContext ?? {}, values.appSecurityContext, `${label}: app security context as the app set it`);
  // The key: only the sidecar mounts it, and uid 65532 can read the root-owned file without an fsGroup.
  const keyVolume = pod.volumes.find((v) => v.secret)!;
  const mounters = all.filter((c) => c.volumeMounts?.some((m) => m.name === keyVolume.name)).map((c) => c.name);
  assert.deepEqual(mounters, [SIDECAR], `${label}: only the sidecar mounts the key`);
  const fsGroup = (pod.securityContext ?? {}).fsGroup;
  const uid = sidecar.securityContext?.runAsUser;
  const readable = uid === 0 || (keyVolume.secret!.defaultMode & 0o004) !== 0 || (fsGroup !== undefined && (keyVolume.secret!.defaultMode & 0o040) !== 0);
  assert.ok(readable, `${label}: key file mode ${keyVolume.secret!.defaultMode.toString(8)} is unreadable for uid ${uid} without an fsGroup`);
  assert.ok(sidecar.volumeMounts?.every((m) => m.subPath === undefined), label);
}

for (const helm of helms) {
  describe(`rendered with helm ${helm.version}`, () => {
    const work = mkdtempSync(join(tmpdir(), `ltp-helm${helm.major}-`));
    after(() => rmSync(work, { recursive: true, force: true }));
    const chartDir = join(work, EXAMPLE);

    const run = (args: string[], cwd = chartDir) => spawnSync(helm.bin, args, { cwd, encoding: 'utf8', timeout: 60_000 });
    let files = 0;
    const valuesFile = (values: Values) => {
      const path = join(work, `values-${++files}.yaml`);
      writeFileSync(path, stringifyYaml(values));
      return path;
    };
    const render = (...valueFiles: string[]): Manifest[] => {
      const result = run(['template', 'demo', '.', ...valueFiles.flatMap((f) => ['-f', f])]);
      assert.equal(result.status, 0, result.stderr);
      const manifests = parseManifests(result.stdout);
      assert.deepEqual(manifests.flatMap(schemaProblems), [], 'every object matches its Kubernetes schema');
      return manifests;
    };
    /** Renders and expects a failure; returns helm's message. */
    const refuse = (...args: string[]): string => {
      const result = run(['template', 'demo', '.', '-f', 'ci/minimal-values.yaml', ...args]);
      assert.notEqual(result.status, 0, `expected a refusal for ${args.join(' ')}`);
      return result.stderr;
    };
    const podOf = (manifests: Manifest[], kind: string): PodSpec => podTemplateOf(manifests.find((m) => m.kind === kind)!).spec;

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

    test('native and plain, with and without the Job, with and without the app\'s init containers, as root or restricted: valid, unique keys, the sidecar restricted on its own', () => {
      const appInit = [
        { name: 'wait-for-db', image: 'busybox:1.37', command: ['sh', '-c', 'echo waiting'] },
        { name: 'migrate', image: 'busybox:1.37', command: ['sh', '-c', 'echo migrating'], securityContext: { runAsUser: 0 } },
      ];
      const restricted = example.values.securityContext as Values;
      let combinations = 0;
      for (const native of [true, false]) {
        for (const job of [false, true]) {
          for (const init of [[], appInit]) {
            // null removes the example's default (Helm merges {} with it): the app then runs as its image says, root.
            for (const [appSecurityContext, podSecurityContext] of [[restricted, {}], [null, {}], [null, { runAsUser: 0, runAsNonRoot: false, supplementalGroups: [0] }]] as Array<[Values | null, Values]>) {
              const label = `native=${native} job=${job} init=${init.length} app=${JSON.stringify(appSecurityContext)}`;
              const manifests = render('ci/minimal-values.yaml', valuesFile({
                job: { enabled: job }, initContainers: init, securityContext: appSecurityContext, podSecurityContext,
                [alias]: { nativeSidecar: native },
              }));
              const kinds = manifests.map((m) => m.kind).sort();
              assert.deepEqual(kinds, job ? ['Deployment', 'Job'] : ['Deployment'], label);
              for (const m of manifests) checkPod(podTemplateOf(m).spec, { native, appInit: init, podSecurityContext, appSecurityContext: appSecurityContext ?? {} }, `${label} ${m.kind}`);
              combinations++;
            }
          }
        }
      }
      assert.equal(combinations, 24);
    });

    test('the checks have teeth: a duplicated key, a misspelt field and a wrong type are all refused', () => {
      assert.throws(() => parseManifests('spec:\n  initContainers: []\n  initContainers: []\n'), /DUPLICATE_KEY/);
      assert.throws(() => parseManifests('a: 1\n---\nb: 1\nb: 2\n'), /document 2/);
      const deployment = render('ci/minimal-values.yaml').find((m) => m.kind === 'Deployment')!;
      const pod = podTemplateOf(deployment).spec;
      const misspelt = structuredClone(deployment);
      const sidecar = podTemplateOf(misspelt).spec.initContainers![0]!;
      sidecar.restartpolicy = sidecar.restartPolicy;
      assert.deepEqual(schemaProblems(misspelt), ['Deployment.spec.template.spec.initContainers[0].restartpolicy: unknown field']);
      const wrongType = structuredClone(deployment);
      (podTemplateOf(wrongType).spec.initContainers![0]!.ports![0]! as { containerPort: unknown }).containerPort = '9090';
      assert.match(schemaProblems(wrongType).join('\n'), /containerPort must be integer/);
      assert.ok(pod.initContainers!.length > 0);
    });

    test('minimal values: probes, the key file from the Secret, loopback, requests from the measured RSS, no NetworkPolicy or PodMonitor', () => {
      const manifests = render('ci/minimal-values.yaml');
      assert.deepEqual(manifests.map((m) => m.kind), ['Deployment'], 'nothing optional by default');
      const pod = podOf(manifests, 'Deployment');
      const sidecar = pod.initContainers![0]! as ContainerSpec & { startupProbe: { httpGet: { path: string } }; livenessProbe: { httpGet: { path: string } }; readinessProbe: { httpGet: { path: string; port: number } }; resources: { requests: { memory: string }; limits: { memory: string } } };
      assert.equal(sidecar.image, 'registry.example.com/platform/logicnets-token-proxy:0.1.0');
      assert.equal(sidecar.startupProbe.httpGet.path, '/livez');
      assert.equal(sidecar.livenessProbe.httpGet.path, '/livez');
      assert.equal(sidecar.readinessProbe.httpGet.path, '/readyz');
      assert.equal(sidecar.readinessProbe.httpGet.port, 9090);
      const env = envOf(sidecar);
      assert.equal(env.get('LISTEN_HOST'), '127.0.0.1');
      assert.equal(env.get('LOGICNETS_PRIVATE_KEY_FILE'), '/var/run/secrets/logicnets-token-proxy/private-key.pem');
      assert.equal(env.has('LOGICNETS_PRIVATE_KEY'), false);
      assert.equal(env.has('SHUTDOWN_DELAY'), false);
      assert.deepEqual(pod.volumes.find((v) => v.secret)?.secret, { secretName: 'logicnets-client-key', defaultMode: 0o444 });
      assert.equal(pod.securityContext, undefined, 'no pod-level security context');
      assert.deepEqual(sidecar.securityContext, {
        allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true,
        runAsGroup: 65532, runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' },
      });
      const mebibytes = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1]);
      // values.yaml states the measured idle RSS (69-71 MiB on Node 20, 84 MiB on Node 24): the request keeps 25% or more headroom over it.
      assert.ok(mebibytes(sidecar.resources.requests.memory) >= 84 * 1.25, sidecar.resources.requests.memory);
      assert.ok(mebibytes(sidecar.resources.limits.memory) >= mebibytes(sidecar.resources.requests.memory));
      assert.match(readFileSync(join(library.dir, 'values.yaml'), 'utf8'), /idle sidecar[\s\S]{0,120}measured \d+-\d+ MiB RSS on Node \d+/);
      assert.equal(envOf(pod.containers[0]!).get('API_URL'), 'http://127.0.0.1:8080/logicnets/WebAPIExample/function_1');
    });

    test('an empty image.repository fails the render with one sentence naming it and saying to build and push the image', () => {
      for (const args of [['--set', `${alias}.image.repository=`], ['--set', `${alias}.image.repository=`, '--set', `${alias}.nativeSidecar=false`]]) {
        const message = refuse(...args);
        assert.match(message, /tokenProxy\.image\.repository is required: build the image [^.]*Dockerfile, push it to a registry/);
      }
      const values = readYamlFile(join(ciDir, 'minimal-values.yaml')) as Values;
      delete ((values[alias] as Values).image as Values).repository;
      const result = run(['template', 'demo', '.', '-f', valuesFile(values)]);
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, /tokenProxy\.image\.repository is required/);
    });

    test('remote http URLs are refused, loopback http and https are rendered (a seeded sample of the class, through helm)', () => {
      const random = seeded(11);
      const sample = new Set(['http://lua5.logicnets.local/logicnets', 'http://localhost.evil.example/c', 'https://lua5.logicnets.local/logicnets', 'http://127.0.0.1:8000/logicnets']);
      while (sample.size < 10) sample.add(upstreamUrls[Math.floor(random() * upstreamUrls.length)]!);
      for (const url of sample) {
        const sidecar = sidecarAccepts('LOGICNETS_URL', url);
        const result = run(['template', 'demo', '.', '-f', 'ci/minimal-values.yaml', '-f', valuesFile({ [alias]: { upstream: { url } } })]);
        if (!sidecar) {
          assert.notEqual(result.status, 0, `${url}: the sidecar refuses it, helm rendered it`);
          assert.match(result.stderr, /upstream\.url|upstream\/url/, url);
        } else if (/^https:\/\/[^/]+\/[^?#]+$/i.test(url) || /^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?\/[^?#]+$/.test(url)) {
          assert.equal(result.status, 0, `${url}: ${result.stderr}`);
        }
      }
    });

    test('durations render as the sidecar reads them: 1000000 stays 1000000 (not Helm\'s 1e+06), 0.5 stays 0.5', () => {
      const manifests = render('ci/minimal-values.yaml', valuesFile({ [alias]: { nativeSidecar: false, upstreamTimeout: 1000000, shutdownTimeout: 2147483, legacyShutdownDelay: 0.5 } }));
      const sidecar = podOf(manifests, 'Deployment').containers.find((c) => c.name === SIDECAR)!;
      const env = envOf(sidecar);
      assert.deepEqual([env.get('UPSTREAM_TIMEOUT'), env.get('SHUTDOWN_TIMEOUT'), env.get('SHUTDOWN_DELAY')], ['1000000', '2147483', '0.5']);
      const config = loadConfig({ env: { LOGICNETS_URL: 'https://lua5.logicnets.local/logicnets', LOGICNETS_CLIENT_ID: 'x', LOGICNETS_PRIVATE_KEY_FILE: placeholderKey,
        UPSTREAM_TIMEOUT: env.get('UPSTREAM_TIMEOUT')!, SHUTDOWN_TIMEOUT: env.get('SHUTDOWN_TIMEOUT')!, SHUTDOWN_DELAY: env.get('SHUTDOWN_DELAY')! } });
      assert.deepEqual([config.upstreamTimeout, config.shutdownTimeout, config.shutdownDelay], [1000000, 2147483, 0.5]);
      assert.match(refuse('--set', `${alias}.upstreamTimeout=2147484`), /upstreamTimeout/);
    });

    test('equal proxy and admin ports fail the render naming both settings; different ports render', () => {
      const random = seeded(7);
      for (let i = 0; i < 3; i++) {
        const port = 1024 + Math.floor(random() * 60_000);
        const message = refuse('--set', `${alias}.ports.proxy=${port}`, '--set', `${alias}.ports.admin=${port}`);
        assert.match(message, new RegExp(`tokenProxy\\.ports\\.proxy and tokenProxy\\.ports\\.admin are both ${port}`));
        const ok = render('ci/minimal-values.yaml', valuesFile({ [alias]: { ports: { proxy: port, admin: port + 1 } } }));
        assert.equal(envOf(podOf(ok, 'Deployment').initContainers![0]!).get('ADMIN_PORT'), String(port + 1));
      }
    });

    test('extraEnv cannot set a variable the chart sets (every name it renders in any ci file), nor the inline key', () => {
      const rendered = new Set<string>();
      for (const file of ciFiles) {
        for (const m of render(join('ci', file)).filter((x) => x.kind === 'Deployment')) {
          const pod = podTemplateOf(m).spec;
          for (const name of envOf([...(pod.initContainers ?? []), ...pod.containers].find((c) => c.name === SIDECAR)!).keys()) rendered.add(name);
        }
      }
      for (const name of ['LISTEN_HOST', 'LISTEN_PORT', 'ADMIN_PORT', 'LOGICNETS_PRIVATE_KEY_FILE', 'LOGICNETS_URL', 'CONFIG_FILE', 'LOGICNETS_CA_FILE']) assert.ok(rendered.has(name), name);
      const random = seeded(3);
      const names = [...rendered];
      const sample = new Set(['LISTEN_HOST', 'LISTEN_PORT', 'ADMIN_PORT', 'LOGICNETS_PRIVATE_KEY_FILE', 'LOGICNETS_URL', 'LOGICNETS_PRIVATE_KEY']);
      while (sample.size < 9) sample.add(names[Math.floor(random() * names.length)]!);
      for (const name of sample) {
        const message = refuse('-f', valuesFile({ [alias]: { extraEnv: [{ name, value: '0.0.0.0' }] } }));
        assert.match(message, /extraEnv/, name);
      }
      // Every name rendered anywhere is in the schema's refusal list, so none slips past (ajv check above covers the list).
      const refused = new Set(((((library.validate.schema as Values).properties as Values).extraEnv as Values).items as { properties: { name: { not: { enum: string[] } } } }).properties.name.not.enum);
      assert.deepEqual(names.filter((n) => !refused.has(n)), []);
    });

    test('the library\'s own extraEnv guard names the setting when a name slips past the schema', () => {
      // A consumer chart that sets the library's values without its schema (no alias), so only the template guard stands.
      const consumer = join(work, 'guard');
      mkdirSync(join(consumer, 'templates'), { recursive: true });
      cpSync(join(work, LIBRARY), join(consumer, 'charts', LIBRARY), { recursive: true });
      writeFileSync(join(consumer, 'Chart.yaml'), stringifyYaml({ apiVersion: 'v2', name: 'guard', version: '0.0.1' }));
      const tokenProxy = { ...structuredClone(library.values), ...structuredClone((readYamlFile(join(ciDir, 'minimal-values.yaml')) as Values)[alias] as Values) };
      for (const key of ['image', 'upstream', 'privateKey']) tokenProxy[key] = { ...(library.values[key] as Values), ...(((readYamlFile(join(ciDir, 'minimal-values.yaml')) as Values)[alias] as Values)[key] as Values) };
      writeFileSync(join(consumer, 'values.yaml'), stringifyYaml({ tokenProxy: { ...tokenProxy, extraEnv: [{ name: 'LISTEN_HOST', value: '0.0.0.0' }] } }));
      writeFileSync(join(consumer, 'templates', 'pod.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    {{- include "logicnets-token-proxy.container" . | nindent 4 }}\n  volumes:\n    {{- include "logicnets-token-proxy.volumes" . | nindent 4 }}\n');
      const result = run(['template', 'r', '.'], consumer);
      assert.notEqual(result.status, 0, result.stdout);
      assert.match(result.stderr, /tokenProxy\.extraEnv sets LISTEN_HOST, which the chart sets itself/);
    });

    test('NetworkPolicy and PodMonitor, when on: admin port only, from Prometheus and the kubelet CIDRs, selecting the workload\'s pods', () => {
      const manifests = render('ci/root-app-init-containers-values.yaml');
      const policy = manifests.find((m) => m.kind === 'NetworkPolicy')!;
      const monitor = manifests.find((m) => m.kind === 'PodMonitor')!;
      assert.ok(policy && monitor);
      const selector = (specOf(policy).podSelector as { matchLabels: Record<string, string> }).matchLabels;
      for (const workload of manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'Job')) {
        const labels = podTemplateOf(workload).metadata.labels ?? {};
        for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, `${workload.kind} pods are selected`);
        const sidecar = [...(podTemplateOf(workload).spec.initContainers ?? [])].find((c) => c.name === SIDECAR)!;
        const endpoint = (specOf(monitor).podMetricsEndpoints as Array<{ port: string; path: string }>)[0]!;
        assert.ok(sidecar.ports?.some((p) => p.name === endpoint.port && p.containerPort === 9090), 'the PodMonitor names the admin port');
        assert.equal(endpoint.path, '/metrics');
      }
      assert.deepEqual((specOf(monitor).selector as { matchLabels: unknown }).matchLabels, selector);
      assert.equal(monitor.metadata.labels?.release, 'kube-prometheus-stack');
      assert.deepEqual(specOf(policy).policyTypes, ['Ingress']);
      const rules = specOf(policy).ingress as Array<{ from?: Array<Record<string, unknown>>; ports: Array<{ port: number }> }>;
      assert.deepEqual(rules[0], {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
        ports: [{ port: 9090, protocol: 'TCP' }],
      });
      assert.deepEqual(rules[1], { from: [{ ipBlock: { cidr: '10.0.0.0/16' } }], ports: [{ port: 9090, protocol: 'TCP' }] });
      assert.deepEqual(rules[2], { ports: [{ port: 8443, protocol: 'TCP' }] }, 'the app\'s own rule, verbatim');
      assert.equal(rules.length, 3);
      assert.ok(rules.slice(0, 2).every((r) => r.from && r.ports.every((p) => p.port === 9090)), 'the proxy port is never opened');
    });

    test('forward mode with a plain sidecar: drain delay, proxy variables, the Job stops the sidecar, config checksum', () => {
      const manifests = render('ci/forward-legacy-job-values.yaml');
      const pod = podOf(manifests, 'Deployment');
      assert.equal(pod.initContainers, undefined);
      const sidecar = pod.containers.find((c) => c.name === SIDECAR);
      assert.ok(sidecar);
      assert.ok(Number(envOf(sidecar).get('SHUTDOWN_DELAY')) > 0);
      assert.ok(pod.terminationGracePeriodSeconds > Number(envOf(sidecar).get('SHUTDOWN_DELAY')) + Number(envOf(sidecar).get('SHUTDOWN_TIMEOUT')));
      const app = envOf(pod.containers.find((c) => c.name === 'app')!);
      assert.equal(app.get('API_URL'), 'http://lua5.logicnets.local/logicnets/WebAPIExample/function_1');
      assert.equal(app.get('http_proxy'), 'http://127.0.0.1:8080');
      assert.equal(app.get('HTTP_PROXY'), 'http://127.0.0.1:8080');
      assert.match(app.get('NO_PROXY') ?? '', /(^|,)\.svc(,|$)/);
      assert.match(app.get('NO_PROXY') ?? '', /(^|,)\.cluster\.local(,|$)/);
      const job = podOf(manifests, 'Job');
      const jobApp = job.containers.find((c) => c.name === 'app')!;
      const script = String((jobApp.args as string[] | undefined)?.[0] ?? '');
      assert.match(script, /-X POST "\$SIDECAR_ADMIN_URL\/shutdown"/);
      // /shutdown needs the token the sidecar writes to an in-memory emptyDir that only the sidecar and the app mount.
      const tokenFile = envOf(job.containers.find((c) => c.name === SIDECAR)!).get('ADMIN_SHUTDOWN_TOKEN_FILE')!;
      assert.ok(script.includes(`-H "Authorization: Bearer $(cat ${tokenFile})"`), script);
      const adminVolume = job.volumes.find((v) => v.name === 'logicnets-token-proxy-admin') as { emptyDir?: { medium?: string } } | undefined;
      assert.equal(adminVolume?.emptyDir?.medium, 'Memory');
      assert.deepEqual(jobApp.volumeMounts, [{ name: 'logicnets-token-proxy-admin', mountPath: dirname(tokenFile), readOnly: true }]);
      assert.deepEqual(job.containers.filter((c) => c.volumeMounts?.some((m) => m.name === 'logicnets-token-proxy-admin')).map((c) => c.name).sort(), ['app', SIDECAR].sort());
      const configMap = manifests.find((m) => m.kind === 'ConfigMap') as Manifest & { data: Record<string, string> };
      assert.ok(configMap?.data['config.yaml']);
      const checksum = createHash('sha256').update(configMap.data['config.yaml'].replace(/\n$/, '')).digest('hex');
      const deployment = manifests.find((m) => m.kind === 'Deployment')!;
      assert.equal(podTemplateOf(deployment).metadata.annotations?.['checksum/logicnets-token-proxy-config'], checksum);
    });

    test('the rendered sidecar environment and config file load through the real config loader', () => {
      const pki = makeTestPki();
      after(() => pki.cleanup());
      const client = makeClientCertificate(pki, 'helm-client');
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      let withClientCertificate = 0;
      for (const file of ciFiles) {
        const manifests = render(join('ci', file));
        const pod = podOf(manifests, 'Deployment');
        const sidecar = [...(pod.initContainers ?? []), ...pod.containers].find((c) => c.name === SIDECAR);
        assert.ok(sidecar);
        const env: Record<string, string> = Object.fromEntries((sidecar.env ?? []).map((e) => [e.name, e.value ?? '']));
        // What the pod mounts, made here: the key from the Secret, the CA and the config file from ConfigMaps.
        const mounts = mkdtempSync(join(work, 'mounts-'));
        const mounted = (variable: string, content: string) => {
          if (env[variable] === undefined) return;
          env[variable] = join(mounts, basename(env[variable]));
          writeFileSync(env[variable], content, { mode: 0o400 });
        };
        mounted('LOGICNETS_PRIVATE_KEY_FILE', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
        mounted('LOGICNETS_CA_FILE', pki.caCertPem);
        mounted('LOGICNETS_CLIENT_CERT_FILE', client.certPem);
        mounted('LOGICNETS_CLIENT_KEY_FILE', client.keyPem);
        mounted('CONFIG_FILE', (manifests.find((m) => m.kind === 'ConfigMap') as { data?: Record<string, string> } | undefined)?.data?.['config.yaml'] ?? '');
        // The shutdown token's folder is an emptyDir: the sidecar writes the file itself.
        if (env.ADMIN_SHUTDOWN_TOKEN_FILE !== undefined) env.ADMIN_SHUTDOWN_TOKEN_FILE = join(mounts, basename(env.ADMIN_SHUTDOWN_TOKEN_FILE));
        assert.equal(env.ADMIN_SHUTDOWN_TOKEN_FILE !== undefined, sidecar.restartPolicy !== 'Always', `${file}: POST /shutdown is on exactly for a plain sidecar`);
        const config = loadConfig({ env });
        assert.equal(config.listenHost, '127.0.0.1', file);
        assert.equal(config.listenPort, 8080, file);
        assert.equal(config.adminPort, 9090, file);
        assert.deepEqual(config.upstreams.map((u) => u.url), ['https://lua5.logicnets.local/logicnets'], file);
        assert.equal(config.upstreams[0]!.privateKeyFile, env.LOGICNETS_PRIVATE_KEY_FILE, file);
        assert.equal(config.shutdownDelay > 0, sidecar.restartPolicy !== 'Always', `${file}: a drain delay exactly for a plain sidecar`);
        if (env.LOGICNETS_CLIENT_CERT_FILE !== undefined) {
          withClientCertificate += 1;
          assert.equal(config.upstreams[0]!.clientCertFile, env.LOGICNETS_CLIENT_CERT_FILE, file);
          const mount = sidecar.volumeMounts?.find((m) => m.name === 'logicnets-token-proxy-client-cert');
          assert.equal(mount?.readOnly, true, `${file}: the client certificate Secret is mounted read-only`);
          assert.equal(mount?.subPath, undefined, `${file}: mounted whole, so a renewed certificate arrives`);
        }
      }
      assert.ok(withClientCertificate >= 1, 'a ci file renders a client certificate');
    });

    test('another chart using the library with several upstreams in a config file: it loads through the real config loader', () => {
      const consumer = join(work, 'consumer');
      const keys = join(work, 'consumer-keys');
      const ca = join(work, 'consumer-ca');
      const conf = join(work, 'consumer-config');
      const clientDir = join(work, 'consumer-client');
      for (const dir of [join(consumer, 'templates'), keys, ca, conf, clientDir]) mkdirSync(dir, { recursive: true });
      writeFileSync(join(consumer, 'Chart.yaml'), stringifyYaml({
        apiVersion: 'v2', name: 'consumer', version: '0.0.1',
        dependencies: [{ name: LIBRARY, version: library.meta.version, repository: `file://${join(work, LIBRARY)}`, alias }],
      }));
      writeFileSync(join(consumer, 'values.yaml'), stringifyYaml({ [alias]: {
        image: { repository: 'registry.example.com/ltp' },
        privateKey: { secretName: 'keys', mountPath: keys },
        ca: { configMapName: 'company-ca', mountPath: ca },
        clientCertificate: { secretName: 'client-tls', mountPath: clientDir },
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
      const dep = run(['dependency', 'update', '--skip-refresh', '.'], consumer);
      assert.equal(dep.status, 0, dep.stderr);
      const rendered = run(['template', 'r', '.'], consumer);
      assert.equal(rendered.status, 0, rendered.stderr);
      const manifests = parseManifests(rendered.stdout);
      assert.deepEqual(manifests.flatMap(schemaProblems), []);
      const container = (manifests.find((m) => m.kind === 'Pod')!.spec as PodSpec).containers[0]!;
      const env: Record<string, string> = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
      assert.equal(env.LOGICNETS_URL, undefined, 'no single-upstream variables next to config upstreams');
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      for (const name of ['private-key.pem', 'other.pem']) writeFileSync(join(keys, name), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      const pki = makeTestPki();
      after(() => pki.cleanup());
      writeFileSync(join(ca, 'ca.crt'), pki.caCertPem);
      const client = makeClientCertificate(pki, 'consumer-client');
      writeFileSync(join(clientDir, 'tls.crt'), client.certPem);
      writeFileSync(join(clientDir, 'tls.key'), client.keyPem);
      writeFileSync(env.CONFIG_FILE!, (manifests.find((m) => m.kind === 'ConfigMap') as unknown as { data: Record<string, string> }).data['config.yaml']!);
      const config = loadConfig({ env });
      assert.deepEqual(config.upstreams.map((u) => [u.privateKeyFile, u.caFile]), [
        [join(keys, 'private-key.pem'), join(ca, 'ca.crt')],
        [join(keys, 'other.pem'), join(ca, 'ca.crt')],
      ]);
      assert.deepEqual(config.upstreams.map((u) => [u.clientCertFile, u.clientKeyFile]),
        [[join(clientDir, 'tls.crt'), join(clientDir, 'tls.key')], [join(clientDir, 'tls.crt'), join(clientDir, 'tls.key')]]);
      assert.equal(config.retryBodyLimit, 4096);
    });

    test('helm/README.md, followed from nothing, gives a valid pod for an app that runs as root and has init containers', () => {
      const readme = readFileSync(join(HELM_DIR, 'README.md'), 'utf8');
      const block = (marker: string) => {
        const m = new RegExp(`<!-- ${marker} -->\\n( *)\`\`\`ya?ml\\n([\\s\\S]*?)\\n *\`\`\``).exec(readme);
        assert.ok(m, `helm/README.md has a block marked <!-- ${marker} -->`);
        // The blocks sit in a numbered list: drop the list's indentation.
        return `${m[2]!.split('\n').map((line) => line.slice(m[1]!.length)).join('\n')}\n`;
      };
      const app = join(work, 'readme-app');
      mkdirSync(join(app, 'templates'), { recursive: true });
      writeFileSync(join(app, 'Chart.yaml'), block('your Chart.yaml').replace('file://../logicnets-token-proxy', `file://${join(work, LIBRARY)}`));
      writeFileSync(join(app, 'values.yaml'), block('your values.yaml'));
      writeFileSync(join(app, 'templates', 'deployment.yaml'), block('your templates/deployment.yaml'));
      const dep = run(['dependency', 'update', '--skip-refresh', '.'], app);
      assert.equal(dep.status, 0, dep.stderr);
      const lint = run(['lint', '--strict', '.'], app);
      assert.equal(lint.status, 0, `${lint.stdout}${lint.stderr}`);
      const rendered = run(['template', 'r', '.'], app);
      assert.equal(rendered.status, 0, rendered.stderr);
      const manifests = parseManifests(rendered.stdout);
      assert.deepEqual(manifests.flatMap(schemaProblems), []);
      const pod = podOf(manifests, 'Deployment');
      const appContainer = pod.containers.find((c) => c.name !== SIDECAR)!;
      assert.equal(appContainer.securityContext, undefined, 'the app in the README runs as its image says (root)');
      assert.equal(pod.securityContext, undefined);
      const appInit = pod.initContainers!.slice(1);
      assert.ok(appInit.length >= 1, 'the README app has init containers of its own');
      checkPod(pod, { native: true, appInit, podSecurityContext: {}, appSecurityContext: {} }, 'README');
    });

    test('missing values and an old cluster fail the render with a sentence', () => {
      assert.match(refuse('--set', `${alias}.upstream.clientId=`), /clientId/);
      assert.match(refuse('--kube-version', '1.27.0'), /nativeSidecar=false/);
    });
  });
}
