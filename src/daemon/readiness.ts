/**
 * Readiness of `cni-node run` (/readyz):
 *  - 503 until the first complete reconcile: one that succeeded with nothing left
 *    waiting (a template whose pointer target does not exist yet means the node does
 *    not have its configuration: not ready, with the reason);
 *  - after that, 200 only while the last reconcile succeeded completely;
 *  - and never while a standing problem is reported: an invalid list in the
 *    ConfigMap (the last good desired state is kept), the ConfigMap missing, an item
 *    held because something else keeps rewriting it, --kubeconfig-out failing.
 * The 503 body says why, one reason per line: each line at most MAX_REASON_CHARS and
 * the body at most MAX_BODY_CHARS (reasons quote untrusted input, such as every bad
 * entry of a ConfigMap list; the log has the whole text), control characters escaped
 * (core/printable.ts), so no reason can start a line of its own or send escapes.
 */
import { printable, someOf } from '../core/printable.js';

export const MAX_REASON_CHARS = 2_000;
export const MAX_BODY_CHARS = 16_000;

export type LastReconcile = { state: 'none' } | { state: 'succeeded' } | { state: 'waiting'; reason: string } | { state: 'failed'; reason: string };

export interface ReadinessStatus {
  ready: boolean;
  /** "ok", or the reasons for 503, one per line. */
  reason: string;
}

export class Readiness {
  private completed = false;
  private last: LastReconcile = { state: 'none' };
  private readonly conditions = new Map<string, string>();

  /** A reconcile finished without error; `waiting` lists templates still waiting for pointer targets. */
  succeeded(waiting: ReadonlyMap<string, readonly string[]> = new Map()): void {
    if (waiting.size === 0) {
      this.completed = true;
      this.last = { state: 'succeeded' };
      return;
    }
    const parts = [...waiting].map(([config, targets]) => `config ${config} is waiting for ${someOf(targets)} in the node configs dir`);
    this.last = { state: 'waiting', reason: someOf(parts, 10, '; ') };
  }

  failed(reason: string): void {
    this.last = { state: 'failed', reason };
  }

  /** Sets (or, with undefined, clears) a standing problem under `key`. */
  set(key: string, reason: string | undefined): void {
    if (reason === undefined) this.conditions.delete(key);
    else this.conditions.set(key, reason);
  }

  has(key: string): boolean {
    return this.conditions.has(key);
  }

  get firstReconcileDone(): boolean {
    return this.completed;
  }

  get lastReconcile(): LastReconcile {
    return this.last;
  }

  status(): ReadinessStatus {
    const reasons: string[] = [];
    if (this.last.state === 'none') reasons.push('starting: the first reconcile has not completed yet');
    else if (this.last.state === 'failed') reasons.push(`the last reconcile failed: ${this.last.reason}`);
    else if (this.last.state === 'waiting') reasons.push(`waiting: ${this.last.reason}`);
    reasons.push(...this.conditions.values());
    if (this.last.state === 'failed' && !this.completed) reasons.push('no reconcile has completed yet');
    if (reasons.length === 0) return { ready: true, reason: 'ok' };
    const lines: string[] = [];
    let length = 0;
    for (const [i, r] of reasons.entries()) {
      const line = printable(r.replace(/\s*\n\s*/g, ' '), MAX_REASON_CHARS - 40);
      if (length + line.length > MAX_BODY_CHARS) {
        lines.push(`… and ${reasons.length - i} more reason(s); see the log`);
        break;
      }
      lines.push(line);
      length += line.length + 1;
    }
    return { ready: false, reason: lines.join('\n') };
  }
}
