/**
 * The daemon's reconcile queue: every event source calls trigger(); the queue
 * coalesces bursts and runs one reconcile at a time, never two at once.
 *
 *  - Reconciles start at least `debounceMs` apart. A trigger when none started
 *    within that time starts one at once (in the next turn of the event loop, so
 *    the triggers of one synchronous burst are one reconcile): a single change is
 *    acted on without waiting. The file watchers have already waited for their own
 *    quiet time (a writer not done yet, a ConfigMap volume swap), so a node-file
 *    event does not wait twice; a ConfigMap event is a whole object.
 *  - Every other trigger (during a reconcile, or within `debounceMs` of the start
 *    of the last one) waits until that time is up, or the running reconcile ends,
 *    and all of them together start ONE more reconcile. So a burst costs one
 *    reconcile for its first event and one for the rest, a steady stream at most one
 *    per `debounceMs`, and no trigger waits longer than `debounceMs` or the running
 *    reconcile.
 *  - Each reconcile receives the triggers that caused it, for the log ("which event
 *    triggered which action").
 */
import { stderr } from '../sys/output.js';

export type TriggerSource =
  | 'start' // the first reconcile
  | 'configmap' // the ConfigMap with the desired lists changed
  | 'template' // a template in the configs dir changed (ConfigMap volume swaps included)
  | 'manifest' // a desired manifest file in the manifests dir changed
  | 'pointer' // a node file that a template points to changed or appeared
  | 'repair' // a file cni-node installed was deleted or changed on the node
  | 'retry' // the last reconcile failed; trying again
  | 'fight' // a fight hold expired
  | 'recheck'; // the periodic re-check of manifests (CNI_NODE_MANIFEST_RECHECK)

export interface Trigger {
  source: TriggerSource;
  /** For the log: "ConfigMap kube-system/multus-cni changed (plugins)". */
  reason: string;
  /** Date.now() when the event was seen (for latency measurements). */
  at: number;
}

export interface QueueOptions {
  /** The shortest time between the starts of two reconciles (default 100 ms). */
  debounceMs?: number;
  /** Errors thrown by the run function (it should not throw; this is a last resort). */
  onError?: (e: unknown) => void;
  now?: () => number;
}

export type RunFn = (triggers: readonly Trigger[]) => Promise<void>;

export class ReconcileQueue {
  private pending: Trigger[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** When the last reconcile started (-Infinity: none yet). */
  private lastStartAt = -Infinity;
  private readonly debounceMs: number;
  private readonly now: () => number;
  /** Number of runs started so far. */
  runs = 0;

  constructor(
    private readonly run: RunFn,
    private readonly options: QueueOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 100;
    this.now = options.now ?? Date.now;
  }

  /** True while a reconcile runs. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Triggers waiting for the next reconcile. */
  get queued(): readonly Trigger[] {
    return this.pending;
  }

  trigger(source: TriggerSource, reason: string): void {
    if (this.closed) return;
    this.pending.push({ source, reason, at: this.now() });
    this.schedule();
  }

  /** Resolves when nothing runs and nothing is pending (or the queue is closed). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops: pending triggers are dropped, no new run starts; resolves when the
   * current run (if any) has ended. Abort the run's own signal to make that quick.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = [];
    await this.running?.catch(() => undefined);
    this.notifyIdle();
  }

  private isIdle(): boolean {
    return this.closed || (!this.running && this.pending.length === 0);
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** The next reconcile, once the last one ended and debounceMs have passed since it started; triggers until then join it. */
  private schedule(): void {
    if (this.closed || this.running || this.timer || this.pending.length === 0) return;
    // Clamped to debounceMs: now() is the wall clock, and a clock set back since the
    // last start (NTP stepping a node's clock) must not hold a change back by the step.
    const wait = Math.min(this.debounceMs, Math.max(0, this.lastStartAt + this.debounceMs - this.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, wait);
  }

  private start(): void {
    if (this.closed || this.running || this.pending.length === 0) return;
    const triggers = this.pending;
    this.pending = [];
    this.runs++;
    this.lastStartAt = this.now();
    this.running = (async () => {
      try {
        await this.run(triggers);
      } catch (e) {
        (this.options.onError ?? ((err: unknown) => stderr(`reconcile queue: ${String(err)}\n`)))(e);
      }
    })().finally(() => {
      this.running = undefined;
      if (this.pending.length > 0) this.schedule();
      else this.notifyIdle();
    });
  }
}

/**
 * "ConfigMap kube-system/multus-cni changed; node file 10-calico.conflist changed (×3)":
 * the triggers of one reconcile, duplicates counted, in order of first arrival.
 */
export function describeTriggers(triggers: readonly Trigger[], max = 6): string {
  const counts = new Map<string, number>();
  for (const t of triggers) counts.set(t.reason, (counts.get(t.reason) ?? 0) + 1);
  const parts = [...counts].map(([reason, n]) => (n > 1 ? `${reason} (×${n})` : reason));
  if (parts.length <= max) return parts.join('; ');
  return `${parts.slice(0, max).join('; ')}; and ${parts.length - max} more`;
}
