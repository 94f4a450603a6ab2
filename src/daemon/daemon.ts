/**
 * The node daemon's loop (`cni-node run`): event sources trigger the queue, the
 * queue runs one reconcile at a time (the engine, mode apply, the record as the
 * current state), and a failure is retried with backoff. Everything said about a
 * reconcile (log, metrics, readiness, Events) is the observer's (observer.ts).
 * docs/ARCHITECTURE.md follows one reconcile through these files.
 */
import type { Dirs, ItemReport } from '../core/contracts.js';
import { CniNodeError, internalError, isCniNodeError } from '../core/errors.js';
import type { ListSpec } from '../core/lists.js';
import { KINDS, type Kind } from '../core/plan.js';
import { debugEnabled } from '../core/settings.js';
import { reconcile, type ReconcileResult } from '../engine/engine.js';
import type { KubeClient } from '../kube/client.js';
import { Backoff } from '../sys/backoff.js';
import { ChangeFilter, itemKey, type Change } from './changes.js';
import { ConfigMapSource, type ConfigMapLists } from './configmap-source.js';
import { changedKinds, describeDesired, mergeDesired, sameDesired, type ConfigMapRef, type DesiredLists } from './desired.js';
import { FightDetector, type FightOptions, type Hold } from './fight.js';
import { watchDir, type DirWatcher } from './file-watch.js';
import { ManifestRecheck } from './manifest-recheck.js';
import { intentOf, readRecord, snapshotTemplates } from './node-state.js';
import { ReconcileObserver, type ObserverDeps, type Outcome } from './observer.js';
import { ReconcileQueue, type Trigger } from './queue.js';
import { uninstallAll } from './uninstall.js';

export type { DaemonReporter } from './observer.js';

export interface DaemonSettings {
  dirs: Dirs;
  env: Readonly<Record<string, string | undefined>>;
  kubeconfig?: string;
  /** Lists from --plugins/--configs/--manifests. */
  flags: Partial<Record<Kind, ListSpec>>;
  configMap?: ConfigMapRef;
  fight: FightOptions;
  /** Queue: the shortest time between the starts of two reconciles. */
  debounceMs: number;
  /** File watchers: debounce and safety-net re-check interval. */
  watchDebounceMs: number;
  recheckMs: number;
  /** Retry after a failed reconcile: first delay, doubling up to the max (jittered). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** The same after a failure caused by bad input (which a change fixes, and a change triggers anyway). */
  retryInputMs: number;
  retryInputMaxMs: number;
  /** The periodic re-check of manifests after the last reconcile that covered them (0: off; manifest-recheck.ts). */
  manifestRecheckMs: number;
}

export interface DaemonDeps extends ObserverDeps {
  /** The daemon's own API client (ConfigMap watch); undefined without --config-map. */
  client?: KubeClient;
}

export class Daemon {
  private readonly abort = new AbortController();
  private readonly queue: ReconcileQueue;
  private readonly fights: FightDetector;
  private readonly changes: ChangeFilter;
  private readonly observer: ReconcileObserver;
  private readonly backoff: Backoff;
  private readonly configMap: ConfigMapSource | undefined;
  private readonly recheck: ManifestRecheck;
  private desired: DesiredLists | undefined;
  /** Kinds the daemon has managed at some point (what --uninstall-on-exit removes). */
  readonly managedKinds = new Set<Kind>();
  /** What cni-node meant to write for each managed file, to tell a fight from a new version. */
  private intents = new Map<string, string>();
  private reconciles = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private fightTimer: NodeJS.Timeout | undefined;
  /** Node dirs that changed during a reconcile, judged after it. */
  private readonly dirty = { plugin: false, config: false };
  private readonly dirWatchers: DirWatcher[] = [];
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
    this.observer = new ReconcileObserver(deps, {
      hostConfigsDir: settings.dirs.hostConfigsDir,
      fightWindowMs: settings.fight.windowMs,
      debug: debugEnabled(settings.env),
    });
    this.backoff = new Backoff({ baseDelayMs: settings.retryBaseMs, maxDelayMs: settings.retryMaxMs });
    this.recheck = new ManifestRecheck(settings.manifestRecheckMs, () => this.trigger('recheck', 'the periodic re-check of manifests'));
    this.queue = new ReconcileQueue((triggers) => this.reconcileOnce(triggers), {
      debounceMs: settings.debounceMs,
      onError: (e) => deps.reporter.error(`reconcile loop: ${internalError(e, debugEnabled(settings.env))}`),
    });
    if (settings.configMap) {
      if (!deps.client) throw new CniNodeError('usage', '--config-map needs a Kubernetes client');
      this.configMap = new ConfigMapSource(
        settings.configMap,
        { ...deps, client: deps.client },
        () => this.desired,
        (lists) => this.onConfigMap(lists),
      );
    } else {
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
    const watchOpts = { signal: this.abort.signal, debounceMs: this.settings.watchDebounceMs, recheckMs: this.settings.recheckMs };
    const watch = (dir: string, what: string, onChange: () => unknown, hidden = false) =>
      watchDir(dir, onChange, { ...watchOpts, hidden, onError: (e) => this.deps.reporter.warn(`watching the ${what} ${dir}: ${e.message}`) });
    this.dirWatchers.push(
      watch(dirs.configsDir, 'templates dir', () => this.onTemplates()),
      watch(dirs.manifestsDir, 'manifests dir', () => this.onManifests()),
      watch(dirs.hostConfigsDir, 'node configs dir', () => this.onNodeDir('config'), true),
      watch(dirs.hostPluginsDir, 'node plugins dir', () => this.onNodeDir('plugin'), true),
    );
    await Promise.all(this.dirWatchers.map((w) => w.ready));

    if (this.configMap) {
      this.configMap.start(this.abort.signal);
    } else {
      this.deps.reporter.info(`desired state from the command line: ${describeDesired(this.desired ?? {})}`);
      this.queue.trigger('start', 'start');
    }
  }

  /** A valid version of the ConfigMap: a reconcile if the desired state changed. */
  private onConfigMap({ lists, resourceVersion: rv, first }: ConfigMapLists): void {
    const next = mergeDesired(this.settings.flags, lists);
    if (sameDesired(this.desired, next)) return;
    const changed = changedKinds(this.desired, next);
    this.desired = next;
    for (const k of KINDS) if (next[k] !== undefined) this.managedKinds.add(k);
    const name = `${this.settings.configMap?.namespace}/${this.settings.configMap?.name}`;
    this.deps.reporter.info(`desired state from ConfigMap ${name} (resourceVersion ${rv ?? '?'}): ${describeDesired(next)}`);
    this.trigger(
      first ? 'start' : 'configmap',
      first ? `start (ConfigMap ${name})` : `ConfigMap ${name} changed (${changed.join(', ')}; resourceVersion ${rv ?? '?'})`,
    );
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
    const manifestsToo = triggers.some((t) => ['start', 'configmap', 'manifest', 'retry', 'recheck'].includes(t.source));
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
      const id = ++this.reconciles;
      this.clearRetry();
      this.releaseStaleHolds(desired);
      this.observer.started(id, triggers);
      const reports: ItemReport[] = [];
      const lists = this.listsFor(desired, triggers);
      const outcome = await this.run(id, desired, lists, reports);
      this.observer.finished(outcome);
      if (lists.manifest) this.recheck.schedule(lists.manifest.desired.length > 0);
      await this.afterReconcile(reports);
    } finally {
      if (this.reconciling) await this.drainBuffered();
    }
  }

  /** One reconcile by the engine, and the retry it calls for. */
  private async run(id: number, desired: DesiredLists, lists: Partial<Record<Kind, ListSpec>>, reports: ItemReport[]): Promise<Outcome> {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    let result: ReconcileResult;
    try {
      // Before the engine reads anything: a change from here on is seen afterwards.
      const { dirs } = this.settings;
      this.changes.setSnapshot(
        await snapshotTemplates(dirs.configsDir, dirs.hostConfigsDir, desired.config ?? [], { dir: dirs.manifestsDir, names: desired.manifest ?? [] }),
      );
      result = await reconcile(
        { mode: 'apply', lists },
        {
          dirs,
          hold: new Set(this.fights.held().map((h) => h.key)),
          dryRun: false,
          waitMs: 0,
          tolerateMissingPointers: true,
          isolateInvalid: true,
          env: this.settings.env,
          reporter: this.observer.engineReporter(reports),
          signal: this.abort.signal,
          ...(this.settings.kubeconfig ? { kubeconfig: this.settings.kubeconfig } : {}),
        },
      );
    } catch (error) {
      if (this.abort.signal.aborted) return { id, seconds: seconds(), how: 'stopped', error };
      // Bad input (a template, a list, a plugin missing from the image) is fixed by a
      // change, which triggers anyway: retry it slowly. Anything else (I/O, the API,
      // a lock) may pass by itself: retry soon, backing off.
      const input = isCniNodeError(error) && (error.kind === 'invalid' || error.kind === 'usage');
      return { id, seconds: seconds(), how: 'failed', error, input, retryInMs: this.scheduleRetry(id, input) };
    }
    const done: Outcome = { id, seconds: seconds(), how: 'done', result, reports, kinds: Object.keys(lists) as Kind[], desired };
    if (result.invalid.size === 0) {
      this.backoff.reset();
      return done;
    }
    // A held item is retried when its input changes (which triggers anyway), and
    // slowly in case what is wrong is on the node (a file cni-node cannot read).
    const input = [...result.invalid.values()].flat().every((p) => p.kind !== 'io');
    return { ...done, retryInMs: this.scheduleRetry(id, input) };
  }

  /** After every reconcile: what is managed now, fight detection, then the file events that came in meanwhile. */
  private async afterReconcile(reports: readonly ItemReport[]): Promise<void> {
    const { dirs } = this.settings;
    const [pluginRecord, configRecord] = await Promise.all([readRecord(dirs.hostPluginsDir), readRecord(dirs.hostConfigsDir)]);
    const entriesOf = (kind: 'plugin' | 'config') =>
      (this.managedKinds.has(kind) ? ((kind === 'plugin' ? pluginRecord : configRecord)?.entries(kind) ?? []) : []).map((entry) => ({ kind, entry }));
    const entries = [...entriesOf('plugin'), ...entriesOf('config')];
    this.observer.managed({
      plugin: pluginRecord?.entries('plugin').length ?? 0,
      config: configRecord?.entries('config').length ?? 0,
      manifest: configRecord?.entries('manifest').length ?? 0,
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
      else this.observer.restored(key, this.fights.count(key));
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
    this.observer.fightStarted(hold, dir, this.fights.held().length);
  }

  private releaseStaleHolds(desired: DesiredLists): void {
    for (const h of this.fights.held()) {
      const [kind, name] = h.key.split(' ', 2) as [Kind, string];
      if (!(desired[kind] ?? []).includes(name)) {
        this.fights.release(h.key);
        this.observer.fightEnded(h.key, 'not desired');
      }
    }
    this.observer.fightsHeld(this.fights.held().length);
  }

  private scheduleFightExpiry(): void {
    if (this.fightTimer) clearTimeout(this.fightTimer);
    this.fightTimer = undefined;
    const next = this.fights.nextExpiry();
    if (next === undefined || this.stopped) return;
    this.fightTimer = setTimeout(
      () => {
        this.fightTimer = undefined;
        for (const h of this.fights.expire()) {
          this.observer.fightEnded(h.key, 'expired');
          this.trigger('fight', `the pause on ${h.key} ended; restoring it`);
        }
        this.observer.fightsHeld(this.fights.held().length);
        this.scheduleFightExpiry();
      },
      Math.max(0, next - Date.now()),
    );
  }

  /** Schedules the retry after reconcile `id` failed (or held items); returns the delay. */
  private scheduleRetry(id: number, input: boolean): number {
    const { retryInputMs, retryInputMaxMs } = this.settings;
    const delay = this.backoff.fail(0, input ? { baseDelayMs: retryInputMs, maxDelayMs: retryInputMaxMs } : undefined);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.trigger('retry', `retry after reconcile #${id} ${this.observer.heldItems > 0 ? 'left items with problems' : 'failed'}`);
    }, delay);
    return delay;
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
      this.recheck.stop();
      if (this.fightTimer) clearTimeout(this.fightTimer);
      for (const w of this.dirWatchers) w.close();
      this.configMap?.stop();
      await Promise.all([this.queue.close(), this.configMap?.done]);
    })();
    return this.stopping;
  }

  /** --uninstall-on-exit: removes everything cni-node's record holds for the kinds the daemon managed. */
  uninstall(signal: AbortSignal): Promise<void> {
    const { dirs, env, kubeconfig } = this.settings;
    return uninstallAll(
      KINDS.filter((k) => this.managedKinds.has(k)),
      { dirs, env, ...(kubeconfig ? { kubeconfig } : {}) },
      this.deps.reporter,
      signal,
    );
  }
}
