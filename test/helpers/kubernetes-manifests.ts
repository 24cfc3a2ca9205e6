/**
 * Checks of rendered Kubernetes manifests for the chart tests, without a cluster: a YAML parse that
 * refuses duplicate keys, validation of every object against the Kubernetes API schemas (npm
 * `kubernetes-models`, and `@kubernetes-models/prometheus-operator` for the PodMonitor), and the
 * container-level rules of the "restricted" Pod Security Standard.
 */
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

const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Pod': Pod as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'batch/v1/Job': Job as unknown as ModelClass,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelClass,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor as unknown as ModelClass,
};

/**
 * Validates one object against the schema of its apiVersion and kind; returns the problems (empty
 * when valid). A kind without a known schema is a problem too, so nothing goes unchecked. The
 * schemas check types, required fields and enums; they do not refuse unknown fields.
 */
export function schemaProblems(manifest: Manifest): string[] {
  const model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
  if (!model) return [`${manifest.apiVersion}/${manifest.kind}: no schema known to the test`];
  try {
    new model(structuredClone(manifest) as never).validate();
    return [];
  } catch (error) {
    return [`${manifest.kind} ${manifest.metadata?.name}: ${(error as Error).message}`];
  }
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
