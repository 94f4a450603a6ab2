/**
 * The daemon's reconcile queue: every event source calls trigger(); the queue
 * coalesces bursts and runs one reconcile at a time, never two at once.
 *
 *  - A burst of triggers (a ConfigMap edit that also swaps the templates volume, a
 *    primary CNI rewriting three files) becomes one reconcile: the queue waits until
 *    `debounceMs` pass without a new trigger, but never more than `maxDelayMs` after
 *    the first one, so a steady stream of events cannot postpone work forever.
 *  - Triggers that arrive while a reconcile runs are kept and start exactly one
 *    more reconcile after it ends (with all of them as its triggers).
 *  - Each reconcile receives the triggers that caused it, for the log ("which event
 *    triggered which action").
 */

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
  /** Quiet time that ends a burst (default 100 ms). */
  debounceMs?: number;
  /** Longest wait after the first trigger of a burst (default 500 ms). */
  maxDelayMs?: number;
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
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly now: () => number;
  /** Number of runs started so far. */
  runs = 0;

  constructor(
    private readonly run: RunFn,
    private readonly options: QueueOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 100;
    this.maxDelayMs = Math.max(options.maxDelayMs ?? 500, this.debounceMs);
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
    if (!this.running) this.schedule();
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

  private schedule(): void {
    if (this.closed || this.running || this.pending.length === 0) return;
    const first = (this.pending[0] as Trigger).at;
    const last = (this.pending[this.pending.length - 1] as Trigger).at;
    const now = this.now();
    const wait = Math.max(0, Math.min(last + this.debounceMs - now, first + this.maxDelayMs - now));
    if (this.timer) clearTimeout(this.timer);
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
    this.running = (async () => {
      try {
        await this.run(triggers);
      } catch (e) {
        (this.options.onError ?? ((err: unknown) => process.stderr.write(`reconcile queue: ${String(err)}\n`)))(e);
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
