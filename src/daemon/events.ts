/**
 * Kubernetes Events on the daemon's own pod, so `kubectl describe pod` shows why a
 * node is not ready (a failed reconcile, a template waiting for its pointer target,
 * an invalid ConfigMap list, a fight over a file).
 *
 * Best effort and never fatal: the pod is named by POD_NAME / POD_NAMESPACE (the
 * downward API; without them no Events are sent), its uid by POD_UID or, when that
 * is not set, one GET of the pod (kubectl describe matches Events by uid). Events
 * are rate-limited (a token bucket: `burst`, then one per `refillMs`) and the same
 * reason + message is not repeated within `repeatMs`, so a crash-looping condition
 * cannot flood the API server. A failure to send is logged once per distinct
 * cause; the daemon goes on.
 */
import { randomBytes } from 'node:crypto';
import type { Reporter } from '../core/contracts.js';
import { SETTINGS } from '../core/settings.js';
import type { KubeClient } from '../kube/client.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  client: () => Promise<KubeClient | undefined>;
  env: Readonly<Record<string, string | undefined>>;
  reporter: Reporter;
  burst?: number;
  refillMs?: number;
  repeatMs?: number;
  /** Events waiting to be sent beyond this are dropped. */
  maxQueue?: number;
  now?: () => number;
  onOutcome?: (type: EventType, outcome: 'sent' | 'limited' | 'repeat' | 'failed') => void;
}

export interface EventRecorder {
  readonly enabled: boolean;
  emit(type: EventType, reason: string, message: string): void;
  /** Resolves when every queued Event has been sent (or given up on). */
  flush(): Promise<void>;
  close(): void;
}

/** A token bucket: take() is true while tokens last; one comes back every refillMs, up to burst. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }
  take(): boolean {
    const t = this.now();
    const earned = Math.floor((t - this.last) / this.refillMs);
    if (earned > 0) {
      this.tokens = Math.min(this.burst, this.tokens + earned);
      this.last = this.tokens === this.burst ? t : this.last + earned * this.refillMs;
    }
    if (this.tokens <= 0) return false;
    this.tokens--;
    return true;
  }
}

const MAX_MESSAGE = 1024;

export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const podName = SETTINGS.podName.read(options.env);
  const namespace = SETTINGS.podNamespace.read(options.env);
  const now = options.now ?? Date.now;
  if (!podName || !namespace) {
    return { enabled: false, emit: () => undefined, flush: async () => undefined, close: () => undefined };
  }
  const bucket = new TokenBucket(options.burst ?? 10, options.refillMs ?? 30_000, now);
  const repeatMs = options.repeatMs ?? 600_000;
  const maxQueue = options.maxQueue ?? 20;
  const recent = new Map<string, number>();
  const nodeName = SETTINGS.nodeName.read(options.env);
  const reportedFailures = new Set<string>();
  let uid: string | undefined = SETTINGS.podUid.read(options.env);
  let uidLooked = uid !== undefined;
  let queue: Promise<void> = Promise.resolve();
  let queued = 0;
  let closed = false;

  const send = async (type: EventType, reason: string, message: string): Promise<void> => {
    const client = await options.client();
    if (!client || closed) return;
    if (!uidLooked) {
      uidLooked = true;
      try {
        const res = await client.request<{ metadata?: { uid?: string } }>({
          method: 'GET',
          path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}`,
          accept: [403, 404],
          retry: { attempts: 2, baseDelayMs: 200, maxDelayMs: 400 },
        });
        if (res.status === 200) uid = res.body.metadata?.uid;
      } catch {
        // Without the uid the Event is still recorded; describe may not show it.
      }
    }
    const at = new Date(now()).toISOString();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${podName}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: podName, namespace, ...(uid ? { uid } : {}) },
      reason,
      message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message,
      type,
      source: { component: 'cni-node', ...(nodeName ? { host: nodeName } : {}) },
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
      reportingComponent: 'cni-node',
      reportingInstance: podName,
    };
    try {
      await client.request({
        method: 'POST',
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
        body,
        retry: { attempts: 3, baseDelayMs: 250, maxDelayMs: 1_000 },
        timeoutMs: 10_000,
      });
      options.onOutcome?.(type, 'sent');
    } catch (e) {
      options.onOutcome?.(type, 'failed');
      const why = e instanceof Error ? e.message : String(e);
      const key = why.replace(/\d+(\.\d+)? s\b|\d+ attempts?/g, '');
      if (!reportedFailures.has(key) && !closed) {
        reportedFailures.add(key);
        options.reporter.warn(`cannot record a Kubernetes Event on pod ${namespace}/${podName} (best effort, carrying on): ${why}`);
      }
    }
  };

  return {
    enabled: true,
    emit(type, reason, message) {
      if (closed) return;
      const key = `${type}\0${reason}\0${message}`;
      const t = now();
      const seen = recent.get(key);
      if (seen !== undefined && t - seen < repeatMs) {
        options.onOutcome?.(type, 'repeat');
        return;
      }
      if (queued >= maxQueue || !bucket.take()) {
        options.onOutcome?.(type, 'limited');
        return;
      }
      recent.set(key, t);
      if (recent.size > 200) for (const [k, v] of recent) if (t - v >= repeatMs) recent.delete(k);
      queued++;
      queue = queue.then(() => send(type, reason, message)).finally(() => queued--);
    },
    flush: () => queue,
    close() {
      closed = true;
    },
  };
}
