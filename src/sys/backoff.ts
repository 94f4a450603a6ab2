/**
 * Backoff for everything that tries again after a failure: one API request
 * (kube/client.ts), a long-lived watch (kube/watch.ts), the daemon's reconcile
 * retries and kube-watch's wait for its resource type. Exponential with "equal
 * jitter", so hundreds of DaemonSet pods that lost the API server at the same
 * moment do not come back in lockstep.
 */

/** How long to wait after consecutive failures. */
export interface BackoffPolicy {
  /** Delay after the first failure; doubles with each further one. */
  baseDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs: number;
}

/**
 * The delay after failure number `failure` (1-based): exponential, capped, with
 * "equal jitter" — uniformly between half and all of the exponential step, so it
 * never collapses to zero and never exceeds the cap.
 */
export function backoffDelay(failure: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failure - 1));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(step / 2 + (r * step) / 2);
}

/**
 * Counts consecutive failures of one thing and says how long to wait after each;
 * `reset()` when it worked. Open-ended: the owner decides when to give up.
 *
 *   const backoff = new Backoff({ baseDelayMs: 1_000, maxDelayMs: 30_000 });
 *   for (;;) {
 *     try { await work(); backoff.reset(); … }
 *     catch { await sleep(backoff.fail(), signal); }
 *   }
 */
export class Backoff {
  private count = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Consecutive failures since the last reset. */
  get failures(): number {
    return this.count;
  }

  /**
   * Counts one more failure and returns the delay before the next try: the
   * backoff step, or `atLeastMs` (a server's Retry-After) when that is longer.
   * `policy` overrides the delays for this failure only (e.g. slower for bad input).
   */
  fail(atLeastMs = 0, policy: BackoffPolicy = this.policy): number {
    this.count++;
    return Math.max(backoffDelay(this.count, policy, this.random), atLeastMs);
  }

  reset(): void {
    this.count = 0;
  }
}
