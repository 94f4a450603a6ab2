/**
 * `cni-node run`: the node daemon. One process per node that keeps the node's CNI
 * plugins, configs and manifests as desired, with the same engine as `apply`.
 *
 *   event sources ──trigger()──▶ ReconcileQueue ──one at a time──▶ reconcile()
 *     ConfigMap watch (one list+watch, one object)             (engine, mode apply,
 *     templates dir, manifests dir (ConfigMap volumes included)                current = record,
 *     node configs dir (pointer targets; repair)                waiting tolerated)
 *     node plugins dir (repair)
 *     retry after a failure, end of a fight hold
 *
 * Every reconcile logs what triggered it and what changed; readiness, metrics and
 * Kubernetes Events follow its outcome. See run.ts for the command line and the
 * environment settings.
 */
import path from 'node:path';
import { CniNodeError, debugEnabled, internalError, isCniNodeError } from '../core/errors.js';
import type { ListSpec } from '../core/lists.js';
import { KINDS, type Kind } from '../core/plan.js';
import { reconcile, type ReconcileResult } from '../engine/engine.js';
import type { Dirs, ItemReport, Reporter } from '../engine/types.js';
import type { KubeClient } from '../kube/client.js';
import { listWatch, type ListWatcher, type WatchedObject } from '../kube/watch.js';
import { ChangeFilter, itemKey, type Change } from './changes.js';
import {
  CONFIG_MAP_KEYS,
  changedKinds,
  describeDesired,
  desiredFromConfigMap,
  mergeDesired,
  sameDesired,
  type ConfigMapRef,
  type DesiredLists,
} from './desired.js';
import type { EventRecorder } from './events.js';
import { FightDetector, type FightOptions, type Hold } from './fight.js';
import { watchDir, type DirWatcher } from './file-watch.js';
import { setManaged, type DaemonMetrics } from './metrics.js';
import { intentOf, readRecord, snapshotTemplates } from './node-state.js';
import { ReconcileQueue, describeTriggers, type Trigger } from './queue.js';
import { Readiness } from './readiness.js';

export type DaemonReporter = Reporter & { error(message: string): void };

export interface DaemonSettings {
  dirs: Dirs;
  env: Readonly<Record<string, string | undefined>>;
  kubeconfig?: string;
  /** Lists from --plugins/--configs/--manifests. */
  flags: Partial<Record<Kind, ListSpec>>;
  configMap?: ConfigMapRef;
  fight: FightOptions;
  /** Queue: quiet time ending a burst, and the longest wait. */
  debounceMs: number;
  maxDelayMs: number;
  /** File watchers: debounce and safety-net re-check interval. */
  watchDebounceMs: number;
  recheckMs: number;
  /** Retry after a failed reconcile: first delay, doubling up to the max (jittered). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** The same after a failure caused by bad input (which a change fixes, and a change triggers anyway). */
  retryInputMs: number;
  retryInputMaxMs: number;
}

export interface DaemonDeps {
  reporter: DaemonReporter;
  metrics: DaemonMetrics;
  readiness: Readiness;
  events: EventRecorder;
  /** The daemon's own API client (ConfigMap watch); undefined without --config-map. */
  client?: KubeClient;
}

const READINESS_CONFIGMAP = 'configmap';
const READINESS_CONFIGMAP_INVALID = 'configmap-invalid';
const fightReadinessKey = (key: string) => `fight ${key}`;
const invalidReadinessKey = (item: string) => `invalid ${item}`;

export class Daemon {
  private readonly abort = new AbortController();
  private readonly queue: ReconcileQueue;
  private readonly fights: FightDetector;
  private readonly changes: ChangeFilter;
  private desired: DesiredLists | undefined;
  /** Kinds the daemon has managed at some point (what --uninstall-on-exit removes). */
  readonly managedKinds = new Set<Kind>();
  private configMapSeen = false;
  /** The ConfigMap watch has answered at least once (the object, or that it does not exist). */
  private configMapAnswered = false;
  private configMapRv: string | undefined;
  private intents = new Map<string, string>();
  private waiting = new Map<string, string[]>();
  /** Items held for their own problems, with the problem last reported. */
  private invalid = new Map<string, string>();
  private reconciles = 0;
  private failures = 0;
  private lastFailed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private fightTimer: NodeJS.Timeout | undefined;
  /** Node dirs that changed during a reconcile, judged after it. */
  private readonly dirty = { plugin: false, config: false };
  private readonly dirWatchers: DirWatcher[] = [];
  private configMapWatch: ListWatcher | undefined;
  private watchErrorLogged: string | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  /** True from the start of a reconcile until what it recorded is known: node-dir events are judged after that. */
  private reconciling = false;

  constructor(
    private readonly settings: DaemonSettings,
    private readonly deps: DaemonDeps,
  ) {
    this.fights = new FightDetector(settings.fight);
    this.changes = new ChangeFilter(settings.dirs, (key) => this.fights.isHeld(key));
    this.queue = new ReconcileQueue((triggers) => this.reconcileOnce(triggers), {
      debounceMs: settings.debounceMs,
      maxDelayMs: settings.maxDelayMs,
      onError: (e) => deps.reporter.error(`reconcile loop: ${internalError(e, debugEnabled(settings.env))}`),
    });
    if (!settings.configMap) {
      this.desired = mergeDesired(settings.flags, undefined);
      for (const k of KINDS) if (this.desired[k] !== undefined) this.managedKinds.add(k);
    }
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Reconciles started so far. */
  get reconcileCount(): number {
    return this.reconciles;
  }

  /** Starts the watches and the first reconcile. */
  async start(): Promise<void> {
    const { dirs } = this.settings;
    const { reporter } = this.deps;
    const watchOpts = {
      signal: this.abort.signal,
      debounceMs: this.settings.watchDebounceMs,
      recheckMs: this.settings.recheckMs,
    };
    const onError = (what: string) => (e: Error) => reporter.warn(`watching ${what}: ${e.message}`);
    this.dirWatchers.push(
      watchDir(dirs.configsDir, () => this.onTemplates(), { ...watchOpts, onError: onError(`the templates dir ${dirs.configsDir}`) }),
      watchDir(dirs.manifestsDir, () => this.onManifests(), { ...watchOpts, onError: onError(`the manifests dir ${dirs.manifestsDir}`) }),
      watchDir(dirs.hostConfigsDir, () => this.onNodeDir('config'), { ...watchOpts, hidden: true, onError: onError(`the node configs dir ${dirs.hostConfigsDir}`) }),
      watchDir(dirs.hostPluginsDir, () => this.onNodeDir('plugin'), { ...watchOpts, hidden: true, onError: onError(`the node plugins dir ${dirs.hostPluginsDir}`) }),
    );
    await Promise.all(this.dirWatchers.map((w) => w.ready));

    if (this.settings.configMap) {
      this.startConfigMapWatch(this.settings.configMap);
    } else {
      reporter.info(`desired state from the command line: ${describeDesired(this.desired ?? {})}`);
      this.queue.trigger('start', 'start');
    }
  }

  private startConfigMapWatch(ref: ConfigMapRef): void {
    const { reporter, metrics, readiness, client } = this.deps;
    if (!client) throw new CniNodeError('usage', '--config-map needs a Kubernetes client');
    const name = `${ref.namespace}/${ref.name}`;
    readiness.set(READINESS_CONFIGMAP, `waiting for the first answer about ConfigMap ${name} from the API server`);
    this.configMapWatch = listWatch({
      client,
      path: `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/configmaps`,
      fieldSelector: `metadata.name=${ref.name}`,
      signal: this.abort.signal,
      onChange: (objects) => this.onConfigMap(ref, objects),
      onRestart: (reason, detail) => {
        metrics.watchRestarts.inc({ source: 'configmap', reason });
        if (reason !== 'timeout') reporter.info(`ConfigMap ${name} watch restarting: ${detail}`);
      },
      onError: (error, retryInMs) => {
        metrics.watchRestarts.inc({ source: 'configmap', reason: 'failed' });
        // Before the first answer the desired state is unknown: readiness says why.
        // After it, an API outage leaves the node as desired, so it stays ready.
        if (!this.configMapAnswered) {
          readiness.set(READINESS_CONFIGMAP, `no answer yet about ConfigMap ${name}: ${error.message}; retrying with backoff`);
        }
        // One line per distinct problem, not one per retry.
        const key = error.message.replace(/\d+(\.\d+)? ?m?s\b/g, '');
        if (key !== this.watchErrorLogged) {
          this.watchErrorLogged = key;
          reporter.warn(`ConfigMap ${name} watch: ${error.message}; retrying in ${(retryInMs / 1000).toFixed(1)} s (and with backoff after that); the node keeps its current state`);
        }
      },
      onRequest: (ev) => metrics.apiRequests.inc({ verb: ev.verb, code: ev.status !== undefined ? String(ev.status) : (ev.error ?? 'error') }),
    });
  }

  private onConfigMap(ref: ConfigMapRef, objects: WatchedObject[]): void {
    if (this.stopped) return;
    const { reporter, readiness, events } = this.deps;
    const name = `${ref.namespace}/${ref.name}`;
    this.configMapAnswered = true;
    if (this.watchErrorLogged !== undefined) {
      reporter.info(`ConfigMap ${name} watch: connected again`);
      this.watchErrorLogged = undefined;
    }
    const cm = objects.find((o) => o.metadata.name === ref.name);
    if (!cm) {
      const reason = this.configMapSeen
        ? `ConfigMap ${name} was deleted; keeping the last desired state (${describeDesired(this.desired ?? {})}) until it is back`
        : `ConfigMap ${name} does not exist; waiting for it (it holds the keys ${Object.values(CONFIG_MAP_KEYS).join(', ')})`;
      readiness.set(READINESS_CONFIGMAP, reason);
      reporter.warn(reason);
      events.emit('Warning', 'ConfigMapMissing', reason);
      return;
    }
    this.configMapSeen = true;
    readiness.set(READINESS_CONFIGMAP, undefined);
    const rv = cm.metadata.resourceVersion;
    const parsed = desiredFromConfigMap(cm['data'] as Record<string, string> | undefined, name);
    if (!parsed.ok) {
      const kept = this.desired ? `keeping the last good desired state (${describeDesired(this.desired)})` : 'nothing is reconciled until it is fixed';
      const msg = `ConfigMap ${name} (resourceVersion ${rv ?? '?'}) has an invalid list; ${kept}:\n${parsed.problems.map((p) => `  - ${p}`).join('\n')}`;
      reporter.error(msg);
      readiness.set(READINESS_CONFIGMAP_INVALID, `ConfigMap ${name} has an invalid list (${parsed.problems.join('; ')}); ${kept}`);
      events.emit('Warning', 'InvalidConfigMap', `ConfigMap ${name}: ${parsed.problems.join('; ')}; ${kept}`);
      return;
    }
    if (readiness.has(READINESS_CONFIGMAP_INVALID)) {
      reporter.info(`ConfigMap ${name} is valid again (resourceVersion ${rv ?? '?'})`);
      readiness.set(READINESS_CONFIGMAP_INVALID, undefined);
    }
    const next = mergeDesired(this.settings.flags, parsed.lists);
    const first = this.configMapRv === undefined;
    this.configMapRv = rv;
    if (sameDesired(this.desired, next)) return;
    const changed = changedKinds(this.desired, next);
    this.desired = next;
    for (const k of KINDS) if (next[k] !== undefined) this.managedKinds.add(k);
    reporter.info(`desired state from ConfigMap ${name} (resourceVersion ${rv ?? '?'}): ${describeDesired(next)}`);
    this.trigger(first ? 'start' : 'configmap', first ? `start (ConfigMap ${name})` : `ConfigMap ${name} changed (${changed.join(', ')}; resourceVersion ${rv ?? '?'})`);
  }

  private trigger(source: Trigger['source'], reason: string): void {
    if (this.stopped) return;
    this.deps.metrics.triggers.inc({ source });
    this.queue.trigger(source, reason);
  }

  private triggerAll(changes: readonly Change[]): void {
    for (const c of changes) this.trigger(c.source, c.reason);
  }

  private async onTemplates(): Promise<void> {
    if (this.stopped || !this.desired?.config) return;
    this.triggerAll(await this.changes.templates());
  }

  private async onManifests(): Promise<void> {
    if (this.stopped || !this.desired?.manifest) return;
    this.triggerAll(await this.changes.manifests());
  }

  private async onNodeDir(kind: 'plugin' | 'config'): Promise<void> {
    if (this.stopped) return;
    if (this.reconciling) {
      // Judged after the reconcile, against what it recorded: its own writes are not changes.
      this.dirty[kind] = true;
      return;
    }
    this.triggerAll(kind === 'plugin' ? await this.changes.nodePlugins() : await this.changes.nodeConfigs());
  }

  /**
   * The lists for the engine (items held by the fight detector are passed to it as
   * `hold`: left alone, neither rewritten nor removed). Manifests only when a
   * trigger can concern them (start, ConfigMap, manifest file, retry): a node-file
   * repair or a pointer target costs no API request.
   */
  private listsFor(desired: DesiredLists, triggers: readonly Trigger[]): Partial<Record<Kind, ListSpec>> {
    const lists: Partial<Record<Kind, ListSpec>> = {};
    const manifestsToo = triggers.some((t) => t.source === 'start' || t.source === 'configmap' || t.source === 'manifest' || t.source === 'retry');
    for (const kind of KINDS) {
      const names = desired[kind];
      if (names === undefined) continue;
      if (kind === 'manifest' && !manifestsToo) continue;
      lists[kind] = { desired: [...names] };
    }
    return lists;
  }

  private async reconcileOnce(triggers: readonly Trigger[]): Promise<void> {
    const desired = this.desired;
    if (this.stopped || !desired) return;
    this.reconciling = true;
    try {
      await this.reconcileBody(triggers, desired);
    } finally {
      if (this.reconciling) await this.drainBuffered();
    }
  }

  private async reconcileBody(triggers: readonly Trigger[], desired: DesiredLists): Promise<void> {
    const { reporter, metrics, readiness, events } = this.deps;
    const id = ++this.reconciles;
    const started = process.hrtime.bigint();
    this.clearRetry();
    this.releaseStaleHolds(desired);

    reporter.info(`reconcile #${id}: ${describeTriggers(triggers)}`);

    const reports: ItemReport[] = [];
    const engineReporter: Reporter = {
      item: (r) => {
        reports.push(r);
        if (r.result === 'unchanged' || r.result === 'waiting') return;
        reporter.item(r);
      },
      warn: (m) => reporter.warn(m),
      info: (m) => reporter.info(m),
    };

    let result: ReconcileResult | undefined;
    let failure: unknown;
    try {
      // Before the engine reads anything: a change from here on is seen afterwards.
      const { dirs } = this.settings;
      this.changes.setSnapshot(await snapshotTemplates(dirs.configsDir, dirs.hostConfigsDir, desired.config ?? [], { dir: dirs.manifestsDir, names: desired.manifest ?? [] }));
      result = await reconcile(
        { mode: 'apply', lists: this.listsFor(desired, triggers) },
        {
          dirs: this.settings.dirs,
          hold: new Set(this.fights.held().map((h) => h.key)),
          dryRun: false,
          waitMs: 0,
          tolerateMissingPointers: true,
          isolateInvalid: true,
          env: this.settings.env,
          reporter: engineReporter,
          signal: this.abort.signal,
          ...(this.settings.kubeconfig ? { kubeconfig: this.settings.kubeconfig } : {}),
        },
      );
    } catch (e) {
      failure = e;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const ms = Math.round(seconds * 1000);

    if (failure !== undefined && this.abort.signal.aborted) {
      reporter.info(`reconcile #${id} stopped (shutting down): ${isCniNodeError(failure) ? failure.message : String(failure)}`);
      await this.afterReconcile(reports);
      return;
    }

    if (failure === undefined && result) {
      const held = result.invalid;
      const outcome = held.size > 0 ? 'partial' : result.waiting.size > 0 ? 'waiting' : 'success';
      metrics.reconciles.inc({ result: outcome });
      metrics.duration.observe({ result: outcome }, seconds);
      metrics.lastSuccess.set(Date.now() / 1000);
      readiness.succeeded(result.waiting);
      this.reportWaiting(result.waiting);
      this.reportInvalid(held, Object.keys(this.listsFor(desired, triggers)) as Kind[], desired);
      const counts = new Map<string, number>();
      for (const r of reports) counts.set(r.result, (counts.get(r.result) ?? 0) + 1);
      for (const r of reports) if (r.result === 'installed' || r.result === 'updated' || r.result === 'removed') metrics.changes.inc({ kind: r.kind, result: r.result });
      const summary = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no items';
      const heldText = held.size > 0 ? `; ${held.size} item(s) left as they are for their own problems: ${[...held.keys()].join(', ')}` : '';
      reporter.info(`reconcile #${id} done in ${ms} ms: ${result.changed === 0 ? 'nothing changed' : `${result.changed} changed`} (${summary})${heldText}`);
      if (held.size === 0) {
        this.failures = 0;
        if (this.lastFailed) events.emit('Normal', 'Reconciled', `the node is in the desired state again (reconcile #${id})`);
        this.lastFailed = false;
      } else {
        // A held item is retried when its input changes (which triggers anyway), and
        // slowly in case what is wrong is on the node (a file cni-node cannot read).
        const input = [...held.values()].flat().every((p) => p.kind !== 'io');
        this.scheduleRetry(id, input);
        this.lastFailed = true;
      }
    } else {
      metrics.reconciles.inc({ result: 'failed' });
      metrics.duration.observe({ result: 'failed' }, seconds);
      const text = isCniNodeError(failure) ? failure.describe() : internalError(failure, debugEnabled(this.settings.env));
      const short = isCniNodeError(failure) ? failure.message : internalError(failure, false);
      // Bad input (a template, a list, a plugin missing from the image) is fixed by a
      // change, which triggers anyway: retry it slowly. Anything else (I/O, the API,
      // a lock) may pass by itself: retry soon, backing off.
      const input = isCniNodeError(failure) && (failure.kind === 'invalid' || failure.kind === 'usage');
      const delay = this.scheduleRetry(id, input);
      const next = `${input ? 'fix the input (ConfigMap, templates, manifests) or the node; ' : ''}retrying in ${(delay / 1000).toFixed(1)} s`;
      reporter.error(`reconcile #${id} failed after ${ms} ms (${next}): ${text}`);
      readiness.failed(short);
      events.emit('Warning', 'ReconcileFailed', `${short}${isCniNodeError(failure) && failure.details.length > 0 ? `: ${failure.details.join('; ')}` : ''}`);
      this.lastFailed = true;
    }
    await this.afterReconcile(reports);
  }

  /** After every reconcile: what is managed now, fight detection, then the file events that came in meanwhile. */
  private async afterReconcile(reports: readonly ItemReport[]): Promise<void> {
    const { dirs } = this.settings;
    const { metrics } = this.deps;
    const [pluginRecord, configRecord] = await Promise.all([readRecord(dirs.hostPluginsDir), readRecord(dirs.hostConfigsDir)]);
    const entries = [
      ...(this.managedKinds.has('plugin') ? (pluginRecord['plugin'] ?? []).map((entry) => ({ kind: 'plugin' as const, entry })) : []),
      ...(this.managedKinds.has('config') ? (configRecord['config'] ?? []).map((entry) => ({ kind: 'config' as const, entry })) : []),
    ];
    setManaged(metrics, {
      plugin: pluginRecord['plugin']?.length ?? 0,
      config: configRecord['config']?.length ?? 0,
      manifest: configRecord['manifest']?.length ?? 0,
    });

    // A rewrite of exactly what cni-node had already written means something else changed it.
    const nextIntents = new Map<string, string>();
    for (const { kind, entry } of entries) {
      const intent = intentOf(kind, entry);
      if (intent !== undefined) nextIntents.set(itemKey(kind, entry.name), intent);
    }
    for (const r of reports) {
      if ((r.kind !== 'plugin' && r.kind !== 'config') || (r.result !== 'installed' && r.result !== 'updated')) continue;
      const key = itemKey(r.kind, r.name);
      const before = this.intents.get(key);
      if (before === undefined || before !== nextIntents.get(key)) {
        this.fights.forget(key);
        continue;
      }
      const hold = this.fights.rewrite(key);
      if (hold) this.startHold(hold, r.kind === 'plugin' ? dirs.hostPluginsDir : dirs.hostConfigsDir);
      else this.deps.reporter.info(`${key} was restored: something else had changed or removed it (${this.fights.count(key)} time(s) within ${Math.round(this.settings.fight.windowMs / 1000)} s)`);
    }
    this.intents = nextIntents;
    this.changes.setManaged(entries);
    this.scheduleFightExpiry();

    await this.drainBuffered();
  }

  /** From here on node-dir events are judged as they come; those that came during the reconcile now. */
  private async drainBuffered(): Promise<void> {
    this.reconciling = false;
    const { plugin, config } = this.dirty;
    this.dirty.plugin = this.dirty.config = false;
    if (plugin) this.triggerAll(await this.changes.nodePlugins());
    if (config) this.triggerAll(await this.changes.nodeConfigs());
  }

  private startHold(hold: Hold, dir: string): void {
    const { reporter, metrics, readiness, events } = this.deps;
    const [kind, name] = hold.key.split(' ', 2) as [Kind, string];
    const minutes = Math.round((hold.until - hold.since) / 60_000);
    const msg = `${kind} ${name}: something else keeps rewriting ${path.join(dir, name)} (cni-node restored it ${hold.rewrites} times within ${Math.round(this.settings.fight.windowMs / 1000)} s); two agents are fighting over it. cni-node leaves it alone for ${minutes >= 1 ? `${minutes} min` : `${Math.round((hold.until - hold.since) / 1000)} s`}; find the other writer`;
    reporter.warn(msg);
    metrics.fights.inc({ kind, name });
    metrics.itemsHeld.set(this.fights.held().length);
    readiness.set(fightReadinessKey(hold.key), msg);
    events.emit('Warning', 'FightDetected', msg);
  }

  private releaseStaleHolds(desired: DesiredLists): void {
    for (const h of this.fights.held()) {
      const [kind, name] = h.key.split(' ', 2) as [Kind, string];
      if (!(desired[kind] ?? []).includes(name)) {
        this.fights.release(h.key);
        this.deps.readiness.set(fightReadinessKey(h.key), undefined);
      }
    }
    this.deps.metrics.itemsHeld.set(this.fights.held().length);
  }

  private scheduleFightExpiry(): void {
    if (this.fightTimer) clearTimeout(this.fightTimer);
    this.fightTimer = undefined;
    const next = this.fights.nextExpiry();
    if (next === undefined || this.stopped) return;
    this.fightTimer = setTimeout(() => {
      this.fightTimer = undefined;
      for (const h of this.fights.expire()) {
        this.deps.readiness.set(fightReadinessKey(h.key), undefined);
        this.trigger('fight', `the pause on ${h.key} ended; restoring it`);
      }
      this.deps.metrics.itemsHeld.set(this.fights.held().length);
      this.scheduleFightExpiry();
    }, Math.max(0, next - Date.now()));
  }

  private reportWaiting(now: ReadonlyMap<string, string[]>): void {
    const { reporter, events } = this.deps;
    const dir = this.settings.dirs.hostConfigsDir;
    for (const [config, targets] of now) {
      const before = this.waiting.get(config);
      if (before && before.join() === targets.join()) continue;
      const msg = `config ${config}: waiting for ${targets.join(', ')} to appear in ${dir}; it is rendered as soon as ${targets.length > 1 ? 'they do' : 'it does'}`;
      reporter.info(msg);
      events.emit('Normal', 'WaitingForPointerTarget', msg);
    }
    for (const config of this.waiting.keys()) {
      if (!now.has(config)) reporter.info(`config ${config}: no longer waiting`);
    }
    this.waiting = new Map(now);
  }

  /** Schedules the retry after reconcile `id` failed (or held items); returns the delay. */
  private scheduleRetry(id: number, input: boolean): number {
    this.failures++;
    const base = input ? this.settings.retryInputMs : this.settings.retryBaseMs;
    const cap = input ? this.settings.retryInputMaxMs : this.settings.retryMaxMs;
    const step = Math.min(cap, base * 2 ** (this.failures - 1));
    const delay = Math.round(step / 2 + (Math.random() * step) / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.trigger('retry', `retry after reconcile #${id} ${this.invalid.size > 0 ? 'left items with problems' : 'failed'}`);
    }, delay);
    return delay;
  }

  /**
   * Items the engine held for their own problems (a template that renders too big,
   * a plugin missing from the image, an invalid manifest): each is left as it is on
   * the node, in its last good state, while everything else is converged. Each is
   * reported when it starts or its problem changes (log, Event) and stays in
   * readiness until a reconcile that covered its kind no longer holds it.
   */
  private reportInvalid(now: ReadonlyMap<string, readonly CniNodeError[]>, kinds: readonly Kind[], desired: DesiredLists): void {
    const { reporter, readiness, events } = this.deps;
    for (const [item, problems] of now) {
      const text = problems.map((p) => p.describe()).join('\n');
      if (this.invalid.get(item) === text) continue;
      this.invalid.set(item, text);
      const short = problems.map((p) => p.message).join('; ');
      const msg = `${item} is left as it is on the node (its last good state, if any) until its problem is fixed; the rest of the node is converged: ${short}`;
      reporter.error(`${text}\n  (${item} is left as it is on the node until this is fixed; the rest of the node is converged)`);
      readiness.set(invalidReadinessKey(item), msg);
      events.emit('Warning', 'ItemInvalid', msg);
    }
    for (const item of [...this.invalid.keys()]) {
      const [kind, name] = [item.slice(0, item.indexOf(' ')) as Kind, item.slice(item.indexOf(' ') + 1)];
      // Judged only by a reconcile that covered its kind, or when it is no longer desired at all.
      if (now.has(item) || (!kinds.includes(kind) && (desired[kind] ?? []).includes(name))) continue;
      this.invalid.delete(item);
      readiness.set(invalidReadinessKey(item), undefined);
      reporter.info(`${item}: no longer has a problem`);
    }
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  /**
   * Stops: aborts the running reconcile at its next safe point (the engine checks
   * the signal between items; each item is an atomic write), stops every watch,
   * and resolves once nothing runs.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      this.abort.abort();
      this.clearRetry();
      if (this.fightTimer) clearTimeout(this.fightTimer);
      for (const w of this.dirWatchers) w.close();
      this.configMapWatch?.stop();
      await Promise.all([this.queue.close(), this.configMapWatch?.done]);
    })();
    return this.stopping;
  }

  /** --uninstall-on-exit: removes everything cni-node's record holds for the kinds the daemon managed. */
  async uninstall(signal: AbortSignal): Promise<void> {
    const kinds = KINDS.filter((k) => this.managedKinds.has(k));
    if (kinds.length === 0) {
      this.deps.reporter.info('--uninstall-on-exit: nothing was managed; nothing to remove');
      return;
    }
    this.deps.reporter.info(`--uninstall-on-exit: removing what cni-node installed (${kinds.map((k) => CONFIG_MAP_KEYS[k]).join(', ')})`);
    // apply with nothing desired = remove every recorded item, with the record read under the engine's lock.
    const removeAll = (only: readonly Kind[]) =>
      reconcile(
        { mode: 'apply', lists: Object.fromEntries(only.map((k) => [k, { desired: [] }])) as Partial<Record<Kind, ListSpec>> },
        {
          dirs: this.settings.dirs,
          dryRun: false,
          waitMs: 0,
          tolerateMissingPointers: true,
          env: this.settings.env,
          reporter: this.deps.reporter,
          signal,
          ...(this.settings.kubeconfig ? { kubeconfig: this.settings.kubeconfig } : {}),
        },
      );
    try {
      const result = await removeAll(kinds);
      this.deps.reporter.info(`--uninstall-on-exit: removed ${result.changed} item(s)`);
    } catch (e) {
      // The API may refuse to delete objects (RBAC, an outage): that must not keep
      // the node's files in place. Remove them kind by kind, configs before plugins.
      this.deps.reporter.warn(`--uninstall-on-exit: ${(e as Error).message}; removing the node's files anyway`);
      let failure: unknown;
      for (const kind of (['config', 'plugin'] as const).filter((k) => kinds.includes(k))) {
        try {
          const result = await removeAll([kind]);
          this.deps.reporter.info(`--uninstall-on-exit: removed ${result.changed} ${kind}(s)`);
        } catch (e2) {
          failure ??= e2;
        }
      }
      throw failure ?? e;
    }
  }
}
