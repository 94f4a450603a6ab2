/**
 * Kubernetes Events on the daemon's own pod, so `kubectl describe pod` shows why a
 * node is not ready (a failed reconcile, a template waiting for its pointer target,
 * an invalid ConfigMap list, a fight over a file).
 *
 * The type of each Event follows one rule (EVENT_REASONS): whatever makes the pod
 * NotReady or leaves an item held is a Warning, so operators who filter on
 * `type=Warning` see every one; the Event saying that such a state is over is
 * Normal. Each Warning is sent when its state starts or its reason changes, and its
 * Normal counterpart when it ends.
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
import { cutToBytes, printable } from '../core/printable.js';
import { SETTINGS } from '../core/settings.js';
import type { KubeClient } from '../kube/client.js';

export type EventType = 'Normal' | 'Warning';

/** Every Event cni-node records, and its type (see the rule above). */
export const EVENT_REASONS = {
  /** A reconcile failed: the pod is NotReady until one succeeds. */
  ReconcileFailed: 'Warning',
  /** An item is held at its last good state for a problem of its own. */
  ItemInvalid: 'Warning',
  /** A config waits for the node file its template points to: the node lacks its config, NotReady. */
  WaitingForPointerTarget: 'Warning',
  /** Something else keeps rewriting a managed file: cni-node holds it for a while. */
  FightDetected: 'Warning',
  /** The ConfigMap's lists do not parse: the last good desired state is kept, NotReady. */
  InvalidConfigMap: 'Warning',
  /** The ConfigMap does not exist (or was deleted): NotReady. */
  ConfigMapMissing: 'Warning',
  /** --kubeconfig-out cannot be kept current: NotReady. */
  KubeconfigOutFailed: 'Warning',
  /** A reconcile completed with nothing failed, held or waiting, after one that was not (ends ReconcileFailed, ItemInvalid, WaitingForPointerTarget). */
  Reconciled: 'Normal',
  /** The ConfigMap exists and is valid again (ends InvalidConfigMap, ConfigMapMissing). */
  ConfigMapValid: 'Normal',
  /** A fight hold ended: cni-node manages the item again (ends FightDetected). */
  FightEnded: 'Normal',
  /** --kubeconfig-out is current again (ends KubeconfigOutFailed). */
  KubeconfigOutCurrent: 'Normal',
} as const satisfies Record<string, EventType>;

export type EventReason = keyof typeof EVENT_REASONS;

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
  /** Records `reason` (its type is EVENT_REASONS[reason]) with `message`. */
  emit(reason: EventReason, message: string): void;
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

/**
 * An Event's message: at most 1 KiB in UTF-8 (the events.k8s.io API refuses a longer
 * note; the core API's Events are shown in the same places), on one line.
 */
export const MAX_EVENT_MESSAGE_BYTES = 1024;
/** An Event's name is `<pod>.<16 hex digits>`; object names are at most 253 characters. */
const MAX_EVENT_NAME = 253;

export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const podName = SETTINGS.podName.read(options.env);
  const namespace = SETTINGS.podNamespace.read(options.env);
  if (!podName || !namespace) {
    return { enabled: false, emit: () => undefined, flush: async () => undefined, close: () => undefined };
  }
  return new PodEvents(options, podName, namespace);
}

/** Events on one pod: rate-limited, not repeated, sent one at a time. */
class PodEvents implements EventRecorder {
  readonly enabled = true;
  private readonly now: () => number;
  private readonly bucket: TokenBucket;
  private readonly repeatMs: number;
  private readonly maxQueue: number;
  /** When each type + reason + message was last sent. */
  private readonly recent = new Map<string, number>();
  private readonly nodeName: string | undefined;
  private readonly reportedFailures = new Set<string>();
  private uid: string | undefined;
  private uidLooked: boolean;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private closed = false;

  constructor(
    private readonly options: EventRecorderOptions,
    private readonly podName: string,
    private readonly namespace: string,
  ) {
    this.now = options.now ?? Date.now;
    this.bucket = new TokenBucket(options.burst ?? 10, options.refillMs ?? 30_000, this.now);
    this.repeatMs = options.repeatMs ?? 600_000;
    this.maxQueue = options.maxQueue ?? 20;
    this.nodeName = SETTINGS.nodeName.read(options.env);
    this.uid = SETTINGS.podUid.read(options.env);
    this.uidLooked = this.uid !== undefined;
  }

  emit(reason: EventReason, text: string): void {
    if (this.closed) return;
    const type = EVENT_REASONS[reason];
    // Messages quote untrusted input (already escaped where they do); this keeps any Event to one line and its size.
    const message = cutToBytes(printable(text, MAX_EVENT_MESSAGE_BYTES - 40), MAX_EVENT_MESSAGE_BYTES);
    const key = `${type}\0${reason}\0${message}`;
    const t = this.now();
    const seen = this.recent.get(key);
    if (seen !== undefined && t - seen < this.repeatMs) {
      this.options.onOutcome?.(type, 'repeat');
      return;
    }
    if (this.queued >= this.maxQueue || !this.bucket.take()) {
      this.options.onOutcome?.(type, 'limited');
      return;
    }
    this.recent.set(key, t);
    if (this.recent.size > 200) for (const [k, v] of this.recent) if (t - v >= this.repeatMs) this.recent.delete(k);
    this.queued++;
    this.queue = this.queue.then(() => this.send(type, reason, message)).finally(() => this.queued--);
  }

  flush(): Promise<void> {
    return this.queue;
  }

  close(): void {
    this.closed = true;
  }

  private async send(type: EventType, reason: string, message: string): Promise<void> {
    const client = await this.options.client();
    if (!client || this.closed) return;
    if (!this.uidLooked) await this.lookUpUid(client);
    try {
      await client.request({
        method: 'POST',
        path: `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/events`,
        body: this.event(type, reason, message),
        retry: { attempts: 3, baseDelayMs: 250, maxDelayMs: 1_000 },
        timeoutMs: 10_000,
      });
      this.options.onOutcome?.(type, 'sent');
    } catch (e) {
      this.options.onOutcome?.(type, 'failed');
      const why = e instanceof Error ? e.message : String(e);
      const key = why.replace(/\d+(\.\d+)? s\b|\d+ attempts?/g, '');
      if (!this.reportedFailures.has(key) && !this.closed) {
        this.reportedFailures.add(key);
        this.options.reporter.warn(`cannot record a Kubernetes Event on pod ${this.namespace}/${this.podName} (best effort, carrying on): ${why}`);
      }
    }
  }

  /** The pod's uid, once (kubectl describe matches Events by it). */
  private async lookUpUid(client: KubeClient): Promise<void> {
    this.uidLooked = true;
    try {
      const res = await client.request<{ metadata?: { uid?: string } }>({
        method: 'GET',
        path: `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(this.podName)}`,
        accept: [403, 404],
        retry: { attempts: 2, baseDelayMs: 200, maxDelayMs: 400 },
      });
      if (res.status === 200) this.uid = res.body.metadata?.uid;
    } catch {
      // Without the uid the Event is still recorded; describe may not show it.
    }
  }

  private event(type: EventType, reason: string, message: string): Record<string, unknown> {
    const { podName, namespace, uid, nodeName } = this;
    const at = new Date(this.now()).toISOString();
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${podName.slice(0, MAX_EVENT_NAME - 17)}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: podName, namespace, ...(uid ? { uid } : {}) },
      reason,
      message,
      type,
      source: { component: 'cni-node', ...(nodeName ? { host: nodeName } : {}) },
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
      reportingComponent: 'cni-node',
      reportingInstance: podName,
    };
  }
}
