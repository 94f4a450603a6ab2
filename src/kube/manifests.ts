/**
 * Manifest files: environment substitution, YAML parsing into objects, object
 * references, and the comparisons that decide whether an object needs a write.
 * Pure (no I/O), so it is unit-tested directly.
 *
 * YAML is read the way kubectl reads it (sigs.k8s.io/yaml on go-yaml v2, YAML 1.1):
 * `0644` is the octal 420 (a volume's defaultMode), `yes`/`on` are booleans, `<<`
 * merge keys work; but dates and `1:20` stay strings, as they do in kubectl.
 */
import { parseAllDocuments, type Tags } from 'yaml';
import { substituteEnv } from '../core/envsubst.js';
import { MAX_ERROR_DETAILS } from '../core/errors.js';
import { apiVersionProblem, kindProblem, namespaceProblem, objectNameProblem, objectRefProblem } from '../core/names.js';
import { printable } from '../core/printable.js';
import type { ResourceInfo } from './discovery.js';
import { splitApiVersion } from './discovery.js';

export type KubeObject = Record<string, unknown> & {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: Record<string, unknown> & { name?: unknown; namespace?: unknown };
};

/** Which object: what cni-node records for each object it created from a manifest. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  /** Only for namespaced objects, after defaulting. */
  namespace?: string;
  name: string;
}

export interface ManifestDocument {
  file: string;
  /** 1-based position of the YAML document in the file, empty documents counted. */
  index: number;
  /** 1-based position inside a `kind: List` document. */
  item?: number;
  /** "crb.yaml document 2" (or "… item 3"), for messages. */
  where: string;
  object: KubeObject;
  apiVersion: string;
  kind: string;
  name: string;
  /** As written in the file (before defaulting). */
  namespace?: string;
}

export interface ParsedManifest {
  documents: ManifestDocument[];
  /** Every problem found, each naming the file and document. */
  problems: string[];
}

/** Substitutes `$VAR` / `${VAR}` (`$$` is a literal `$`); throws a CniNodeError listing every unset variable. */
export function renderManifest(text: string, env: Readonly<Record<string, string | undefined>>, file: string): string {
  return substituteEnv(text, env, `manifest ${file}`);
}

const DROPPED_TAGS = new Set(['tag:yaml.org,2002:timestamp', 'tag:yaml.org,2002:binary']);
const yamlOptions = {
  version: '1.1' as const,
  merge: true,
  uniqueKeys: true,
  customTags: (tags: Tags): Tags => tags.filter((t) => !(typeof t === 'object' && (DROPPED_TAGS.has(t.tag) || ('format' in t && t.format === 'TIME')))),
};

/**
 * How much YAML one manifest may hold. A manifest is parsed whole, and parsing costs
 * far more than the text (measured with the `yaml` library on Node 24: about 2 KiB of
 * memory a node, 1.7 KiB an empty document; 100 KB of `[1,1,…]` took 92 MiB), and the
 * library's duplicate-key check is quadratic in a map's keys (40,000 keys: 10 s). A
 * ConfigMap of 1 MiB could so hold a manifest that stalls the daemon and passes its
 * 128 MiB memory limit. Nodes are estimated from the text before it is parsed, as
 * lines and commas; at the cap that is ~40 MiB and ~2.5 s at worst. Real manifests
 * have a few hundred lines (the Multus ones here: 224); a bundle over the cap is
 * split into several manifests.
 */
export const MAX_MANIFEST_NODES = 20_000;
export const MAX_MANIFEST_DOCUMENTS = 1_000;

/** Why the text is too big to be parsed as one manifest, from its lines, commas and `---` separators; undefined if it is not. */
function structureProblem(text: string, file: string): string | undefined {
  let nodes = 0;
  let documents = 1;
  for (let i = text.indexOf('\n'); i !== -1 && nodes <= MAX_MANIFEST_NODES; i = text.indexOf('\n', i + 1)) {
    nodes++;
    if (text.startsWith('---', i + 1)) documents++;
  }
  for (let i = text.indexOf(','); i !== -1 && nodes <= MAX_MANIFEST_NODES; i = text.indexOf(',', i + 1)) nodes++;
  if (nodes > MAX_MANIFEST_NODES) {
    return `manifest ${file} has more than ${MAX_MANIFEST_NODES} lines and commas (YAML nodes); it is refused before it is parsed (parsing costs about 2 KiB of memory a node): split it into several manifests`;
  }
  if (documents > MAX_MANIFEST_DOCUMENTS) {
    return `manifest ${file} has ${documents} YAML documents; at most ${MAX_MANIFEST_DOCUMENTS} are parsed: split it into several manifests`;
  }
  return undefined;
}

/** Parses a rendered manifest into objects; empty documents are skipped; `kind: List` is expanded. */
export function parseManifest(text: string, file: string): ParsedManifest {
  const documents: ManifestDocument[] = [];
  const tooBig = structureProblem(text, file);
  if (tooBig) return { documents, problems: [tooBig] };
  const problems: string[] = [];
  let docs;
  try {
    docs = parseAllDocuments(text, yamlOptions);
  } catch (e) {
    return { documents, problems: [`manifest ${file}: not valid YAML: ${printable((e as Error).message, 300)}`] };
  }
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const index = i + 1;
    const where = `manifest ${file} document ${index}`;
    if (doc.errors.length > 0) {
      // The parser's messages quote the manifest (the lines after the first are a code frame): shown, capped.
      problems.push(`${where}: not valid YAML: ${printable(doc.errors.map((e) => e.message.split('\n')[0]).join('; '), 500)}`);
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      problems.push(`${where}: ${printable((e as Error).message, 300)}`);
      return;
    }
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${where}: is not a Kubernetes object (a YAML mapping with apiVersion, kind and metadata.name)`);
      return;
    }
    const obj = value as KubeObject;
    if (obj.kind === 'List' && Array.isArray(obj['items'])) {
      (obj['items'] as unknown[]).forEach((item, j) => {
        const d = checkObject(item, file, index, `${where} item ${j + 1}`, problems);
        if (d) documents.push({ ...d, item: j + 1 });
      });
      return;
    }
    const d = checkObject(obj, file, index, where, problems);
    if (d) documents.push(d);
  });
  // A file of a thousand broken documents is reported by its first problems, not a thousand lines.
  const more = problems.length - MAX_ERROR_DETAILS;
  if (more > 0) problems.splice(MAX_ERROR_DETAILS, more, `manifest ${file}: ${more} more problem(s)`);
  return { documents, problems };
}

function checkObject(value: unknown, file: string, index: number, where: string, problems: string[]): ManifestDocument | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${where}: is not a Kubernetes object (a YAML mapping with apiVersion, kind and metadata.name)`);
    return undefined;
  }
  const obj = value as KubeObject;
  const missing: string[] = [];
  if (typeof obj.apiVersion !== 'string' || obj.apiVersion.trim() === '') missing.push('apiVersion');
  if (typeof obj.kind !== 'string' || obj.kind.trim() === '') missing.push('kind');
  const meta = obj.metadata;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) missing.push('metadata.name');
  else if (meta.name !== undefined && meta.name !== null && typeof meta.name !== 'string') {
    // YAML 1.1 (as kubectl reads it): `name: y`, `name: on` are booleans, `name: 0644` a number.
    problems.push(`${where}: metadata.name is ${printable(meta.name, 80)}, not a string; put the name in quotes`);
    return undefined;
  } else if (typeof meta.name !== 'string' || meta.name === '') {
    missing.push(
      meta['generateName'] !== undefined
        ? 'metadata.name (generateName is not supported: cni-node must know the name to update and delete the object)'
        : 'metadata.name',
    );
  }
  if (missing.length > 0) {
    problems.push(`${where}: missing ${missing.join(', ')}`);
    return undefined;
  }
  const apiVersion = (obj.apiVersion as string).trim();
  const kind = (obj.kind as string).trim();
  const name = (meta as { name: string }).name;
  const ns = (meta as { namespace?: unknown }).namespace;
  // The same rules as for the object references recorded from it (names.ts): these
  // values build API paths, now and when the object is deleted later.
  const bad =
    apiVersionProblem(apiVersion) ??
    kindProblem(kind) ??
    (ns !== undefined && ns !== null && ns !== ''
      ? typeof ns === 'string'
        ? namespaceProblem(ns)
        : `namespace ${printable(ns, 80)} is not a valid namespace name`
      : undefined) ??
    objectNameProblem(name);
  if (bad) {
    problems.push(`${where}: ${bad.startsWith('namespace ') ? `metadata.${bad}` : bad}`);
    return undefined;
  }
  const doc: ManifestDocument = { file, index, where: `${where} (${kind} ${name})`, object: obj, apiVersion, kind, name };
  if (typeof ns === 'string' && ns !== '') doc.namespace = ns;
  return doc;
}

/** The object as it is sent: namespace set for namespaced kinds (default if absent), removed for cluster-scoped ones. */
export function objectToApply(doc: ManifestDocument, info: Pick<ResourceInfo, 'namespaced'>, defaultNamespace: string): { object: KubeObject; ref: ObjectRef } {
  const metadata = { ...(doc.object.metadata ?? {}) };
  const ref: ObjectRef = { apiVersion: doc.apiVersion, kind: doc.kind, name: doc.name };
  if (info.namespaced) {
    const ns = doc.namespace ?? defaultNamespace;
    metadata.namespace = ns;
    ref.namespace = ns;
  } else {
    delete metadata.namespace;
  }
  return { object: { ...doc.object, apiVersion: doc.apiVersion, kind: doc.kind, metadata }, ref };
}

/**
 * The identity of an object regardless of the version it is written in (the same
 * ClusterRoleBinding as rbac/v1beta1 or rbac/v1 is one object).
 */
export function refKey(ref: ObjectRef): string {
  return `${splitApiVersion(ref.apiVersion).group}|${ref.kind}|${ref.namespace ?? ''}|${ref.name}`;
}

/** "ClusterRoleBinding multus-node1", "ServiceAccount kube-system/multus". */
export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

/** A well-formed object reference: every part passes names.ts (nothing that could change an API path). */
export function isRef(v: unknown): v is ObjectRef {
  return objectRefProblem(v) === undefined;
}

/**
 * True if every field of `desired` is in `live` with an equal value (maps: a
 * subset; lists: same length, element by element). The server adds defaults and
 * status to what it stores, so live ⊇ desired for an object that is as desired.
 */
export function containsDesired(desired: unknown, live: unknown): boolean {
  if (desired === null) return live === null || live === undefined;
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((d, i) => containsDesired(d, live[i]));
  }
  if (typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    const l = live as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => containsDesired(v, l[k]));
  }
  return desired === live;
}

/**
 * The object without what says nothing about its content: resourceVersion and
 * managedFields. Two objects equal after this hold the same values. Field
 * ownership alone is not worth a write on every node: Kubernetes 1.20 itself
 * rewrites managedFields on applies that change nothing (the applying manager's
 * time when a value is normalised, e.g. cpu 1000m → 1; a "before-first-apply"
 * entry on a Namespace), and any change of a value is still seen.
 */
export function comparable(obj: KubeObject): unknown {
  const meta = { ...(obj.metadata ?? {}) } as Record<string, unknown>;
  delete meta['resourceVersion'];
  delete meta['managedFields'];
  return canonical({ ...obj, metadata: meta });
}

/** Deep equality of JSON values, key order ignored. */
export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as Record<string, unknown>).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

const CRD_GROUP = 'apiextensions.k8s.io';

/** True for a CustomResourceDefinition (apiextensions.k8s.io/v1 or v1beta1). */
export function isCrd(doc: Pick<ManifestDocument, 'apiVersion' | 'kind'>): boolean {
  return doc.kind === 'CustomResourceDefinition' && splitApiVersion(doc.apiVersion).group === CRD_GROUP;
}

/** The kinds a CRD defines (one per served version), as discovery would report them once it is Established. */
export function crdResourceInfos(obj: KubeObject): ResourceInfo[] {
  const spec = obj['spec'] as
    | {
        group?: unknown;
        scope?: unknown;
        names?: { kind?: unknown; plural?: unknown };
        version?: unknown;
        versions?: { name?: unknown; served?: unknown }[];
      }
    | undefined;
  const name = (obj.metadata as { name?: unknown } | undefined)?.name;
  if (!spec || typeof spec.group !== 'string' || typeof spec.names?.kind !== 'string' || typeof spec.names.plural !== 'string' || typeof name !== 'string')
    return [];
  const versions = new Set<string>();
  if (typeof spec.version === 'string') versions.add(spec.version);
  for (const v of spec.versions ?? []) if (typeof v?.name === 'string' && v.served !== false) versions.add(v.name);
  const group = spec.group;
  const kind = spec.names.kind;
  const resource = spec.names.plural;
  const namespaced = spec.scope !== 'Cluster';
  return [...versions].map((version) => ({ group, version, apiVersion: `${group}/${version}`, kind, resource, namespaced, definedByCrd: name }));
}

export interface Counts {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  absent: number;
  pruned: number;
  /** Objects left alone on removal because another manifest of the run still wants them. */
  kept: number;
}

export function emptyCounts(): Counts {
  return { created: 0, updated: 0, unchanged: 0, deleted: 0, absent: 0, pruned: 0, kept: 0 };
}

/** "3 objects: 1 created, 2 unchanged"; in a dry run "3 objects: 1 to create, 2 unchanged". */
export function summarize(total: number, c: Counts, dryRun: boolean): string {
  const parts: string[] = [];
  const add = (n: number, done: string, todo: string): void => {
    if (n > 0) parts.push(`${n} ${dryRun ? todo : done}`);
  };
  add(c.created, 'created', 'to create');
  add(c.updated, 'updated', 'to update');
  add(c.unchanged, 'unchanged', 'unchanged');
  add(c.deleted, 'deleted', 'to delete');
  add(c.absent, 'already gone', 'already gone');
  add(c.pruned, 'pruned (no longer in the manifest)', 'to prune (no longer in the manifest)');
  add(c.kept, 'kept (still in another manifest)', 'kept (still in another manifest)');
  const head = `${total} object${total === 1 ? '' : 's'}`;
  return parts.length > 0 ? `${head}: ${parts.join(', ')}` : head;
}
