import { readdirSync, statSync } from 'node:fs';
import { CniNodeError } from '../core/errors.js';
import { nameProblem, showName } from '../core/names.js';
import type { ListSpec } from '../core/lists.js';
import { KINDS, plan, type Kind, type KindState, type Mode, type PlannedAction } from '../core/plan.js';
import { cleanTempFiles, TEMP_PREFIX } from '../node/atomic.js';
import { createConfigHandler } from '../node/configs.js';
import { assertDirsApart } from '../node/dirs.js';
import { DirLock } from '../node/lock.js';
import { createPluginHandler } from '../node/plugins.js';
import { NodeRecord } from '../node/record.js';
import type { EngineOptions, ItemReport, KindHandler, Reporter } from '../core/contracts.js';

/**
 * The one reconcile engine behind install, uninstall, apply and the daemon:
 *   validate everything → plan → stage → act item by item → record.
 * A run either does everything it was asked or, when any item is invalid, reports
 * every problem and changes nothing. The daemon asks for one exception
 * (EngineOptions.isolateInvalid): a problem that belongs to particular items holds
 * just those items as they are on the node, and everything else is converged; the
 * held items and their problems come back in ReconcileResult.invalid.
 *
 * A run first looks without taking the lock (reads only). If everything is already
 * as desired it stops there: a no-op run writes nothing at all to the node, not
 * even a lock file. Otherwise it takes the lock and starts over from fresh reads, so
 * another cni-node that finished in between is taken into account.
 */
export interface ReconcileRequest {
  mode: Mode;
  lists: Partial<Record<Kind, ListSpec>>;
}

export interface ReconcileResult {
  reports: ItemReport[];
  /** Configs whose pointer targets do not exist yet (daemon mode), by config name. */
  waiting: Map<string, string[]>;
  changed: number;
  /** With isolateInvalid: items ("kind name") left as they are because of their own problems. */
  invalid: Map<string, CniNodeError[]>;
  /** Internal: a record was damaged; only a locked pass may move it aside. */
  needsMending?: boolean;
}

const LOCK_TIMEOUT_MS = 120_000;

// Metadata is read synchronously, here as in node/ (sys/pool.ts says why).
function isDir(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function hasTempFiles(dir: string): boolean {
  try {
    return readdirSync(dir).some((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return false;
  }
}

const QUIET: Reporter = { item: () => undefined, warn: () => undefined, info: () => undefined };

function changedCount(reports: readonly ItemReport[]): number {
  return reports.filter((r) => r.result !== 'unchanged' && r.result !== 'absent' && r.result !== 'waiting').length;
}

export async function reconcile(request: ReconcileRequest, options: EngineOptions): Promise<ReconcileResult> {
  const kinds = KINDS.filter((k) => request.lists[k] !== undefined);
  const { dirs } = options;
  await assertDirsApart(dirs, kinds);

  // The node dirs this run writes, each with its own lock and record.
  const nodeDirs: string[] = [];
  if (kinds.includes('plugin')) {
    if (!isDir(dirs.hostPluginsDir)) {
      throw new CniNodeError(
        'missing',
        `the node plugins dir ${dirs.hostPluginsDir} does not exist; mount the node's /opt/cni/bin there (-v /opt/cni/bin:${dirs.hostPluginsDir})`,
      );
    }
    nodeDirs.push(dirs.hostPluginsDir);
  }
  const configsDirPresent = isDir(dirs.hostConfigsDir);
  if (kinds.includes('config') && !configsDirPresent) {
    throw new CniNodeError(
      'missing',
      `the node configs dir ${dirs.hostConfigsDir} does not exist; mount the node's /etc/cni/net.d there (-v /etc/cni/net.d:${dirs.hostConfigsDir})`,
    );
  }
  if ((kinds.includes('config') || kinds.includes('manifest')) && configsDirPresent) nodeDirs.push(dirs.hostConfigsDir);

  if (options.dryRun) return pass(request, kinds, options, configsDirPresent, true);

  // Manifests always talk to the API (server-side apply is the comparison), so
  // the read-only look-ahead only pays off for node files.
  if (!kinds.includes('manifest')) {
    const warnings: string[] = [];
    // Progress (e.g. waiting for a pointer target) is shown as it happens; warnings
    // only if this look is the whole run, or the locked pass would repeat them.
    const lookReporter: Reporter = { ...QUIET, info: (m) => options.reporter.info(m), warn: (m) => warnings.push(m) };
    let look: ReconcileResult;
    try {
      look = await pass(request, kinds, { ...options, reporter: lookReporter }, configsDirPresent, true);
    } catch (e) {
      // Bad input is bad under the lock too: report it now. Anything else may be a
      // race with another writer that the lock resolves: look again, locked.
      // A stop signal ends the run here too, before any lock is taken.
      if (e instanceof CniNodeError && (e.kind === 'invalid' || e.kind === 'missing' || e.kind === 'usage' || e.kind === 'interrupted')) throw e;
      look = { reports: [], waiting: new Map(), changed: 1, invalid: new Map() };
    }
    // Leftovers of an interrupted run, or a damaged record, need the locked pass to mend.
    const mend = look.needsMending || nodeDirs.some(hasTempFiles);
    if (look.changed === 0 && !mend && !look.reports.some((r) => r.refreshRecord)) {
      for (const r of look.reports) options.reporter.item({ kind: r.kind, name: r.name, result: r.result, ...(r.detail ? { detail: r.detail } : {}) });
      for (const w of warnings) options.reporter.warn(w);
      return look;
    }
  }

  const locks: DirLock[] = [];
  try {
    // Fixed order (plugins dir, then configs dir) so two processes cannot deadlock.
    for (const dir of nodeDirs) {
      locks.push(
        await DirLock.acquire(dir, {
          timeoutMs: LOCK_TIMEOUT_MS,
          onWait: (holder) => options.reporter.info(`waiting for another cni-node (${holder}) to finish with ${dir}`),
          ...(options.signal ? { signal: options.signal } : {}),
        }),
      );
      const stale = await cleanTempFiles(dir);
      if (stale.length > 0) options.reporter.info(`removed ${stale.length} temporary file(s) an interrupted run left in ${dir}`);
    }
    const result = await pass(request, kinds, options, configsDirPresent, false, locks);
    delete result.needsMending;
    return result;
  } finally {
    for (const l of locks.reverse()) await l.release().catch(() => undefined);
  }
}

/**
 * One pass over the node: read the records, plan, prepare every item (every
 * problem found before anything changes), then act item by item and record.
 */
async function pass(
  request: ReconcileRequest,
  kinds: Kind[],
  options: EngineOptions,
  configsDirPresent: boolean,
  dryRun: boolean,
  locks: DirLock[] = [],
): Promise<ReconcileResult> {
  const handlers: KindHandler[] = [];
  const records = new Map<string, NodeRecord>();
  try {
    const recordOf = async (dir: string): Promise<NodeRecord> => {
      let r = records.get(dir);
      if (!r) records.set(dir, (r = await NodeRecord.load(dir, options.reporter, { readOnly: dryRun })));
      return r;
    };
    // One by one, so that those made before a failure are closed too.
    for (const kind of kinds) handlers.push(await createHandler(kind, options, configsDirPresent, recordOf));
    const planned = await planActions(request, handlers, options.hold);
    const { actions, waiting, invalid } = await prepareAll(handlers, planned, options.isolateInvalid === true);
    const reports = await act(handlers, actions, options, dryRun, locks);
    const damaged = [...records.values()].some((r) => r.damaged);
    return { reports, waiting, changed: changedCount(reports), invalid, ...(damaged ? { needsMending: true } : {}) };
  } finally {
    for (const h of handlers) await h.close().catch(() => undefined);
  }
}

async function createHandler(
  kind: Kind,
  options: EngineOptions,
  configsDirPresent: boolean,
  recordOf: (dir: string) => Promise<NodeRecord>,
): Promise<KindHandler> {
  const { dirs } = options;
  if (kind === 'plugin') return createPluginHandler(options, await recordOf(dirs.hostPluginsDir));
  if (kind === 'config') return createConfigHandler(options, await recordOf(dirs.hostConfigsDir));
  // The Kubernetes client is loaded only by runs that have manifests.
  const { createManifestHandler } = await import('../kube/manifest-handler.js');
  return createManifestHandler({ options, record: configsDirPresent ? await recordOf(dirs.hostConfigsDir) : undefined });
}

/** The actions: desired against current (the record's, for apply without :Current), less the held items. */
async function planActions(request: ReconcileRequest, handlers: readonly KindHandler[], hold: ReadonlySet<string> | undefined): Promise<PlannedAction[]> {
  const state: Partial<Record<Kind, KindState>> = {};
  for (const h of handlers) {
    const spec = request.lists[h.kind] as ListSpec;
    const current = spec.current ?? (request.mode === 'apply' ? await h.recorded() : []);
    state[h.kind] = { desired: spec.desired, current };
  }
  const actions = plan(request.mode, state).filter((a) => !hold?.has(`${a.kind} ${a.name}`));
  // Every name was validated where it came from (command line, ConfigMap, record);
  // checked once more here, where names turn into paths and API calls.
  for (const a of actions) {
    const bad = nameProblem(a.name);
    if (bad) throw new CniNodeError('invalid', `${a.kind} ${showName(a.name)}: ${bad}; nothing was changed`);
  }
  return actions;
}

const actionsOf = (actions: readonly PlannedAction[], h: KindHandler): PlannedAction[] => actions.filter((a) => a.kind === h.kind);

/**
 * Every handler prepares its actions; every problem is thrown at once, before
 * anything changes. With isolateInvalid, problems that all belong to particular
 * items hold just those items (returned in `invalid`), and the rest goes on.
 */
async function prepareAll(
  handlers: readonly KindHandler[],
  planned: readonly PlannedAction[],
  isolateInvalid: boolean,
): Promise<{ actions: PlannedAction[]; waiting: Map<string, string[]>; invalid: Map<string, CniNodeError[]> }> {
  let actions = [...planned];
  let problems: CniNodeError[] = [];
  const waiting = new Map<string, string[]>();
  for (const h of handlers) {
    const prepared = await h.prepare(actionsOf(actions, h));
    problems.push(...prepared.problems);
    for (const [k, v] of prepared.waiting) waiting.set(k, v);
  }
  const invalid = new Map<string, CniNodeError[]>();
  if (isolateInvalid && problems.length > 0 && problems.every(isItemProblem)) {
    // Every problem names the items it belongs to: hold those, converge the rest.
    // Anything else (the API unreachable, a lock lost, a dir missing) stops the run.
    for (const p of problems) for (const item of p.items) invalid.set(item, [...(invalid.get(item) ?? []), p]);
    actions = actions.filter((a) => !invalid.has(`${a.kind} ${a.name}`));
    for (const item of invalid.keys()) if (item.startsWith('config ')) waiting.delete(item.slice('config '.length));
    problems = [];
  }
  if (problems.length === 1) throw problems[0] as CniNodeError;
  if (problems.length > 1) {
    throw new CniNodeError(
      problems.every((p) => p.kind === problems[0]?.kind) ? (problems[0] as CniNodeError).kind : 'invalid',
      `${problems.length} problems found; nothing was changed`,
      problems.flatMap((p) => [p.message, ...p.details.map((d) => `  ${d}`)]),
    );
  }
  return { actions, waiting, invalid };
}

/** Stages, then carries out the actions in plan order; the records are saved even when a step fails part way. */
async function act(
  handlers: readonly KindHandler[],
  actions: readonly PlannedAction[],
  options: EngineOptions,
  dryRun: boolean,
  locks: readonly DirLock[],
): Promise<ItemReport[]> {
  const reports: ItemReport[] = [];
  const byKind = new Map(handlers.map((h) => [h.kind, h]));
  try {
    if (!dryRun) await Promise.all(handlers.map((h) => h.stage?.(actionsOf(actions, h))));
    for (const action of actions) {
      if (options.signal?.aborted) throw new CniNodeError('interrupted', `stopped before ${describe(action)}; the node holds the state of the completed steps`);
      for (const l of locks) l.assertHeld();
      const report = await (byKind.get(action.kind) as KindHandler).execute(action, dryRun);
      reports.push(report);
      options.reporter.item(report);
    }
  } finally {
    // Record what was done, also when a step failed part way.
    if (!dryRun) for (const h of handlers) await h.commit();
  }
  return reports;
}

/** A problem of particular items that only a change of input (or of the node) fixes. */
function isItemProblem(p: CniNodeError): boolean {
  return p.items.length > 0 && (p.kind === 'invalid' || p.kind === 'missing' || p.kind === 'io');
}

function describe(a: PlannedAction): string {
  return `${a.op === 'remove' ? 'removing' : 'installing'} ${a.kind} ${a.name}`;
}
