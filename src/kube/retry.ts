/**
 * Bounded retries with exponential backoff and jitter, for requests to the API
 * server. Bounded so a node whose API server is gone fails with a clear message in
 * seconds instead of hanging; jittered so hundreds of DaemonSet pods that lost the
 * API server at the same moment do not come back in lockstep.
 */
import { CniNodeError } from '../core/errors.js';

export interface RetryPolicy {
  /** Total attempts, the first included (1 = no retry). */
  attempts: number;
  /** Delay before the 2nd attempt; doubles with each further attempt. */
  baseDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs: number;
}

/**
 * 6 attempts: delays of ~0.25, 0.5, 1, 2, 4 s (each between half and all of that),
 * so an unreachable server is reported after 4–8 s (plus connect timeouts).
 */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 4_000 };

/** No retries at all (watch streams, which their owner restarts itself). */
export const NO_RETRY: RetryPolicy = { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 };

/**
 * The delay after failed attempt number `attempt` (1-based): exponential, capped,
 * with "equal jitter" — uniformly between half and all of the exponential step, so
 * it never collapses to zero and never exceeds the cap.
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(step / 2 + (r * step) / 2);
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

/** Sleeps `ms`, or rejects with an 'interrupted' CniNodeError as soon as `signal` aborts. */
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
