/**
 * The engine's handler for `--manifests`: Kubernetes objects from manifest files.
 * prepare() reads, checks and plans everything and changes nothing
 * (manifest-prepare.ts); execute() applies in file and document order (waiting for
 * a CRD to be Established before objects of its kinds) or deletes in reverse;
 * the record keeps each manifest's sha256 and the objects it created. Loaded
 * lazily by the engine (it pulls in the Kubernetes client).
 */
import { aggregate, CniNodeError } from '../core/errors.js';
import { objectRefProblem, showName } from '../core/names.js';
import type { PlannedAction } from '../core/plan.js';
import type { EngineOptions, ItemRecord, ItemReport, KindHandler } from '../core/contracts.js';
import { createKubeClient, type KubeClient, type KubeClientOptions } from './client.js';
import { Discovery, type ResourceInfo } from './discovery.js';
import { inContext } from './errors.js';
import { actionKey, ManifestPreparation, type PreparedFile, type PreparedObject } from './manifest-prepare.js';
import { emptyCounts, refKey, summarize, type KubeObject, type ObjectRef } from './manifests.js';
import { applyObject, commitApply, deleteObject, objectExists, waitForCrdEstablished } from './objects.js';

/** The node record's section for manifests. */
export const RECORD_KIND = 'manifest';

export interface ManifestHandlerDeps {
  options: EngineOptions;
  /** Undefined when the node configs dir is not available: nothing is recorded, and `:Current` must be given. */
  record: ItemRecord | undefined;
  /** Overrides for the client (tests: a shorter retry policy, request counting). */
  clientOptions?: Partial<KubeClientOptions>;
}

export async function createManifestHandler(deps: ManifestHandlerDeps): Promise<KindHandler> {
  return new ManifestHandler(deps);
}

class ManifestHandler implements KindHandler {
  readonly kind = 'manifest' as const;
  private readonly options: EngineOptions;
  private readonly record: ItemRecord | undefined;
  private client: KubeClient | undefined;
  private discovery: Discovery | undefined;
  private readonly prepared = new Map<string, PreparedFile>();
  /** CRDs known to be Established in this run. */
  private readonly established = new Set<string>();

  constructor(private readonly deps: ManifestHandlerDeps) {
    this.options = deps.options;
    this.record = deps.record;
  }

  async recorded(): Promise<string[]> {
    if (!this.record) {
      throw new CniNodeError(
        'missing',
        `manifests: cni-node's record of the objects it created is kept in the node configs dir (${this.options.dirs.hostConfigsDir}), which is not available; ` +
          `mount it (--host-configs-dir / CNI_NODE_HOST_CONFIGS_DIR) or give the current list explicitly: --manifests=desired.yaml:current.yaml`,
      );
    }
    return this.record.names(RECORD_KIND);
  }

  /** Reads, checks and plans everything (manifest-prepare.ts); changes nothing. */
  async prepare(actions: readonly PlannedAction[]): Promise<{ problems: CniNodeError[]; waiting: Map<string, string[]> }> {
    const preparation = new ManifestPreparation(
      {
        options: this.options,
        recordedRefs: (name) => this.recordedRefs(name),
        recordedSha256: (name) => this.record?.get(RECORD_KIND, name)?.sha256,
        connect: async () => {
          const client = await this.getClient();
          return { client, discovery: this.discovery as Discovery };
        },
      },
      actions.filter((a) => a.kind === 'manifest'),
    );
    const { files, problems } = await preparation.run();
    for (const f of files) this.prepared.set(actionKey(f.action), f);
    return { problems, waiting: new Map() };
  }

  async execute(action: PlannedAction, dryRun: boolean): Promise<ItemReport> {
    let pf = this.prepared.get(actionKey(action));
    if (!pf) {
      const { problems } = await this.prepare([action]);
      if (problems.length > 0)
        throw problems.length === 1
          ? problems[0]
          : aggregate(
              'invalid',
              `manifest ${action.name}`,
              problems.map((p) => p.describe()),
            );
      pf = this.prepared.get(actionKey(action));
      if (!pf) throw new CniNodeError('invalid', `internal error: manifest ${action.name} was not prepared`);
    }
    const client = await this.getClient();
    return action.op === 'ensure' ? this.ensure(client, pf, dryRun) : this.remove(client, pf, dryRun);
  }

  private async ensure(client: KubeClient, pf: PreparedFile, dryRun: boolean): Promise<ItemReport> {
    const { action } = pf;
    const counts = emptyCounts();
    const previous = this.record?.get(RECORD_KIND, action.name);
    const signal = this.options.signal;
    const sig = signal ? { signal } : {};
    const done: ObjectRef[] = [];
    let unverified = 0;
    let current: PreparedObject | undefined;
    try {
      for (const o of pf.objects) {
        current = o;
        const info = o.info as ResourceInfo;
        const object = o.object as KubeObject;
        if (o.plan) {
          // Planned (and checked by the server) in prepare().
          if (dryRun) counts[o.plan.outcome === 'create' ? 'created' : o.plan.outcome === 'update' ? 'updated' : 'unchanged']++;
          else counts[(await commitApply(client, info, object, o.ref, o.plan, sig)).outcome]++;
        } else {
          // Its CRD or namespace comes from this run: only now can the server see it.
          const crd = info.definedByCrd;
          if (dryRun) {
            const blocked = crd !== undefined ? !(await this.crdExists(client, crd)) : !(await this.namespaceExists(client, o.ref.namespace));
            if (blocked) {
              counts.created++;
              unverified++;
              continue;
            }
          } else if (crd !== undefined && !this.established.has(crd)) {
            await waitForCrdEstablished(client, crd, sig);
            this.established.add(crd);
          }
          counts[(await applyObject(client, info, object, o.ref, { dryRun, ...sig })).outcome]++;
        }
        done.push(o.ref);
        if (o.crdName !== undefined && !dryRun) {
          await waitForCrdEstablished(client, o.crdName, sig);
          this.established.add(o.crdName);
        }
      }
      current = undefined;
      for (const p of pf.prune) {
        current = p;
        if (!p.info) continue;
        if ((await deleteObject(client, p.info, p.ref, { dryRun, ...sig })) === 'deleted') counts.pruned++;
      }
    } catch (e) {
      if (!dryRun && this.record && done.length > 0) {
        // Keep what was created on record, so uninstall can remove it; an empty sha256 never matches.
        const prev = this.recordedRefs(action.name);
        const seen = new Set(done.map(refKey));
        this.record.set(RECORD_KIND, { name: action.name, sha256: '', meta: { objects: [...done, ...prev.filter((r) => !seen.has(refKey(r)))] } });
      }
      throw current ? inContext(e, current.where) : e;
    }
    if (!dryRun && this.record) {
      this.record.set(RECORD_KIND, { name: action.name, sha256: pf.sha256 ?? '', meta: { objects: pf.objects.map((o) => o.ref) } });
    }
    const total = pf.objects.length;
    let result: ItemReport['result'];
    if (total > 0 && counts.created === total) result = 'installed';
    else if (counts.created === 0 && counts.updated === 0 && counts.pruned === 0) result = previous || total > 0 ? 'unchanged' : 'installed';
    else result = 'updated';
    let detail = summarize(total, counts, dryRun);
    if (unverified > 0)
      detail += `; ${unverified} not checked by the server (${unverified === 1 ? 'its' : 'their'} CustomResourceDefinition or namespace is created by this run)`;
    const report: ItemReport = { kind: 'manifest', name: action.name, result, detail };
    if (dryRun) report.dryRun = true;
    return report;
  }

  private async remove(client: KubeClient, pf: PreparedFile, dryRun: boolean): Promise<ItemReport> {
    const { action } = pf;
    const counts = emptyCounts();
    const signal = this.options.signal;
    for (const o of pf.objects) {
      if (o.keptBy !== undefined) {
        counts.kept++;
        continue;
      }
      if (!o.info) {
        counts.absent++;
        continue;
      }
      try {
        counts[await deleteObject(client, o.info, o.ref, { dryRun, ...(signal ? { signal } : {}) })]++;
      } catch (e) {
        throw inContext(e, o.where);
      }
    }
    if (!dryRun && this.record) this.record.delete(RECORD_KIND, action.name);
    const report: ItemReport = {
      kind: 'manifest',
      name: action.name,
      result: counts.deleted > 0 || counts.kept > 0 ? 'removed' : 'absent',
      detail: summarize(pf.objects.length, counts, dryRun),
    };
    if (dryRun) report.dryRun = true;
    return report;
  }

  async commit(): Promise<void> {
    // The record is updated in memory as each manifest is carried out (also when one
    // fails part way); saved here, atomically, and only if it changed.
    await this.record?.save();
  }

  async close(): Promise<void> {
    this.client?.close();
    this.client = undefined;
  }

  private async getClient(): Promise<KubeClient> {
    if (!this.client) {
      const opts: KubeClientOptions = { env: this.options.env, ...this.deps.clientOptions };
      if (this.options.kubeconfig) opts.kubeconfig = this.options.kubeconfig;
      if (this.options.signal) opts.signal = this.options.signal;
      this.client = await createKubeClient(opts);
      this.discovery = new Discovery(this.client);
    }
    return this.client;
  }

  private async crdExists(client: KubeClient, name: string): Promise<boolean> {
    const info: ResourceInfo = {
      group: 'apiextensions.k8s.io',
      version: 'v1',
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      resource: 'customresourcedefinitions',
      namespaced: false,
    };
    return objectExists(client, info, { apiVersion: info.apiVersion, kind: info.kind, name }, this.options.signal);
  }

  private async namespaceExists(client: KubeClient, namespace: string | undefined): Promise<boolean> {
    if (namespace === undefined) return true;
    const info: ResourceInfo = { group: '', version: 'v1', apiVersion: 'v1', kind: 'Namespace', resource: 'namespaces', namespaced: false };
    return objectExists(client, info, { apiVersion: 'v1', kind: 'Namespace', name: namespace }, this.options.signal);
  }

  /**
   * The object references the record holds for manifest `name`. Each must pass
   * names.ts (they build DELETE URLs); a bad one is refused with a warning naming
   * the record file, and never sent to the API.
   */
  private recordedRefs(name: string): ObjectRef[] {
    const objects = this.record?.get(RECORD_KIND, name)?.meta?.['objects'];
    if (objects === undefined) return [];
    const where = `cni-node's record ${this.record?.file}: manifest ${name}`;
    if (!Array.isArray(objects)) {
      this.warnOnce(`${where}: the list of objects is not a list; refused, nothing is deleted on its word`);
      return [];
    }
    const good: ObjectRef[] = [];
    for (const ref of objects) {
      const bad = objectRefProblem(ref);
      if (bad) this.warnOnce(`${where}: object reference ${showName(JSON.stringify(ref) ?? String(ref), 120)}: ${bad}; refused, never sent to the API`);
      else good.push(ref as ObjectRef);
    }
    return good;
  }

  private readonly warned = new Set<string>();
  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.options.reporter.warn(message);
  }
}
