/**
 * The daemon's reporting, apart from its loop (daemon.ts): the one place that turns
 * each reconcile outcome, and each fight over a file, into metrics, readiness,
 * Kubernetes Events and log lines. The loop decides what to do next; the observer
 * only says what happened.
 */
import path from 'node:path';
import type { ItemReport, Reporter } from '../core/contracts.js';
import { internalError, isCniNodeError, type CniNodeError } from '../core/errors.js';
import type { Kind } from '../core/plan.js';
import { someOf } from '../core/printable.js';
import type { ReconcileResult } from '../engine/engine.js';
import type { DesiredLists } from './desired.js';
import type { EventRecorder } from './events.js';
import type { Hold } from './fight.js';
import { setManaged, type DaemonMetrics, type ReconcileOutcome } from './metrics.js';
import { describeTriggers, type Trigger } from './queue.js';
import type { Readiness } from './readiness.js';

export type DaemonReporter = Reporter & { error(message: string): void };

export interface ObserverDeps {
  reporter: DaemonReporter;
  metrics: DaemonMetrics;
  readiness: Readiness;
  events: EventRecorder;
}

/** What one reconcile came to. */
export type Outcome =
  | {
      id: number;
      seconds: number;
      how: 'done';
      result: ReconcileResult;
      /** Every item report, unchanged ones included. */
      reports: readonly ItemReport[];
      /** The kinds this reconcile covered, and the desired state it worked from. */
      kinds: readonly Kind[];
      desired: DesiredLists;
      /** Held items: the retry is in this long. */
      retryInMs?: number;
    }
  | { id: number; seconds: number; how: 'failed'; error: unknown; input: boolean; retryInMs: number }
  | { id: number; seconds: number; how: 'stopped'; error: unknown };

/** The failure class of a reconcile, as its metrics label it: the error kind, or "internal" for a bug. */
export function failureClass(error: unknown): string {
  return isCniNodeError(error) ? error.kind : 'internal';
}

const fightReadinessKey = (key: string): string => `fight ${key}`;
const invalidReadinessKey = (item: string): string => `invalid ${item}`;

export class ReconcileObserver {
  /** Templates waiting for pointer targets, as last reported. */
  private waiting = new Map<string, string[]>();
  /** Items held for their own problems, with the problem last reported. */
  private readonly invalid = new Map<string, string>();
  /** The last reconcile left the pod NotReady (failed, held items, or waiting), with a Warning Event: the next complete one says it is over. */
  private lastNotReady = false;

  constructor(
    private readonly deps: ObserverDeps,
    private readonly options: { hostConfigsDir: string; fightWindowMs: number; debug: boolean },
  ) {}

  /** Items now held for their own problems. */
  get heldItems(): number {
    return this.invalid.size;
  }

  started(id: number, triggers: readonly Trigger[]): void {
    this.deps.reporter.info(`reconcile #${id}: ${describeTriggers(triggers)}`);
  }

  /** The engine's reporter for one reconcile: every report is kept in `reports`; only changes are logged. */
  engineReporter(reports: ItemReport[]): Reporter {
    const { reporter } = this.deps;
    return {
      item: (r) => {
        reports.push(r);
        if (r.result === 'unchanged' || r.result === 'waiting') return;
        reporter.item(r);
      },
      warn: (m) => reporter.warn(m),
      info: (m) => reporter.info(m),
    };
  }

  finished(outcome: Outcome): void {
    if (outcome.how === 'stopped') {
      const e = outcome.error;
      this.deps.reporter.info(`reconcile #${outcome.id} stopped (shutting down): ${isCniNodeError(e) ? e.message : String(e)}`);
    } else if (outcome.how === 'done') this.done(outcome);
    else this.failed(outcome);
  }

  private done(o: Extract<Outcome, { how: 'done' }>): void {
    const { reporter, metrics, readiness, events } = this.deps;
    const held = o.result.invalid;
    const result: ReconcileOutcome = held.size > 0 ? 'partial' : o.result.waiting.size > 0 ? 'waiting' : 'success';
    const firstProblem = [...held.values()][0]?.[0];
    metrics.reconciles.inc({ result, ...(firstProblem ? { failure: failureClass(firstProblem) } : {}) });
    metrics.duration.observe({ result }, o.seconds);
    metrics.lastSuccess.set(Date.now() / 1000);
    readiness.succeeded(o.result.waiting);
    this.reportWaiting(o.result.waiting);
    this.reportInvalid(held, o.kinds, o.desired);
    const counts = new Map<string, number>();
    for (const r of o.reports) counts.set(r.result, (counts.get(r.result) ?? 0) + 1);
    for (const r of o.reports)
      if (r.result === 'installed' || r.result === 'updated' || r.result === 'removed') metrics.changes.inc({ kind: r.kind, result: r.result });
    const summary = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no items';
    const heldText = held.size > 0 ? `; ${held.size} item(s) left as they are for their own problems: ${someOf([...held.keys()])}` : '';
    const changed = o.result.changed === 0 ? 'nothing changed' : `${o.result.changed} changed`;
    reporter.info(`reconcile #${o.id} done in ${Math.round(o.seconds * 1000)} ms: ${changed} (${summary})${heldText}`);
    const notReady = held.size > 0 || o.result.waiting.size > 0;
    if (!notReady && this.lastNotReady) events.emit('Reconciled', `the node is in the desired state again (reconcile #${o.id})`);
    this.lastNotReady = notReady;
  }

  private failed(o: Extract<Outcome, { how: 'failed' }>): void {
    const { reporter, metrics, readiness, events } = this.deps;
    const e = o.error;
    metrics.reconciles.inc({ result: 'failed', failure: failureClass(e) });
    metrics.duration.observe({ result: 'failed' }, o.seconds);
    const text = isCniNodeError(e) ? e.describe() : internalError(e, this.options.debug);
    const short = isCniNodeError(e) ? e.message : internalError(e, false);
    const next = `${o.input ? 'fix the input (ConfigMap, templates, manifests) or the node; ' : ''}retrying in ${(o.retryInMs / 1000).toFixed(1)} s`;
    reporter.error(`reconcile #${o.id} failed after ${Math.round(o.seconds * 1000)} ms (${next}): ${text}`);
    readiness.failed(short);
    events.emit('ReconcileFailed', `${short}${isCniNodeError(e) && e.details.length > 0 ? `: ${e.details.join('; ')}` : ''}`);
    this.lastNotReady = true;
  }

  /** What cni-node's record says it manages now, by kind. */
  managed(counts: Partial<Record<Kind, number>>): void {
    setManaged(this.deps.metrics, counts);
  }

  /** A file cni-node manages was changed by something else, and restored. */
  restored(key: string, times: number): void {
    this.deps.reporter.info(
      `${key} was restored: something else had changed or removed it (${times} time(s) within ${Math.round(this.options.fightWindowMs / 1000)} s)`,
    );
  }

  /** Something else keeps rewriting a file: cni-node leaves it alone for a while. */
  fightStarted(hold: Hold, dir: string, heldNow: number): void {
    const { reporter, metrics, readiness, events } = this.deps;
    const [kind, name] = hold.key.split(' ', 2) as [Kind, string];
    const minutes = Math.round((hold.until - hold.since) / 60_000);
    const pause = minutes >= 1 ? `${minutes} min` : `${Math.round((hold.until - hold.since) / 1000)} s`;
    const msg = `${kind} ${name}: something else keeps rewriting ${path.join(dir, name)} (cni-node restored it ${hold.rewrites} times within ${Math.round(this.options.fightWindowMs / 1000)} s); two agents are fighting over it. cni-node leaves it alone for ${pause}; find the other writer`;
    reporter.warn(msg);
    metrics.fights.inc({ kind, name });
    metrics.itemsHeld.set(heldNow);
    readiness.set(fightReadinessKey(hold.key), msg);
    events.emit('FightDetected', msg);
  }

  /** A fight hold ended: it expired (cni-node restores the item now), or the item is no longer desired. */
  fightEnded(key: string, why: 'expired' | 'not desired'): void {
    this.deps.readiness.set(fightReadinessKey(key), undefined);
    const msg =
      why === 'expired'
        ? `${key}: the pause is over; cni-node manages it again and restores it if it differs`
        : `${key}: no longer desired; cni-node no longer holds it`;
    this.deps.reporter.info(msg);
    this.deps.events.emit('FightEnded', msg);
  }

  fightsHeld(n: number): void {
    this.deps.metrics.itemsHeld.set(n);
  }

  private reportWaiting(now: ReadonlyMap<string, string[]>): void {
    const { reporter, events } = this.deps;
    for (const [config, targets] of now) {
      const before = this.waiting.get(config);
      if (before && before.join() === targets.join()) continue;
      const msg = `config ${config}: waiting for ${someOf(targets)} to appear in ${this.options.hostConfigsDir}; it is rendered as soon as ${targets.length > 1 ? 'they do' : 'it does'}`;
      reporter.info(msg);
      events.emit('WaitingForPointerTarget', msg);
    }
    for (const config of this.waiting.keys()) {
      if (!now.has(config)) reporter.info(`config ${config}: no longer waiting`);
    }
    this.waiting = new Map(now);
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
      events.emit('ItemInvalid', msg);
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
}
