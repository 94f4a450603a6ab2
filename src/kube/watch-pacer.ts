/**
 * When a list+watch (watch.ts) tries again. Two kinds of trouble back off apart:
 *
 * - unavailable: attempts that got no good answer (no connection, an error status,
 *   no answer in time). A complete LIST or an opened WATCH ends that streak: the
 *   server is back, so a watch cut right after an outage is not made to wait the
 *   long delay the outage had reached.
 * - unstable: watches that opened and then ended without progress (no event and
 *   less than progressMs of life, an ERROR event, a stall) or with something
 *   refused (an event over the cap, not JSON). Only progress ends that
 *   streak, so a server or proxy that accepts every watch and cuts it at once meets
 *   a growing delay, not a loop of requests.
 *
 * A watch that made progress and ended cleanly (the server's timeout, a close) or
 * with 410 Gone is re-established at once. A 410 for the first watch after a LIST
 * is not progress: listing again at once could loop.
 */
import { Backoff, type BackoffPolicy } from '../sys/backoff.js';

/**
 * Why an established watch ended:
 *  - 'timeout': the server ended it after timeoutSeconds (normal; resumed at once)
 *  - 'closed':  the server ended it early (e.g. an API server shutting down)
 *  - 'expired': 410 Gone, the resourceVersion is too old (listed again)
 *  - 'error':   the connection failed or an ERROR event other than 410 came
 *  - 'stalled': no end and no data past timeoutSeconds + the grace (dropped by us)
 */
export type WatchRestartReason = 'timeout' | 'closed' | 'expired' | 'error' | 'stalled';

export interface WatchEnd {
  reason: WatchRestartReason;
  detail: string;
  /** It delivered an event or lived long enough to count as healthy. */
  progressed: boolean;
  /** The code of an ERROR event. */
  status?: number | undefined;
}

export class WatchPacer {
  private readonly unavailable: Backoff;
  private readonly unstable: Backoff;

  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    this.unavailable = new Backoff(policy, random);
    this.unstable = new Backoff(policy, random);
  }

  /** A good answer: a complete LIST, or a WATCH that opened. */
  answered(): void {
    this.unavailable.reset();
  }

  /** An attempt without a good answer; returns the delay before the next (at least `retryAfterMs`). */
  failed(retryAfterMs = 0): number {
    return this.unavailable.fail(retryAfterMs);
  }

  /**
   * A watch opened and then sent something cni-node refuses (an event over the
   * cap, a line that is not JSON): the server answers, but not usably. Like a
   * watch that ended without progress it meets the growing unstable delay; the
   * unavailable streak would not grow, as the opened watch ended it.
   */
  refused(): number {
    return this.unstable.fail();
  }

  /** A watch ended; returns the delay before the next. */
  ended(end: WatchEnd): number {
    if (end.progressed) this.unstable.reset();
    if (end.progressed && (end.reason === 'timeout' || end.reason === 'closed' || end.reason === 'expired')) return 0;
    return this.unstable.fail();
  }
}
