/**
 * Backoff for everything that tries again: bounded retries of one API request
 * (client.ts), the restarts of a long-lived watch (watch.ts), and any loop that
 * waits after a failure. Exponential with "equal jitter", so hundreds of DaemonSet
 * pods that lost the API server at the same moment do not come back in lockstep.
 */
import { CniNodeError } from '../core/errors.js';

/** How long to wait after consecutive failures. */
export interface BackoffPolicy {
  /** Delay after the first failure; doubles with each further one. */
  baseDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs: number;
}

/** Bounded retries of one request. */
export interface RetryPolicy extends BackoffPolicy {
  /** Total attempts, the first included (1 = no retry). */
  attempts: number;
}

/**
 * 6 attempts: delays of ~0.25, 0.5, 1, 2, 4 s (each between half and all of that),
 * so an unreachable server is reported after 4–8 s (plus connect timeouts).
 */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 4_000 };

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

/** The longest total time the delays of `policy` can add up to. */
export function maxTotalDelay(policy: RetryPolicy): number {
  let total = 0;
  for (let a = 1; a < policy.attempts; a++) total += Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (a - 1));
  return total;
}

/**
 * A server's Retry-After header (seconds, or an HTTP date) as milliseconds, capped;
 * undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | string[] | undefined, capMs: number, now: number = Date.now()): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || v.trim() === '') return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs) && secs >= 0) return Math.min(capMs, secs * 1000);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(capMs, Math.max(0, at - now));
}

/** Sleeps `ms`, or rejects with an 'interrupted' CniNodeError as soon as `signal` aborts (the timer is cleared). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(interrupted());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(interrupted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function interrupted(): CniNodeError {
  return new CniNodeError('interrupted', 'interrupted while talking to the Kubernetes API');
}
