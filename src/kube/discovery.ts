/**
 * API discovery: apiVersion + kind → the REST resource (plural name) and its scope,
 * so any kind works, custom resources included, without a built-in table.
 *
 * A CustomResourceDefinition applied earlier in the same run defines kinds the
 * server does not serve yet; `define()` registers them so later documents resolve
 * (the manifest handler waits for the CRD to be Established before using them).
 */
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

interface APIResourceList {
  groupVersion?: string;
  resources?: { name: string; kind: string; namespaced: boolean; verbs?: string[] }[];
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

  constructor(private readonly client: KubeClient) {}

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

  private list(apiVersion: string): Promise<APIResourceList | undefined> {
    let p = this.lists.get(apiVersion);
    if (!p) {
      const { group, version } = splitApiVersion(apiVersion);
      const path = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
      p = this.client.request<APIResourceList>({ method: 'GET', path, accept: [404] }).then((res) => (res.status === 404 ? undefined : res.body));
      this.lists.set(apiVersion, p);
      p.catch(() => this.lists.delete(apiVersion));
    }
    return p;
  }

  /** group → served versions (preferred first), from /api and /apis. */
  private servedGroups(): Promise<Map<string, string[]>> {
    this.groups ??= (async () => {
      const out = new Map<string, string[]>();
      const core = await this.client.request<{ versions?: string[] }>({ method: 'GET', path: '/api', accept: [404] });
      out.set('', core.body?.versions ?? []);
      const apis = await this.client.request<{ groups?: { name: string; versions?: { version: string }[]; preferredVersion?: { version: string } }[] }>({
        method: 'GET',
        path: '/apis',
        accept: [404],
      });
      for (const g of apis.body?.groups ?? []) {
        const versions = (g.versions ?? []).map((v) => v.version);
        const pref = g.preferredVersion?.version;
        out.set(g.name, pref ? [pref, ...versions.filter((v) => v !== pref)] : versions);
      }
      return out;
    })();
    this.groups.catch(() => (this.groups = undefined));
    return this.groups;
  }
}
