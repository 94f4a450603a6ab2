/**
 * Retries of one API request (client.ts): how many attempts, how long between
 * them (sys/backoff.ts), and what a server's Retry-After asks for.
 */
import { CniNodeError } from '../core/errors.js';
import type { BackoffPolicy } from '../sys/backoff.js';
import { sleep as sleepOr } from '../sys/sleep.js';

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

/** Sleeps `ms`, or rejects with interrupted() as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return sleepOr(ms, signal, interrupted);
}

export function interrupted(): CniNodeError {
  return new CniNodeError('interrupted', 'interrupted while talking to the Kubernetes API');
}
