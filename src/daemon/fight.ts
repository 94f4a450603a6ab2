/**
 * Fight detection: something else keeps rewriting (or deleting) a file that
 * cni-node manages — two CNI installers fighting over one config is a well-known
 * failure. Each time the daemon has to restore an item to exactly what it had
 * already written, that is one "rewrite". After `limit` rewrites of one item within
 * `windowMs`, the daemon stops rewriting that item for `holdMs` (instead of joining
 * a tight loop), and reports it: log, metric, readiness reason. When the hold ends
 * the item is restored once more and counting starts afresh.
 */
import { SETTINGS } from '../core/settings.js';

export interface FightOptions {
  /** Rewrites within the window that make a fight (default 5). */
  limit: number;
  /** The window (default 60 s). */
  windowMs: number;
  /** How long to leave a fought-over item alone (default 5 min). */
  holdMs: number;
  now?: () => number;
}

export interface Hold {
  key: string;
  since: number;
  until: number;
  rewrites: number;
}

/** The defaults of CNI_NODE_FIGHT_LIMIT, _WINDOW and _HOLD. */
export const DEFAULT_FIGHT: Readonly<FightOptions> = {
  limit: SETTINGS.fightLimit.spec.default as number,
  windowMs: SETTINGS.fightWindow.spec.default as number,
  holdMs: SETTINGS.fightHold.spec.default as number,
};

export class FightDetector {
  private readonly history = new Map<string, number[]>();
  private readonly holds = new Map<string, Hold>();
  private readonly now: () => number;

  constructor(private readonly options: FightOptions = DEFAULT_FIGHT) {
    if (!(options.limit >= 1)) throw new RangeError('fight limit must be at least 1');
    this.now = options.now ?? Date.now;
  }

  /**
   * Records that `key` had to be restored. Returns the new hold when this rewrite
   * makes it a fight, undefined otherwise (also when the item is already held).
   */
  rewrite(key: string): Hold | undefined {
    if (this.holds.has(key)) return undefined;
    const now = this.now();
    const times = (this.history.get(key) ?? []).filter((t) => now - t < this.options.windowMs);
    times.push(now);
    if (times.length >= this.options.limit) {
      this.history.delete(key);
      const hold: Hold = { key, since: now, until: now + this.options.holdMs, rewrites: times.length };
      this.holds.set(key, hold);
      return hold;
    }
    this.history.set(key, times);
    return undefined;
  }

  /** Rewrites of `key` counted in the current window. */
  count(key: string): number {
    const now = this.now();
    return (this.history.get(key) ?? []).filter((t) => now - t < this.options.windowMs).length;
  }

  isHeld(key: string): boolean {
    return this.holds.has(key);
  }

  held(): Hold[] {
    return [...this.holds.values()];
  }

  /** Ends the holds whose time is over; returns them. */
  expire(): Hold[] {
    const now = this.now();
    const ended: Hold[] = [];
    for (const [key, h] of this.holds) {
      if (h.until <= now) {
        this.holds.delete(key);
        ended.push(h);
      }
    }
    return ended;
  }

  /** Ends a hold now (the item is no longer desired, or its desired content changed). */
  release(key: string): boolean {
    this.history.delete(key);
    return this.holds.delete(key);
  }

  /** Forgets the rewrite history of `key` (its desired content changed: a new contest). */
  forget(key: string): void {
    this.history.delete(key);
  }

  /** When the next hold ends (ms since the epoch), if any. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const h of this.holds.values()) if (next === undefined || h.until < next) next = h.until;
    return next;
  }
}
