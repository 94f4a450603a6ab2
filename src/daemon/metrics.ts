/**
 * The daemon's Prometheus metrics (/metrics), in a registry of their own.
 *
 * prom-client's default metrics are not collected: their event-loop monitor wakes
 * the process every 10 ms, which is most of an idle daemon's CPU. The few process
 * metrics worth having (CPU, RSS, start time) are computed at scrape time instead.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Kind } from '../core/plan.js';

export type ReconcileOutcome = 'success' | 'waiting' | 'partial' | 'failed';

export interface DaemonMetrics {
  registry: Registry;
  /** By result, and by failure class (the CniNodeError kind, or internal) when it failed or held items. */
  reconciles: Counter<'result' | 'failure'>;
  duration: Histogram<'result'>;
  itemsManaged: Gauge<'kind'>;
  lastSuccess: Gauge;
  watchRestarts: Counter<'source' | 'reason'>;
  fights: Counter<'kind' | 'name'>;
  itemsHeld: Gauge;
  triggers: Counter<'source'>;
  apiRequests: Counter<'verb' | 'code'>;
  events: Counter<'type' | 'outcome'>;
  /** Node files changed by the daemon, by kind and what happened. */
  changes: Counter<'kind' | 'result'>;
}

// size: a declarative table, one entry per metric with its name, help and labels; splitting it would only scatter the list.
export function createMetrics(): DaemonMetrics {
  const registry = new Registry();
  const registers = [registry];
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());

  new Gauge({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registers,
    collect() {
      const u = process.cpuUsage();
      this.set((u.user + u.system) / 1e6);
    },
  });
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers,
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since unix epoch in seconds.',
    registers,
    collect() {
      this.set(startSeconds);
    },
  });

  return {
    registry,
    reconciles: new Counter({
      name: 'cni_node_reconciles_total',
      help: 'Reconciles run by cni-node run, by result (success, waiting: done except templates waiting for pointer targets, partial: done except items left as they are for their own problems, failed) and, for failed and partial, by failure class (invalid, missing, io, api, conflict, usage, interrupted, internal).',
      labelNames: ['result', 'failure'] as const,
      registers,
    }),
    duration: new Histogram({
      name: 'cni_node_reconcile_duration_seconds',
      help: 'How long one reconcile took.',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    itemsManaged: new Gauge({
      name: 'cni_node_items_managed',
      help: 'Items cni-node manages on this node (its record), by kind.',
      labelNames: ['kind'] as const,
      registers,
    }),
    lastSuccess: new Gauge({
      name: 'cni_node_last_success_timestamp_seconds',
      help: 'When the last reconcile succeeded (unix time); 0 if none has yet.',
      registers,
    }),
    watchRestarts: new Counter({
      name: 'cni_node_watch_restarts_total',
      help: 'ConfigMap watch restarts, by reason: timeout (the server ends every watch after 5-10 min; normal), closed, expired (410: listed again), error, stalled, failed (an attempt that failed; retried with backoff).',
      labelNames: ['source', 'reason'] as const,
      registers,
    }),
    fights: new Counter({
      name: 'cni_node_fight_detections_total',
      help: 'Times something else kept rewriting an item cni-node manages, so cni-node stopped rewriting it for a while.',
      labelNames: ['kind', 'name'] as const,
      registers,
    }),
    itemsHeld: new Gauge({
      name: 'cni_node_items_held',
      help: 'Items cni-node currently leaves alone because something else keeps rewriting them.',
      registers,
    }),
    triggers: new Counter({
      name: 'cni_node_triggers_total',
      help: 'Events that asked for a reconcile, by source (configmap, template, pointer, repair, retry, fight).',
      labelNames: ['source'] as const,
      registers,
    }),
    apiRequests: new Counter({
      name: 'cni_node_api_requests_total',
      help: "HTTP requests the daemon's own Kubernetes client sent (ConfigMap watch, Events), by verb and status code.",
      labelNames: ['verb', 'code'] as const,
      registers,
    }),
    events: new Counter({
      name: 'cni_node_kube_events_total',
      help: 'Kubernetes Events on the pod: sent, dropped by the rate limit or duplicates, failed.',
      labelNames: ['type', 'outcome'] as const,
      registers,
    }),
    changes: new Counter({
      name: 'cni_node_item_changes_total',
      help: 'Items the daemon changed on the node, by kind and result (installed, updated, removed).',
      labelNames: ['kind', 'result'] as const,
      registers,
    }),
  };
}

export function setManaged(metrics: DaemonMetrics, counts: Partial<Record<Kind, number>>): void {
  for (const kind of ['plugin', 'config', 'manifest'] as const) metrics.itemsManaged.set({ kind }, counts[kind] ?? 0);
}
