/**
 * The periodic re-check of manifests (CNI_NODE_MANIFEST_RECHECK). cni-node has no
 * watch on the objects its manifests create, and by design may not even read some of
 * them (the per-node ClusterRoleBinding: RBAC cannot scope `get` to a name known only
 * at run time). So an object deleted or changed by someone else is repaired by the
 * next reconcile that covers manifests, which without this would be the next
 * ConfigMap or manifest change, or a restart. This timer asks for one a period after
 * the last one. Each wait is 0.75–1.25 × the period, so the nodes of a cluster, which
 * all reconcile at once after a ConfigMap change, spread their re-checks out
 * instead of asking the API server together. BENCHMARKS.md ("Many nodes") gives what
 * it costs the API server.
 */
export class ManifestRecheck {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    /** 0: off. */
    private readonly periodMs: number,
    private readonly fire: () => void,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next re-check, drawn for this time. */
  nextDelay(): number {
    return Math.round(this.periodMs * (0.75 + 0.5 * this.random()));
  }

  /** (Re)starts the wait after a reconcile that covered manifests; `wanted` false (no manifests desired) only cancels it. */
  schedule(wanted: boolean): void {
    this.cancel();
    if (this.stopped || !wanted || this.periodMs <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fire();
    }, this.nextDelay());
  }

  stop(): void {
    this.stopped = true;
    this.cancel();
  }

  private cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
