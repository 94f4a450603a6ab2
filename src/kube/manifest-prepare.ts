/**
 * The manifest handler's prepare() (manifest-handler.ts): everything is read,
 * checked and planned, and nothing that changes anything is sent. Four steps:
 * read the files, resolve their kinds, keep what another manifest still wants,
 * plan each object with the server. Every problem is returned at once, in file
 * and document order, whichever step found it.
 */
import path from 'node:path';
import type { EngineOptions } from '../core/contracts.js';
import { CniNodeError, ofItem, reason, type ErrorKind } from '../core/errors.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { nameProblem } from '../core/names.js';
import type { PlannedAction } from '../core/plan.js';
import { mapLimit } from '../sys/concurrency.js';
import { sha256 as digest } from '../sys/digest.js';
import { readRegularBytes } from '../sys/read.js';
import { isStatus, type KubeClient } from './client.js';
import type { Discovery, ResourceInfo } from './discovery.js';
import { inContext, KubeUnreachableError } from './errors.js';
import { crdResourceInfos, describeRef, isCrd, objectToApply, parseManifest, refKey, renderManifest, type KubeObject, type ObjectRef } from './manifests.js';
import { planApply, type ApplyPlan } from './objects.js';

/** How many objects are planned at once (reads and dry runs only). */
const PLAN_CONCURRENCY = 8;

export interface PreparedObject {
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

export interface PreparedFile {
  action: PlannedAction;
  /** sha256 of the rendered text; undefined when removing from the record alone. */
  sha256?: string;
  objects: PreparedObject[];
  /** Objects the record says this manifest created that its new content no longer has (apply, kept manifests). */
  prune: PreparedObject[];
  /** The rendered text is the one recorded as applied last time. */
  sameAsRecorded?: boolean;
}

/** What preparing needs from the handler. */
export interface PrepareContext {
  options: EngineOptions;
  /** The object references recorded for manifest `name` (refused ones left out, with a warning). */
  recordedRefs(name: string): ObjectRef[];
  /** The sha256 recorded for manifest `name`, if it is recorded. */
  recordedSha256(name: string): string | undefined;
  /** The API client and its discovery, made on first use. */
  connect(): Promise<{ client: KubeClient; discovery: Discovery }>;
}

type Documents = ReturnType<typeof parseManifest>['documents'];

interface LoadedFile {
  action: PlannedAction;
  sha256?: string;
  docs: Documents;
  /** On removal: the objects recorded as created from it. */
  fromRecord: ObjectRef[];
}

export function actionKey(a: PlannedAction): string {
  return `${a.op}\0${a.name}`;
}

export function asCniNodeError(e: unknown): CniNodeError {
  return e instanceof CniNodeError ? e : new CniNodeError('api', reason(e), [], { cause: e });
}

export class ManifestPreparation {
  private readonly found: { order: number; error: CniNodeError }[] = [];
  private readonly fileOrder: Map<string, number>;

  constructor(
    private readonly ctx: PrepareContext,
    private readonly actions: readonly PlannedAction[],
  ) {
    this.fileOrder = new Map(actions.map((a, i) => [actionKey(a), (i + 1) * 1e6]));
  }

  /** The prepared files (none if a step could not be done), and every problem in order. */
  async run(): Promise<{ files: PreparedFile[]; problems: CniNodeError[] }> {
    const loaded = await this.load();
    if (loaded.length === 0) return this.result([]);
    let files: PreparedFile[];
    let api: { client: KubeClient; discovery: Discovery };
    try {
      api = await this.ctx.connect();
      files = await this.resolveKinds(loaded, api);
    } catch (e) {
      this.problem(Infinity, asCniNodeError(e));
      return this.result([]);
    }
    await this.keepWanted(files, api.discovery);
    await this.plan(files, api.client);
    return this.result(files);
  }

  private result(files: PreparedFile[]): { files: PreparedFile[]; problems: CniNodeError[] } {
    return { files, problems: this.found.sort((a, b) => a.order - b.order).map((f) => f.error) };
  }

  private problem(order: number, error: CniNodeError): void {
    this.found.push({ order, error });
  }

  private orderOf(a: PlannedAction, doc?: { index: number; item?: number }): number {
    return (this.fileOrder.get(actionKey(a)) ?? 0) + (doc ? doc.index * 1e3 + (doc.item ?? 0) : 0);
  }

  /** 1. Files: read, substitute, parse. No API involved. */
  private async load(): Promise<LoadedFile[]> {
    const loaded: LoadedFile[] = [];
    for (const action of this.actions) {
      const bad = nameProblem(action.name);
      if (bad) {
        this.problem(this.orderOf(action), ofItem(new CniNodeError('invalid', `manifest: ${bad}`), 'manifest', action.name));
        continue;
      }
      const recordedRefs = this.ctx.recordedRefs(action.name);
      const read = await this.readOne(action);
      if (read.problems.length > 0) {
        if (action.op === 'remove' && recordedRefs.length > 0) {
          // Removing: what cni-node recorded creating is enough to delete it.
          this.ctx.options.reporter.warn(
            `${read.problems.join('; ')}; removing the ${recordedRefs.length} object(s) cni-node recorded creating from it instead`,
          );
          loaded.push({ action, docs: [], fromRecord: recordedRefs });
        } else {
          for (const p of read.problems) this.problem(this.orderOf(action), ofItem(new CniNodeError(read.kind, p), 'manifest', action.name));
        }
        continue;
      }
      loaded.push({
        action,
        docs: read.docs,
        fromRecord: action.op === 'remove' ? recordedRefs : [],
        ...(read.sha256 !== undefined ? { sha256: read.sha256 } : {}),
      });
    }
    return loaded;
  }

  /** One manifest file: its documents and sha256, or its problems (and their kind). */
  private async readOne(action: PlannedAction): Promise<{ docs: Documents; sha256?: string; problems: string[]; kind: ErrorKind }> {
    const { manifestsDir } = this.ctx.options.dirs;
    const file = path.join(manifestsDir, action.name);
    try {
      // Only a regular file, up to the cap (read.ts): a FIFO here must not hang the
      // run while it holds the node configs dir's lock. Links are followed (ConfigMap volumes).
      const bytes = await readRegularBytes(file, { maxBytes: INPUT_LIMITS.manifest, what: `manifest ${action.name}` });
      if (bytes === undefined) return { docs: [], problems: [`manifest ${action.name} not found in ${manifestsDir}`], kind: 'missing' };
      const rendered = renderManifest(bytes.toString('utf8'), this.ctx.options.env, action.name);
      const parsed = parseManifest(rendered, action.name);
      return { docs: parsed.documents, sha256: digest(rendered), problems: parsed.problems, kind: 'invalid' };
    } catch (e) {
      if (e instanceof CniNodeError) return { docs: [], problems: [e.describe()], kind: e.kind };
      return { docs: [], problems: [`manifest ${action.name}: cannot read ${file}: ${reason(e)}`], kind: 'io' };
    }
  }

  /** 2. Kinds, through discovery (reads only); the kinds of a CRD earlier in the run included. */
  private async resolveKinds(loaded: readonly LoadedFile[], api: { client: KubeClient; discovery: Discovery }): Promise<PreparedFile[]> {
    const { discovery } = api;
    const files: PreparedFile[] = [];
    for (const { action, sha256, docs, fromRecord } of loaded) {
      const pf: PreparedFile = { action, objects: [], prune: [], ...(sha256 !== undefined ? { sha256 } : {}) };
      for (const doc of docs) {
        const r = await discovery.resolve(doc.apiVersion, doc.kind);
        if (!r.info) {
          if (action.op === 'remove') {
            // Not served: no such object can exist.
            const ref: ObjectRef = { apiVersion: doc.apiVersion, kind: doc.kind, name: doc.name, ...(doc.namespace ? { namespace: doc.namespace } : {}) };
            pf.objects.push({ ref, where: doc.where });
          } else {
            this.problem(
              this.orderOf(action, doc),
              ofItem(new CniNodeError('invalid', `${doc.where}: ${r.problem ?? 'unknown kind'}`), 'manifest', action.name),
            );
          }
          continue;
        }
        const { object, ref } = objectToApply(doc, r.info, api.client.namespace);
        const po: PreparedObject = { ref, where: doc.where, info: r.info, order: this.orderOf(action, doc) };
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
          if (!inFile.has(refKey(ref))) pf.objects.push(await resolveRef(discovery, ref, `manifest ${action.name} (recorded ${describeRef(ref)})`));
        }
      }
      files.push(pf);
    }
    return files;
  }

  /** 3. Objects another manifest of this run still wants are neither deleted nor pruned. */
  private async keepWanted(files: readonly PreparedFile[], discovery: Discovery): Promise<void> {
    const wanted = new Map<string, string>();
    for (const f of files) if (f.action.op === 'ensure') for (const o of f.objects) wanted.set(refKey(o.ref), f.action.name);
    for (const f of files) {
      if (f.action.op === 'remove') {
        for (const o of f.objects) {
          const by = wanted.get(refKey(o.ref));
          if (by !== undefined) o.keptBy = by;
        }
      } else if (f.action.why === 'kept') {
        try {
          for (const ref of [...this.ctx.recordedRefs(f.action.name)].reverse()) {
            if (!wanted.has(refKey(ref))) f.prune.push(await resolveRef(discovery, ref, `manifest ${f.action.name} (recorded ${describeRef(ref)})`));
          }
        } catch (e) {
          this.problem(this.orderOf(f.action), ofItem(asCniNodeError(e), 'manifest', f.action.name));
        }
      }
    }
  }

  /**
   * 4. Plans every object to apply: reads and server-side dry runs, which also make
   * the server validate each object and check the permission to write it, so an
   * invalid or forbidden object stops the run before anything is changed.
   */
  private async plan(files: readonly PreparedFile[], client: KubeClient): Promise<void> {
    const namespacesInRun = new Set<string>();
    const jobs: { f: PreparedFile; o: PreparedObject }[] = [];
    for (const f of files) {
      if (f.action.op !== 'ensure') continue;
      for (const o of f.objects) if (o.ref.kind === 'Namespace' && o.ref.apiVersion === 'v1') namespacesInRun.add(o.ref.name);
      const recorded = this.ctx.recordedSha256(f.action.name);
      f.sameAsRecorded = recorded !== undefined && recorded !== '' && recorded === f.sha256;
      for (const o of f.objects) {
        if (o.info?.definedByCrd !== undefined) o.deferred = `its CustomResourceDefinition ${o.info.definedByCrd} is created by this run`;
        else jobs.push({ f, o });
      }
    }
    let unreachable: CniNodeError | undefined;
    const planProblems: { order: number; error: CniNodeError }[] = [];
    const signal = this.ctx.options.signal;
    await mapLimit(jobs, PLAN_CONCURRENCY, async ({ f, o }) => {
      if (unreachable) return;
      try {
        o.plan = await planApply(client, o.info as ResourceInfo, o.object as KubeObject, o.ref, {
          sameAsRecorded: f.sameAsRecorded === true,
          ...(signal ? { signal } : {}),
        });
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
    if (unreachable) this.problem(Infinity, unreachable);
    else this.found.push(...planProblems);
  }
}

/** An object reference from the record, resolved (an unknown kind resolves to nothing: the object cannot exist). */
async function resolveRef(discovery: Discovery, ref: ObjectRef, where: string): Promise<PreparedObject> {
  const r = await discovery.resolve(ref.apiVersion, ref.kind);
  return { ref, where, ...(r.info ? { info: r.info } : {}) };
}
