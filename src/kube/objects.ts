/**
 * Creating, updating and deleting one object with server-side apply, and the no-op
 * detection that makes an unchanged re-apply write nothing (a re-apply can store an
 * unchanged object again on Kubernetes 1.20): planApply() decides with reads and a
 * dry run only, commitApply() applies what is not unchanged. docs/ARCHITECTURE.md
 * ("Server-side apply without spurious writes") says how.
 */
import { CniNodeError } from '../core/errors.js';
import { isStatus, type KubeClient } from './client.js';
import { resourcePath, type ResourceInfo } from './discovery.js';
import { printable } from '../core/printable.js';
import { comparable, containsDesired, sameJson, type KubeObject, type ObjectRef } from './manifests.js';
import { sleep } from './retry.js';

/** The field manager of every server-side apply cni-node makes. */
export const FIELD_MANAGER = 'cni-node';

export type ApplyOutcome = 'created' | 'updated' | 'unchanged';

export interface PlanOptions {
  /** The manifest's rendered text is the one recorded as applied last time (enables the fast path). */
  sameAsRecorded?: boolean;
  /** Keep retrying a 404 from the resource's endpoint this long (a CRD that just became Established). */
  notFoundGraceMs?: number;
  signal?: AbortSignal;
}

export interface ApplyOptions extends PlanOptions {
  /** Server-side dry run (dryRun=All): the server validates, nothing is stored. */
  dryRun: boolean;
}

/**
 * What applying an object would do, found with reads and a server-side dry run
 * only. The dry run also validates the object and checks the permission to write
 * it, so an invalid or forbidden object is found before anything is changed.
 */
export interface ApplyPlan {
  outcome: 'create' | 'update' | 'unchanged';
  /** The object now (undefined: absent, or not readable with these credentials). */
  live?: KubeObject;
  /** The object as the apply would store it (undefined when the fast path decided). */
  planned?: KubeObject;
  /** Set when the server could not dry-run it (an admission webhook that does not support dry run): why. */
  unchecked?: string;
}

/** Plans the server-side apply of one object: GET, fast path, else a dry-run apply compared with the live object. */
export async function planApply(client: KubeClient, info: ResourceInfo, object: KubeObject, ref: ObjectRef, opts: PlanOptions = {}): Promise<ApplyPlan> {
  const path = resourcePath(info, ref.namespace, ref.name);
  let live: KubeObject | undefined;
  let liveKnown = true;
  try {
    const res = await withNotFoundGrace(opts, info, () =>
      client.request<KubeObject>({ method: 'GET', path, accept: [404], signal: opts.signal }).then((r) => {
        if (r.status === 404 && !isObjectNotFound(r.body)) throw notServed(info, r.body);
        return r;
      }),
    );
    live = res.status === 404 ? undefined : res.body;
  } catch (e) {
    // Allowed to apply but not to read (an RBAC rule with only patch): decide by applying.
    if (!isStatus(e, 403)) throw e;
    liveKnown = false;
  }
  if (live && opts.sameAsRecorded && containsDesired(object, live)) return { outcome: 'unchanged', live };
  let planned: KubeObject;
  let plannedStatus: number;
  try {
    ({ body: planned, status: plannedStatus } = await serverSideApply(client, info, path, object, true, opts));
  } catch (e) {
    // Webhooks registered with sideEffects Unknown/Some refuse every dry run; then only the real apply can tell.
    const msg = (e as { serverMessage?: string }).serverMessage ?? '';
    if (!(isStatus(e, 400) && /does not support dry run/i.test(msg))) throw e;
    return { outcome: live ? 'update' : 'create', ...(live ? { live } : {}), unchecked: msg };
  }
  if (!liveKnown) {
    // Not allowed to read it (RBAC cannot scope `get` to a name made at run time,
    // such as a per-node binding). The dry run still tells whether it exists (201
    // would create it); if it does and the manifest is as recorded, it is taken as
    // unchanged rather than re-applied and reported "updated" on every run. The
    // cost: an edit made to it by someone else is not repaired until the manifest changes.
    if (plannedStatus === 201) return { outcome: 'create', planned };
    return { outcome: opts.sameAsRecorded ? 'unchanged' : 'update', planned };
  }
  if (!live) return { outcome: 'create', planned };
  if (sameJson(comparable(planned), comparable(live))) return { outcome: 'unchanged', live, planned };
  return { outcome: 'update', live, planned };
}

/** Carries out a plan: nothing for 'unchanged', else the server-side apply. */
export async function commitApply(
  client: KubeClient,
  info: ResourceInfo,
  object: KubeObject,
  ref: ObjectRef,
  plan: ApplyPlan,
  opts: PlanOptions = {},
): Promise<ApplyResult> {
  if (plan.outcome === 'unchanged') return { outcome: 'unchanged', ...(plan.live ? { object: plan.live } : {}) };
  const applied = await serverSideApply(client, info, resourcePath(info, ref.namespace, ref.name), object, false, opts);
  return { outcome: applied.status === 201 ? 'created' : 'updated', object: applied.body };
}

export interface ApplyResult {
  outcome: ApplyOutcome;
  /** The object as stored (or as it would be, in a dry run). */
  object?: KubeObject;
}

/** planApply then, unless it is a dry run, commitApply: one object made as desired, writing only if needed. */
export async function applyObject(client: KubeClient, info: ResourceInfo, object: KubeObject, ref: ObjectRef, opts: ApplyOptions): Promise<ApplyResult> {
  const plan = await planApply(client, info, object, ref, opts);
  if (!opts.dryRun) return commitApply(client, info, object, ref, plan, opts);
  const outcome: ApplyOutcome = plan.outcome === 'create' ? 'created' : plan.outcome === 'update' ? 'updated' : 'unchanged';
  const shown = plan.planned ?? plan.live;
  return { outcome, ...(shown ? { object: shown } : {}) };
}

async function serverSideApply(
  client: KubeClient,
  info: ResourceInfo,
  path: string,
  object: KubeObject,
  dryRun: boolean,
  opts: PlanOptions,
): Promise<{ status: number; body: KubeObject }> {
  return withNotFoundGrace(opts, info, () =>
    client.request<KubeObject>({
      method: 'PATCH',
      path,
      query: { fieldManager: FIELD_MANAGER, force: true, dryRun: dryRun ? 'All' : undefined },
      // JSON is YAML, and exactly what was parsed: no second YAML serialisation to get wrong.
      body: JSON.stringify(object),
      contentType: 'application/apply-patch+yaml',
      signal: opts.signal,
    }),
  );
}

export type DeleteOutcome = 'deleted' | 'absent';

/** Deletes one object (background propagation); an object that is already gone is 'absent', not an error. */
export async function deleteObject(
  client: KubeClient,
  info: ResourceInfo,
  ref: ObjectRef,
  opts: { dryRun: boolean; signal?: AbortSignal },
): Promise<DeleteOutcome> {
  const res = await client.request({
    method: 'DELETE',
    path: resourcePath(info, ref.namespace, ref.name),
    query: { propagationPolicy: 'Background', dryRun: opts.dryRun ? 'All' : undefined },
    accept: [404],
    signal: opts.signal,
  });
  return res.status === 404 ? 'absent' : 'deleted';
}

/** Whether the object exists (404 → false). */
export async function objectExists(client: KubeClient, info: ResourceInfo, ref: ObjectRef, signal?: AbortSignal): Promise<boolean> {
  const res = await client.request({ method: 'GET', path: resourcePath(info, ref.namespace, ref.name), accept: [404], signal });
  return res.status !== 404;
}

interface CrdCondition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

/**
 * Waits until the CustomResourceDefinition `name` is Established (its kinds are
 * served). A CRD whose names are refused (NamesAccepted=False: the plural or kind
 * is taken) fails at once with the server's reason.
 */
export async function waitForCrdEstablished(client: KubeClient, name: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  let last: CrdCondition[] = [];
  while (true) {
    const res = await client.request<{ status?: { conditions?: CrdCondition[] } }>({
      method: 'GET',
      path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${encodeURIComponent(name)}`,
      accept: [404],
      signal: opts.signal,
    });
    const conditions = res.status === 404 ? [] : res.body?.status?.conditions;
    last = Array.isArray(conditions) ? conditions.filter((c): c is CrdCondition => typeof c === 'object' && c !== null) : [];
    if (last.some((c) => c.type === 'Established' && c.status === 'True')) return;
    const refused = last.find((c) => c.type === 'NamesAccepted' && c.status === 'False');
    if (refused) {
      throw new CniNodeError(
        'invalid',
        `CustomResourceDefinition ${name} cannot be established: ${printable(refused.reason ?? 'NamesNotAccepted', 100)}: ${printable(refused.message)}`.trim(),
      );
    }
    if (Date.now() >= deadline) {
      const state =
        printable(last.map((c) => `${String(c.type)}=${String(c.status)}${c.message ? ` (${String(c.message)})` : ''}`).join(', ')) ||
        (res.status === 404 ? 'not found' : 'no conditions');
      throw new CniNodeError('api', `CustomResourceDefinition ${name} is not Established after ${Math.round(timeoutMs / 1000)} s (${state})`);
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), opts.signal);
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * A 404 that means "no such object" carries a Status with details.name (or kind);
 * "the server could not find the requested resource" (no such endpoint) has none.
 */
function isObjectNotFound(body: unknown): boolean {
  const d = (body as { details?: { name?: string; kind?: string } } | undefined)?.details;
  return Boolean(d && (d.name || d.kind));
}

class NotServedError extends CniNodeError {}

function notServed(info: ResourceInfo, body: unknown): NotServedError {
  const msg = printable((body as { message?: unknown } | undefined)?.message ?? 'not found');
  return new NotServedError(
    'api',
    `the API server does not serve ${info.resource} in ${info.apiVersion} (${msg})${info.definedByCrd ? `; its CustomResourceDefinition ${info.definedByCrd} is not Established yet` : ''}`,
  );
}

/** Retries `fn` while the resource's endpoint is not served yet, for kinds of a CRD that was just created. */
async function withNotFoundGrace<T>(opts: PlanOptions, info: ResourceInfo, fn: () => Promise<T>): Promise<T> {
  const grace = info.definedByCrd ? (opts.notFoundGraceMs ?? 10_000) : 0;
  const deadline = Date.now() + grace;
  while (true) {
    try {
      return await fn();
    } catch (e) {
      // A GET's "no such object" 404 is accepted, not thrown; a thrown 404 means the endpoint is missing.
      const endpointMissing = e instanceof NotServedError || isStatus(e, 404);
      if (!endpointMissing || Date.now() >= deadline) throw e;
      await sleep(100, opts.signal);
    }
  }
}
