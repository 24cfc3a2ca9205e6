/**
 * Checks of rendered Kubernetes manifests for the chart tests, without a cluster: a YAML parse that
 * refuses duplicate keys, validation of every object against the Kubernetes API schemas (npm
 * `kubernetes-models`, and `@kubernetes-models/prometheus-operator` for the PodMonitor), a check
 * for unknown fields against the same packages' type declarations (the validators accept unknown
 * fields, which the API server drops or refuses), and the container-level rules of the
 * "restricted" Pod Security Standard.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Pod } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

/** A rendered object, as parsed. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/**
 * Parses a multi-document YAML stream (what `helm template` prints) and throws on any error or
 * warning, a duplicate key above all: `yaml` reports one in the document's `errors` (its
 * `uniqueKeys` option is on by default) instead of throwing, so an unchecked parse would let the
 * last key win silently, as a Kubernetes apply would.
 */
export function parseManifests(text: string): Manifest[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, prettyErrors: false });
  if (!Array.isArray(docs)) throw new Error('not a YAML document stream');
  const problems = docs.flatMap((d, i) => [...d.errors, ...d.warnings].map((e) => `document ${i + 1}: ${e.code}: ${e.message}`));
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return docs.map((d) => d.toJS() as Manifest | null).filter((m): m is Manifest => m !== null);
}

interface Validatable { validate(): void }
type ModelClass = new (data: never) => Validatable;

const NODE_MODULES = resolve(dirname(fileURLToPath(import.meta.url)), '../../node_modules');

/** The type declaration (.d.ts) of each kind, for the unknown-field check. */
const DECLARATIONS: Record<string, string> = {
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Pod': 'kubernetes-models/v1/Pod',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'batch/v1/Job': 'kubernetes-models/batch/v1/Job',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  'monitoring.coreos.com/v1/PodMonitor': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor',
};

interface Declaration { fields: Map<string, string> | undefined; imports: Map<string, string> }
const declarations = new Map<string, Declaration>();

/** The first interface of a .d.ts file (field -> type text) and its imports (type name -> .d.ts path). */
function declaration(file: string): Declaration {
  let found = declarations.get(file);
  if (found) return found;
  const text = readFileSync(file, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ ([\w, ]+) \} from "([^"]+)";$/gm)) {
    const target = m[2]!.startsWith('.') ? join(dirname(file), m[2]!.replace(/\.js$/, '')) : join(NODE_MODULES, m[2]!);
    for (const name of m[1]!.split(',').map((n) => n.trim())) imports.set(name, `${target}.d.ts`);
  }
  const body = /^export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)^\}/m.exec(text)?.[1];
  let fields: Map<string, string> | undefined;
  if (body !== undefined) {
    fields = new Map();
    for (const m of body.matchAll(/^ {4}"([^"]+)"\??: ([^\n]*)$/gm)) fields.set(m[1]!, m[2]!.replace(/;$/, ''));
  }
  found = { fields, imports };
  declarations.set(file, found);
  return found;
}

function unknownFields(value: unknown, type: string, file: string, path: string, out: string[]): void {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownFields(item, array[1]!, file, `${path}[${i}]`, out));
    return;
  }
  const target = declaration(file).imports.get(type);
  if (!target || typeof value !== 'object' || value === null || Array.isArray(value)) return;
  const { fields } = declaration(target);
  if (!fields) return; // a type alias (Quantity, IntOrString, Time): a leaf
  for (const [key, item] of Object.entries(value)) {
    const fieldType = fields.get(key);
    if (fieldType === undefined) out.push(`${path}.${key}: unknown field`);
    else unknownFields(item, fieldType, target, `${path}.${key}`, out);
  }
}

/** Fields of `manifest` that its kind's API type does not have (e.g. a misspelt `restartpolicy`), one line each. */
export function unknownFieldProblems(manifest: Manifest): string[] {
  const module = DECLARATIONS[`${manifest.apiVersion}/${manifest.kind}`];
  if (!module) return [`${manifest.apiVersion}/${manifest.kind}: no type declaration known to the test`];
  const file = join(NODE_MODULES, `${module}.d.ts`);
  const { fields } = declaration(file);
  const out: string[] = [];
  for (const [key, item] of Object.entries(manifest)) {
    const fieldType = fields?.get(key);
    if (fieldType === undefined) out.push(`${manifest.kind}.${key}: unknown field`);
    else unknownFields(item, fieldType, file, `${manifest.kind}.${key}`, out);
  }
  return out;
}

const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
};

/**
 * Validates one object against the schema of its apiVersion and kind; returns the problems (empty
 * when valid). A kind without a known schema is a problem too, so nothing goes unchecked. The
 * schemas check types, required fields and enums; unknown fields are checked against the type
 * declarations (unknownFieldProblems).
 */
export function schemaProblems(manifest: Manifest): string[] {
  const model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
  if (!model) return [`${manifest.apiVersion}/${manifest.kind}: no schema known to the test`];
  try {
    new model(structuredClone(manifest) as never).validate();
  } catch (error) {
    return [`${manifest.kind} ${manifest.metadata?.name}: ${(error as Error).message}`];
  }
  return unknownFieldProblems(manifest);
}

/** The parts of a container spec the Pod Security Standard looks at. */
export interface ContainerSpec {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name?: string; containerPort: number; hostPort?: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    runAsGroup?: number;
    readOnlyRootFilesystem?: boolean;
    procMount?: string;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type?: string };
    appArmorProfile?: { type?: string };
    seLinuxOptions?: { type?: string; user?: string; role?: string };
    windowsOptions?: { hostProcess?: boolean };
  };
  [field: string]: unknown;
}

/** The volume sources the restricted profile allows. */
const RESTRICTED_VOLUME_TYPES = new Set([
  'configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret',
]);
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

/**
 * The rules of the restricted Pod Security Standard (Kubernetes docs, "Pod Security Standards",
 * baseline and restricted, as of v1.33) that a single container can meet on its own, checked on the
 * container's own security context, never the pod's: the sidecar must be compliant whatever the
 * app's pod sets. `volumes` are the pod's volumes; only those the container mounts are checked.
 * Returns one line per violation; empty when compliant.
 */
export function restrictedViolations(container: ContainerSpec, volumes: Array<Record<string, unknown>>): string[] {
  const out: string[] = [];
  const sc = container.securityContext ?? {};
  if (sc.privileged === true) out.push('privileged must be unset or false');
  if (sc.windowsOptions?.hostProcess === true) out.push('windowsOptions.hostProcess must be unset or false');
  if (sc.allowPrivilegeEscalation !== false) out.push('allowPrivilegeEscalation must be false');
  if (sc.runAsNonRoot !== true) out.push('runAsNonRoot must be true');
  if (sc.runAsUser === 0) out.push('runAsUser must not be 0');
  if (!['RuntimeDefault', 'Localhost'].includes(sc.seccompProfile?.type ?? '')) out.push('seccompProfile.type must be RuntimeDefault or Localhost');
  if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push('capabilities.drop must contain ALL');
  const added = (sc.capabilities?.add ?? []).filter((c) => c !== 'NET_BIND_SERVICE');
  if (added.length > 0) out.push(`capabilities.add may only hold NET_BIND_SERVICE, has ${added.join(', ')}`);
  if (sc.procMount !== undefined && sc.procMount !== 'Default') out.push('procMount must be unset or Default');
  if (sc.appArmorProfile?.type !== undefined && !['RuntimeDefault', 'Localhost'].includes(sc.appArmorProfile.type)) {
    out.push('appArmorProfile.type must be RuntimeDefault or Localhost');
  }
  if (sc.seLinuxOptions) {
    if (!SELINUX_TYPES.has(sc.seLinuxOptions.type ?? '')) out.push('seLinuxOptions.type is not an allowed type');
    if (sc.seLinuxOptions.user !== undefined || sc.seLinuxOptions.role !== undefined) out.push('seLinuxOptions.user and role must be unset');
  }
  for (const port of container.ports ?? []) {
    if (port.hostPort !== undefined && port.hostPort !== 0) out.push(`port ${port.containerPort}: hostPort must be unset or 0`);
  }
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.find((v) => v.name === mount.name);
    if (!volume) {
      out.push(`volume ${mount.name}: mounted but not in the pod`);
      continue;
    }
    const types = Object.keys(volume).filter((k) => k !== 'name');
    if (types.length !== 1 || !RESTRICTED_VOLUME_TYPES.has(types[0]!)) out.push(`volume ${mount.name}: type ${types.join('+')} is not allowed`);
  }
  return out;
}
