/**
 * API discovery: apiVersion + kind → the REST resource (plural name) and its scope,
 * so any kind works, custom resources included, without a built-in table.
 *
 * A CustomResourceDefinition applied earlier in the same run defines kinds the
 * server does not serve yet; `define()` registers them so later documents resolve
 * (the manifest handler waits for the CRD to be Established before using them).
 *
 * Also here: resolveResourceType() turns a kubectl-style type name (cm,
 * configmaps, deployments.apps, a CRD's short name) into a resource, for
 * `kube-watch object <Type> …`.
 */
import { CniNodeError } from '../core/errors.js';
import type { KubeClient } from './client.js';

export interface ResourceInfo {
  /** "" for the core group. */
  group: string;
  version: string;
  /** group/version, or just the version for the core group. */
  apiVersion: string;
  kind: string;
  /** The plural resource name used in paths, e.g. clusterrolebindings. */
  resource: string;
  namespaced: boolean;
  /** Set when the kind comes from a CRD of this run that the server may not serve yet: the CRD's name. */
  definedByCrd?: string;
}

/** A resource type as a watch needs it. */
export type ResourceType = Pick<ResourceInfo, 'group' | 'version' | 'resource' | 'kind' | 'namespaced'>;

interface APIResource {
  name: string;
  singularName?: string;
  shortNames?: string[];
  kind: string;
  namespaced: boolean;
  verbs?: string[];
}

interface APIResourceList {
  groupVersion?: string;
  resources?: APIResource[];
}

export interface Resolution {
  info?: ResourceInfo;
  /** When info is undefined: why, for the operator. */
  problem?: string;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i === -1 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

/** The collection path (…/namespaces/NS/resource) or object path (…/NAME) of a resource. */
export function resourcePath(info: Pick<ResourceInfo, 'group' | 'version' | 'resource' | 'namespaced'>, namespace?: string, name?: string): string {
  const base = info.group === '' ? `/api/${info.version}` : `/apis/${info.group}/${info.version}`;
  const ns = info.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${info.resource}${name !== undefined ? `/${encodeURIComponent(name)}` : ''}`;
}

export class Discovery {
  /** group/version → its resources (undefined: the server does not serve that group/version). */
  private readonly lists = new Map<string, Promise<APIResourceList | undefined>>();
  private readonly defined = new Map<string, ResourceInfo>();
  private groups: Promise<Map<string, string[]>> | undefined;

  constructor(private readonly client: Pick<KubeClient, 'request' | 'server'>) {}

  /** Registers a kind defined by a CRD of this run (see crdResourceInfos in manifests.ts). */
  define(info: ResourceInfo): void {
    this.defined.set(`${info.apiVersion}|${info.kind}`, info);
  }

  /** Forgets what the server said about `apiVersion` (all when omitted), e.g. once a CRD became Established. */
  invalidate(apiVersion?: string): void {
    if (apiVersion === undefined) {
      this.lists.clear();
      this.groups = undefined;
    } else {
      this.lists.delete(apiVersion);
      this.groups = undefined;
    }
  }

  /**
   * Resolves a kind. API errors other than "not served" (unreachable, 401, …) are
   * thrown; an unknown kind is a Resolution with a problem, not an exception.
   */
  async resolve(apiVersion: string, kind: string): Promise<Resolution> {
    const { group, version } = splitApiVersion(apiVersion);
    const list = await this.list(apiVersion);
    const resources = (list?.resources ?? []).filter((r) => !r.name.includes('/'));
    const found = resources.find((r) => r.kind === kind);
    if (found) return { info: { group, version, apiVersion, kind, resource: found.name, namespaced: found.namespaced } };
    const defined = this.defined.get(`${apiVersion}|${kind}`);
    if (defined) return { info: defined };

    let problem: string;
    if (list) {
      const near = resources.find((r) => r.kind.toLowerCase() === kind.toLowerCase());
      problem = `unknown kind "${kind}": apiVersion ${apiVersion} on the API server at ${this.client.server} has no such kind${near ? ` (did you mean "${near.kind}"?)` : ''}`;
    } else {
      const served = (await this.servedGroups()).get(group);
      const hint = served?.length
        ? ` (the server serves ${group === '' ? 'the core group' : `group ${group}`} in version${served.length > 1 ? 's' : ''} ${served.join(', ')})`
        : group === ''
          ? ''
          : ' (is its CustomResourceDefinition installed? It may come earlier in the same run)';
      problem = `unknown kind "${kind}": the API server at ${this.client.server} does not serve apiVersion ${apiVersion}${hint}`;
    }
    return { problem };
  }

  /** See resolveResourceType(). */
  async resolveType(type: string): Promise<ResourceType> {
    const wanted = type.trim().toLowerCase();
    if (wanted === '') throw new CniNodeError('usage', 'the object type is empty (e.g. configmap)');
    const builtin = BUILTIN.find((b) => b.names.includes(wanted));
    if (builtin) return builtin.type;
    // "resource", "resource.group" or "resource.version.group".
    const [head, ...rest] = wanted.split('.');
    const served = await this.servedGroups();
    const { group, version } = groupOfType(rest, served, type, this.client.server);
    const matches = (r: APIResource): boolean =>
      !r.name.includes('/') &&
      (r.verbs === undefined || r.verbs.includes('watch')) &&
      [r.name, r.singularName ?? '', r.kind.toLowerCase(), ...(r.shortNames ?? [])].some((n) => n !== '' && n.toLowerCase() === head);
    for (const [g, versions] of served) {
      if (group !== undefined && g !== group) continue;
      // Only the preferred version of each group, unless a version was named.
      for (const v of version !== undefined ? versions.filter((x) => x === version) : versions.slice(0, 1)) {
        const found = (await this.list(g === '' ? v : `${g}/${v}`, true))?.resources?.find(matches);
        if (found) return { group: g, version: v, resource: found.name, kind: found.kind, namespaced: found.namespaced };
      }
    }
    throw new CniNodeError(
      'invalid',
      `unknown object type "${type}": the API server at ${this.client.server} has no resource of that name that can be watched (try e.g. configmap, pod, node)`,
    );
  }

  /** The resources of `apiVersion`; undefined when the server does not serve it (or, if `unavailableOk`, cannot say now: 503). */
  private list(apiVersion: string, unavailableOk = false): Promise<APIResourceList | undefined> {
    let p = this.lists.get(apiVersion);
    if (!p) {
      const { group, version } = splitApiVersion(apiVersion);
      const path = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
      p = this.client.request<unknown>({ method: 'GET', path, accept: unavailableOk ? [404, 503] : [404] }).then((res) => {
        if (res.status === 503) this.lists.delete(apiVersion); // an aggregated API that is down: ask again next time
        return res.status === 404 || res.status === 503 ? undefined : { resources: resourcesOf(res.body) };
      });
      this.lists.set(apiVersion, p);
      p.catch(() => this.lists.delete(apiVersion));
    }
    return p;
  }

  /** group → served versions (preferred first), from /api and /apis. */
  private servedGroups(): Promise<Map<string, string[]>> {
    this.groups ??= (async () => {
      const out = new Map<string, string[]>();
      const core = await this.client.request<{ versions?: unknown } | undefined>({ method: 'GET', path: '/api', accept: [404] });
      out.set('', arrayOf(core.body?.versions).filter(isDnsLabel));
      const apis = await this.client.request<{ groups?: unknown } | undefined>({ method: 'GET', path: '/apis', accept: [404] });
      for (const g of arrayOf(apis.body?.groups) as { name?: unknown; versions?: unknown; preferredVersion?: { version?: unknown } }[]) {
        // Names from the server go into request paths: only well-formed ones are used.
        if (!isGroupName(g.name)) continue;
        const versions = arrayOf(g.versions)
          .map((v) => (v as { version?: unknown }).version)
          .filter(isDnsLabel);
        const pref = g.preferredVersion?.version;
        out.set(g.name, isDnsLabel(pref) ? [pref, ...versions.filter((v) => v !== pref)] : versions);
      }
      return out;
    })();
    this.groups.catch(() => (this.groups = undefined));
    return this.groups;
  }
}

// ---- what discovery documents may contain ------------------------------------
//
// Discovery documents are untrusted input like every answer: group, version and
// resource names go into request paths, kinds into messages. Entries whose names
// are not well-formed (a Kubernetes name: lowercase letters, digits, '-' and '.';
// a kind: letters and digits) are ignored, as a server could not have served them.

function arrayOf(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function isDnsLabel(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v);
}

function isGroupName(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v);
}

/** The well-formed resources of an APIResourceList (subresources, `pods/log`, included). */
function resourcesOf(body: unknown): APIResource[] {
  const out: APIResource[] = [];
  for (const r of arrayOf((body as { resources?: unknown } | null | undefined)?.resources) as Record<string, unknown>[]) {
    if (typeof r !== 'object' || r === null) continue;
    const { name, kind, namespaced, singularName, shortNames, verbs } = r;
    if (typeof name !== 'string' || !name.split('/').every(isGroupName) || typeof kind !== 'string' || !/^[A-Za-z][A-Za-z0-9]{0,62}$/.test(kind)) continue;
    out.push({
      name,
      kind,
      namespaced: namespaced === true,
      ...(isGroupName(singularName) ? { singularName } : {}),
      ...(Array.isArray(shortNames) ? { shortNames: shortNames.filter(isGroupName) } : {}),
      ...(Array.isArray(verbs) ? { verbs: verbs.filter((v): v is string => typeof v === 'string') } : {}),
    });
  }
  return out;
}

// ---- kubectl-style resource types ----------------------------------------------

/** Common built-in types, resolved without asking the server. */
const BUILTIN: ReadonlyArray<{ names: string[]; type: ResourceType }> = [
  { names: ['configmap', 'configmaps', 'cm'], type: { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true } },
  { names: ['secret', 'secrets'], type: { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true } },
  { names: ['pod', 'pods', 'po'], type: { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true } },
  { names: ['node', 'nodes', 'no'], type: { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false } },
  { names: ['namespace', 'namespaces', 'ns'], type: { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false } },
  { names: ['service', 'services', 'svc'], type: { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true } },
  { names: ['endpoints', 'ep'], type: { group: '', version: 'v1', resource: 'endpoints', kind: 'Endpoints', namespaced: true } },
  {
    names: ['serviceaccount', 'serviceaccounts', 'sa'],
    type: { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  },
  {
    names: ['persistentvolumeclaim', 'persistentvolumeclaims', 'pvc'],
    type: { group: '', version: 'v1', resource: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
  },
  {
    names: ['persistentvolume', 'persistentvolumes', 'pv'],
    type: { group: '', version: 'v1', resource: 'persistentvolumes', kind: 'PersistentVolume', namespaced: false },
  },
  { names: ['event', 'events', 'ev'], type: { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true } },
];

/**
 * Resolves a kubectl-style type (`configmap`, `configmaps`, `cm`, `ConfigMap`,
 * `deployments.apps`, `deployments.v1.apps`, a CRD's plural, singular or short
 * name) to a resource that can be watched. Common core types come from a built-in
 * table; anything else from API discovery (the core group first, then each group's
 * preferred version), asked afresh on every call. Throws a CniNodeError ('invalid')
 * naming the type when nothing matches.
 */
export function resolveResourceType(client: Pick<KubeClient, 'request' | 'server'>, type: string): Promise<ResourceType> {
  return new Discovery(client).resolveType(type);
}

/** The group (and version) a type's suffix names: "apps", "v1.apps"; neither for none. */
function groupOfType(rest: string[], served: Map<string, string[]>, type: string, server: string): { group?: string; version?: string } {
  if (rest.length === 0) return {};
  const full = rest.join('.');
  if (served.has(full)) return { group: full };
  const group = rest.slice(1).join('.');
  if (rest.length > 1 && served.has(group)) return { group, version: rest[0] as string };
  throw new CniNodeError('invalid', `unknown object type "${type}": the API server at ${server} serves no API group "${full}"`);
}
