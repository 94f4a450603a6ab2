/**
 * The engine's handler for `--manifests`: Kubernetes objects from manifest files.
 *
 *  prepare: read every manifest, substitute the environment, parse, check each
 *           document, resolve every kind through discovery (kinds of a CRD earlier
 *           in the run included), and plan every object with a GET and, unless it
 *           is plainly unchanged, a server-side dry-run apply — so the server
 *           validates each object and checks the permission to write it before
 *           anything changes. Nothing that changes anything is sent; every problem
 *           is returned at once, in file and document order.
 *  execute: ensure = server-side apply, in file and document order, of the objects
 *           the plan says differ (see objects.ts: an unchanged re-apply writes
 *           nothing), waiting for a CRD to be Established before objects of its
 *           kinds; prune objects dropped from a kept manifest. remove = delete in
 *           reverse document order; an object already gone is success.
 *  record:  kind "manifest" in the node record: the manifest's sha256 and the
 *           objects it created, so `apply` without `:Current` and pruning know
 *           what is cni-node's.
 *
 * Loaded lazily by the engine (it pulls in the Kubernetes client).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ofItem, aggregate, CniNodeError, reason, type ErrorKind } from '../core/errors.js';
import { nameProblem, objectRefProblem, showName } from '../core/names.js';
import type { PlannedAction } from '../core/plan.js';
import type { EngineOptions, ItemReport, KindHandler } from '../engine/types.js';
import { INPUT_LIMITS } from '../node/input-limits.js';
import { readRegularBytes } from '../node/read.js';
import { RECORD_FILE, type NodeRecord } from '../node/record.js';
import { createKubeClient, isStatus, type KubeClient, type KubeClientOptions } from './client.js';
import { Discovery, type ResourceInfo } from './discovery.js';
import { inContext, KubeUnreachableError } from './errors.js';
import {
  crdResourceInfos,
  describeRef,
  emptyCounts,
  isCrd,
  objectToApply,
  parseManifest,
  refKey,
  renderManifest,
  summarize,
  type KubeObject,
  type ObjectRef,
} from './manifests.js';
import { applyObject, commitApply, deleteObject, objectExists, planApply, waitForCrdEstablished, type ApplyPlan } from './objects.js';

/** How many objects prepare() plans at once (reads and dry runs only). */
const PLAN_CONCURRENCY = 8;

/** The node record's section for manifests. */
export const RECORD_KIND = 'manifest';

export interface ManifestHandlerDeps {
  options: EngineOptions;
  /** Undefined when the node configs dir is not available: nothing is recorded, and `:Current` must be given. */
  record: NodeRecord | undefined;
  /** Overrides for the client (tests: a shorter retry policy, request counting). */
  clientOptions?: Partial<KubeClientOptions>;
}

export async function createManifestHandler(deps: ManifestHandlerDeps): Promise<KindHandler> {
  return new ManifestHandler(deps);
}

interface PreparedObject {
  ref: ObjectRef;
  /** "crb.yaml document 2 (ClusterRoleBinding x)", for messages. */
  where: string;
  /** Undefined when the kind is not served (only on removal: then the object cannot exist). */
  info?: ResourceInfo;
  /** The object to apply (ensure only). */
  object?: KubeObject;
  /** For a CRD: its name, to wait until it is Established. */
  crdName?: string;
  /** Ensure: what applying it will do, found by prepare() (reads and a server-side dry run). */
  plan?: ApplyPlan;
  /** Ensure: why the server could not check it in prepare() (its CRD or namespace is created by this run). */
  deferred?: string;
  /** On removal: another manifest of this run still wants the object (its name). */
  keptBy?: string;
  /** Position in the run (file, document), to report problems in order. */
  order?: number;
}

interface PreparedFile {
  action: PlannedAction;
  /** sha256 of the rendered text; undefined when removing from the record alone. */
  sha256?: string;
  objects: PreparedObject[];
  /** Objects the record says this manifest created that its new content no longer has (apply, kept manifests). */
  prune: PreparedObject[];
  /** The rendered text is the one recorded as applied last time. */
  sameAsRecorded?: boolean;
}

class ManifestHandler implements KindHandler {
  readonly kind = 'manifest' as const;
  private readonly options: EngineOptions;
  private readonly record: NodeRecord | undefined;
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

  async prepare(actions: readonly PlannedAction[]): Promise<{ problems: CniNodeError[]; waiting: Map<string, string[]> }> {
    // Problems are reported in file and document order, whichever step found them.
    const found: { order: number; error: CniNodeError }[] = [];
    const problem = (order: number, error: CniNodeError): void => void found.push({ order, error });
    const result = (): { problems: CniNodeError[]; waiting: Map<string, string[]> } => ({
      problems: found.sort((a, b) => a.order - b.order).map((f) => f.error),
      waiting: new Map(),
    });
    const mine = actions.filter((a) => a.kind === 'manifest');
    const fileOrder = new Map(mine.map((a, i) => [key(a), (i + 1) * 1e6]));
    const docOrder = (a: PlannedAction, d: { index: number; item?: number }): number => (fileOrder.get(key(a)) ?? 0) + d.index * 1e3 + (d.item ?? 0);
    const loaded: { action: PlannedAction; sha256?: string; docs: ReturnType<typeof parseManifest>['documents']; fromRecord: ObjectRef[] }[] = [];

    // 1. Files: read, substitute, parse. No API involved.
    for (const action of mine) {
      const bad = nameProblem(action.name);
      if (bad) {
        problem(fileOrder.get(key(action)) ?? 0, ofItem(new CniNodeError('invalid', `manifest: ${bad}`), 'manifest', action.name));
        continue;
      }
      const file = path.join(this.options.dirs.manifestsDir, action.name);
      const recordedRefs = this.recordedRefs(action.name);
      let fileProblems: string[] = [];
      let fileKind: ErrorKind = 'invalid';
      let docs: ReturnType<typeof parseManifest>['documents'] = [];
      let sha256: string | undefined;
      try {
        // Only a regular file, up to the cap (read.ts): a FIFO here must not hang the
        // run while it holds the node configs dir's lock. Links are followed (ConfigMap volumes).
        const bytes = await readRegularBytes(file, { maxBytes: INPUT_LIMITS.manifest, what: `manifest ${action.name}` });
        if (bytes === undefined) {
          fileKind = 'missing';
          fileProblems = [`manifest ${action.name} not found in ${this.options.dirs.manifestsDir}`];
        } else {
          const rendered = renderManifest(bytes.toString('utf8'), this.options.env, action.name);
          sha256 = createHash('sha256').update(rendered).digest('hex');
          const parsed = parseManifest(rendered, action.name);
          docs = parsed.documents;
          fileProblems = parsed.problems;
        }
      } catch (e) {
        if (e instanceof CniNodeError) {
          fileKind = e.kind;
          fileProblems = [e.describe()];
        } else {
          fileKind = 'io';
          fileProblems = [`manifest ${action.name}: cannot read ${file}: ${reason(e)}`];
        }
      }
      if (fileProblems.length > 0) {
        if (action.op === 'remove' && recordedRefs.length > 0) {
          // Removing: what cni-node recorded creating is enough to delete it.
          this.options.reporter.warn(
            `${fileProblems.join('; ')}; removing the ${recordedRefs.length} object(s) cni-node recorded creating from it instead`,
          );
          loaded.push({ action, docs: [], fromRecord: recordedRefs });
        } else {
          for (const p of fileProblems) problem(fileOrder.get(key(action)) ?? 0, ofItem(new CniNodeError(fileKind, p), 'manifest', action.name));
        }
        continue;
      }
      const entry: (typeof loaded)[number] = { action, docs, fromRecord: action.op === 'remove' ? recordedRefs : [] };
      if (sha256 !== undefined) entry.sha256 = sha256;
      loaded.push(entry);
    }
    if (loaded.length === 0) return result();

    // 2. Kinds, through discovery (reads only).
    let client: KubeClient;
    try {
      client = await this.getClient();
    } catch (e) {
      problem(Infinity, asCniNodeError(e));
      return result();
    }
    const discovery = this.discovery as Discovery;
    const ns = client.namespace;
    const files: PreparedFile[] = [];
    try {
      for (const { action, sha256, docs, fromRecord } of loaded) {
        const pf: PreparedFile = { action, objects: [], prune: [] };
        if (sha256 !== undefined) pf.sha256 = sha256;
        for (const doc of docs) {
          const r = await discovery.resolve(doc.apiVersion, doc.kind);
          if (!r.info) {
            if (action.op === 'remove') {
              // Not served: no such object can exist.
              const ref: ObjectRef = { apiVersion: doc.apiVersion, kind: doc.kind, name: doc.name };
              if (doc.namespace) ref.namespace = doc.namespace;
              pf.objects.push({ ref, where: doc.where });
            } else {
              problem(docOrder(action, doc), ofItem(new CniNodeError('invalid', `${doc.where}: ${r.problem ?? 'unknown kind'}`), 'manifest', action.name));
            }
            continue;
          }
          const { object, ref } = objectToApply(doc, r.info, ns);
          const po: PreparedObject = { ref, where: doc.where, info: r.info, order: docOrder(action, doc) };
          if (action.op === 'ensure') {
            po.object = object;
            if (isCrd(doc)) {
              po.crdName = doc.name;
              for (const info of crdResourceInfos(object)) discovery.define(info);
            }
          }
          pf.objects.push(po);
        }
        if (action.op === 'remove') {
          pf.objects.reverse();
          // Objects recorded as created from this manifest that its content no longer has.
          const inFile = new Set(pf.objects.map((o) => refKey(o.ref)));
          for (const ref of [...fromRecord].reverse()) {
            if (inFile.has(refKey(ref))) continue;
            pf.objects.push(await this.resolveRef(ref, `manifest ${action.name} (recorded ${describeRef(ref)})`));
          }
        }
        files.push(pf);
      }
    } catch (e) {
      problem(Infinity, asCniNodeError(e));
      return result();
    }

    // 3. Objects another manifest of this run still wants are neither deleted nor pruned.
    const wanted = new Map<string, string>();
    for (const f of files) if (f.action.op === 'ensure') for (const o of f.objects) wanted.set(refKey(o.ref), f.action.name);
    for (const f of files) {
      if (f.action.op === 'remove') {
        for (const o of f.objects) {
          const by = wanted.get(refKey(o.ref));
          if (by !== undefined) o.keptBy = by;
        }
      } else if (f.action.why === 'kept') {
        const recorded = this.recordedRefs(f.action.name);
        try {
          for (const ref of [...recorded].reverse()) {
            if (wanted.has(refKey(ref))) continue;
            f.prune.push(await this.resolveRef(ref, `manifest ${f.action.name} (recorded ${describeRef(ref)})`));
          }
        } catch (e) {
          problem(fileOrder.get(key(f.action)) ?? 0, ofItem(asCniNodeError(e), 'manifest', f.action.name));
        }
      }
      this.prepared.set(key(f.action), f);
    }

    // 4. Plan every object to apply: reads and server-side dry runs, which also make
    //    the server validate each object and check the permission to write it, so an
    //    invalid or forbidden object stops the run before anything is changed.
    const namespacesInRun = new Set<string>();
    for (const f of files) {
      if (f.action.op !== 'ensure') continue;
      for (const o of f.objects) if (o.ref.kind === 'Namespace' && o.ref.apiVersion === 'v1') namespacesInRun.add(o.ref.name);
    }
    const jobs: { f: PreparedFile; o: PreparedObject }[] = [];
    for (const f of files) {
      if (f.action.op !== 'ensure') continue;
      const prev = this.record?.get(RECORD_KIND, f.action.name);
      const sameAsRecorded = prev !== undefined && prev.sha256 !== '' && prev.sha256 === f.sha256;
      for (const o of f.objects) {
        if (o.info?.definedByCrd !== undefined) o.deferred = `its CustomResourceDefinition ${o.info.definedByCrd} is created by this run`;
        else jobs.push({ f, o });
      }
      f.sameAsRecorded = sameAsRecorded;
    }
    let unreachable: CniNodeError | undefined;
    const planProblems: { order: number; error: CniNodeError }[] = [];
    await pool(jobs, PLAN_CONCURRENCY, async ({ f, o }) => {
      if (unreachable) return;
      try {
        const opts = { sameAsRecorded: f.sameAsRecorded === true, ...(this.options.signal ? { signal: this.options.signal } : {}) };
        o.plan = await planApply(client, o.info as ResourceInfo, o.object as KubeObject, o.ref, opts);
      } catch (e) {
        if (o.ref.namespace !== undefined && namespacesInRun.has(o.ref.namespace) && isStatus(e, 404)) {
          o.deferred = `its namespace ${o.ref.namespace} is created by this run`;
          return;
        }
        if (e instanceof KubeUnreachableError || (e instanceof CniNodeError && e.kind === 'interrupted')) {
          unreachable ??= e;
          return;
        }
        planProblems.push({ order: o.order ?? 0, error: ofItem(asCniNodeError(inContext(e, o.where)), 'manifest', f.action.name) });
      }
    });
    // Unreachable: one message, not one per object.
    if (unreachable) problem(Infinity, unreachable);
    else found.push(...planProblems);
    return result();
  }

  async execute(action: PlannedAction, dryRun: boolean): Promise<ItemReport> {
    let pf = this.prepared.get(key(action));
    if (!pf) {
      const { problems } = await this.prepare([action]);
      if (problems.length > 0) throw problems.length === 1 ? problems[0] : aggregate('invalid', `manifest ${action.name}`, problems.map((p) => p.describe()));
      pf = this.prepared.get(key(action));
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
    if (unverified > 0) detail += `; ${unverified} not checked by the server (${unverified === 1 ? 'its' : 'their'} CustomResourceDefinition or namespace is created by this run)`;
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
    const info: ResourceInfo = { group: 'apiextensions.k8s.io', version: 'v1', apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', resource: 'customresourcedefinitions', namespaced: false };
    return objectExists(client, info, { apiVersion: info.apiVersion, kind: info.kind, name }, this.options.signal);
  }

  private async namespaceExists(client: KubeClient, namespace: string | undefined): Promise<boolean> {
    if (namespace === undefined) return true;
    const info: ResourceInfo = { group: '', version: 'v1', apiVersion: 'v1', kind: 'Namespace', resource: 'namespaces', namespaced: false };
    return objectExists(client, info, { apiVersion: 'v1', kind: 'Namespace', name: namespace }, this.options.signal);
  }

  /** An object reference from the record, resolved (an unknown kind resolves to nothing: the object cannot exist). */
  private async resolveRef(ref: ObjectRef, where: string): Promise<PreparedObject> {
    const r = await (this.discovery as Discovery).resolve(ref.apiVersion, ref.kind);
    const po: PreparedObject = { ref, where };
    if (r.info) po.info = r.info;
    return po;
  }

  /**
   * The object references the record holds for manifest `name`. Each must pass
   * names.ts (they build DELETE URLs); a bad one is refused with a warning naming
   * the record file, and never sent to the API.
   */
  private recordedRefs(name: string): ObjectRef[] {
    const objects = this.record?.get(RECORD_KIND, name)?.meta?.['objects'];
    if (objects === undefined) return [];
    const where = `cni-node's record ${path.join(this.options.dirs.hostConfigsDir, RECORD_FILE)}: manifest ${name}`;
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

function key(a: PlannedAction): string {
  return `${a.op}\0${a.name}`;
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function asCniNodeError(e: unknown): CniNodeError {
  return e instanceof CniNodeError ? e : new CniNodeError('api', reason(e), [], { cause: e });
}
