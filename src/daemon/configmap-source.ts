/**
 * `run --config-map`: the desired lists from one ConfigMap, followed with one
 * list+watch (kube/watch.ts). A missing or invalid ConfigMap is reported (log,
 * readiness, Event) and the last good desired state is kept; an API outage after
 * the first answer leaves the node as it is, and ready.
 */
import { KINDS } from '../core/plan.js';
import { printable } from '../core/printable.js';
import type { KubeClient } from '../kube/client.js';
import { listWatch, type ListWatcher, type WatchedObject } from '../kube/watch.js';
import { CONFIG_MAP_KEYS, describeDesired, desiredFromConfigMap, type ConfigMapRef, type DesiredLists } from './desired.js';
import type { ObserverDeps } from './observer.js';

const READINESS_CONFIGMAP = 'configmap';
const READINESS_CONFIGMAP_INVALID = 'configmap-invalid';

export interface ConfigMapLists {
  lists: DesiredLists;
  resourceVersion: string | undefined;
  /** The first valid version seen. */
  first: boolean;
}

export class ConfigMapSource {
  private watch: ListWatcher | undefined;
  private seen = false;
  /** The watch has answered at least once (the object, or that it does not exist). */
  private answered = false;
  private validSeen = false;
  private errorLogged: string | undefined;
  /**
   * The values of the list keys in the version last handled. A new version with the
   * same values (another key or an annotation changed, or a broken or hostile API
   * server streaming new resourceVersions of the same object) is nothing to do: not
   * parsed, not logged, not reported again.
   */
  private lastValues: readonly unknown[] | undefined;
  /** A Warning Event said the ConfigMap is missing or invalid: the next valid version says it is over. */
  private warned = false;

  constructor(
    private readonly ref: ConfigMapRef,
    private readonly deps: ObserverDeps & { client: KubeClient },
    /** The desired state now, for messages that say what is kept. */
    private readonly current: () => DesiredLists | undefined,
    /** A valid version of the lists (not necessarily changed). */
    private readonly onLists: (lists: ConfigMapLists) => void,
  ) {}

  private get name(): string {
    return `${this.ref.namespace}/${this.ref.name}`;
  }

  start(signal: AbortSignal): void {
    const { reporter, metrics, readiness, client } = this.deps;
    const name = this.name;
    readiness.set(READINESS_CONFIGMAP, `waiting for the first answer about ConfigMap ${name} from the API server`);
    this.watch = listWatch({
      client,
      path: `/api/v1/namespaces/${encodeURIComponent(this.ref.namespace)}/configmaps`,
      fieldSelector: `metadata.name=${this.ref.name}`,
      signal,
      onChange: (objects) => this.changed(objects, signal),
      onRestart: (reason, detail) => {
        metrics.watchRestarts.inc({ source: 'configmap', reason });
        if (reason !== 'timeout') reporter.info(`ConfigMap ${name} watch restarting: ${detail}`);
      },
      onError: (error, retryInMs) => {
        metrics.watchRestarts.inc({ source: 'configmap', reason: 'failed' });
        // Before the first answer the desired state is unknown: readiness says why.
        // After it, an API outage leaves the node as desired, so it stays ready.
        if (!this.answered) readiness.set(READINESS_CONFIGMAP, `no answer yet about ConfigMap ${name}: ${error.message}; retrying with backoff`);
        // One line per distinct problem, not one per retry.
        const key = error.message.replace(/\d+(\.\d+)? ?m?s\b/g, '');
        if (key !== this.errorLogged) {
          this.errorLogged = key;
          reporter.warn(
            `ConfigMap ${name} watch: ${error.message}; retrying in ${(retryInMs / 1000).toFixed(1)} s (and with backoff after that); the node keeps its current state`,
          );
        }
      },
      onRequest: (ev) => metrics.apiRequests.inc({ verb: ev.verb, code: ev.status !== undefined ? String(ev.status) : (ev.error ?? 'error') }),
    });
  }

  stop(): void {
    this.watch?.stop();
  }

  /** Resolves when the watch has stopped. */
  get done(): Promise<void> {
    return this.watch?.done ?? Promise.resolve();
  }

  private changed(objects: WatchedObject[], signal: AbortSignal): void {
    if (signal.aborted) return;
    const { reporter, readiness } = this.deps;
    this.answered = true;
    if (this.errorLogged !== undefined) {
      reporter.info(`ConfigMap ${this.name} watch: connected again`);
      this.errorLogged = undefined;
    }
    const cm = objects.find((o) => o.metadata.name === this.ref.name);
    if (!cm) return this.missing();
    this.seen = true;
    readiness.set(READINESS_CONFIGMAP, undefined);
    const data = cm['data'] as Record<string, string> | undefined;
    // A value that is not a string (from a broken server) is one problem whatever it holds: compared by its type.
    const values = KINDS.map((k) => {
      const v: unknown = typeof data === 'object' && data !== null ? data[CONFIG_MAP_KEYS[k]] : undefined;
      return v === undefined || typeof v === 'string' ? v : `\0${typeof v}`;
    });
    if (this.lastValues?.every((v, i) => v === values[i])) return;
    this.lastValues = values;
    // From the server: shown, never trusted to be one short line.
    const rv = cm.metadata.resourceVersion === undefined ? undefined : printable(cm.metadata.resourceVersion, 64);
    const parsed = desiredFromConfigMap(data, this.name);
    if (!parsed.ok) return this.invalid(rv, parsed.problems);
    if (readiness.has(READINESS_CONFIGMAP_INVALID)) {
      reporter.info(`ConfigMap ${this.name} is valid again (resourceVersion ${rv ?? '?'})`);
      readiness.set(READINESS_CONFIGMAP_INVALID, undefined);
    }
    if (this.warned) {
      this.warned = false;
      this.deps.events.emit('ConfigMapValid', `ConfigMap ${this.name} exists and is valid (resourceVersion ${rv ?? '?'})`);
    }
    const first = !this.validSeen;
    this.validSeen = true;
    this.onLists({ lists: parsed.lists, resourceVersion: rv, first });
  }

  private missing(): void {
    this.lastValues = undefined;
    const current = this.current();
    const reason = this.seen
      ? `ConfigMap ${this.name} was deleted; keeping the last desired state (${describeDesired(current ?? {})}) until it is back`
      : `ConfigMap ${this.name} does not exist; waiting for it (it holds the keys ${Object.values(CONFIG_MAP_KEYS).join(', ')})`;
    this.deps.readiness.set(READINESS_CONFIGMAP, reason);
    this.deps.reporter.warn(reason);
    this.deps.events.emit('ConfigMapMissing', reason);
    this.warned = true;
  }

  private invalid(rv: string | undefined, problems: readonly string[]): void {
    const current = this.current();
    const kept = current ? `keeping the last good desired state (${describeDesired(current)})` : 'nothing is reconciled until it is fixed';
    this.deps.reporter.error(
      `ConfigMap ${this.name} (resourceVersion ${rv ?? '?'}) has an invalid list; ${kept}:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.deps.readiness.set(READINESS_CONFIGMAP_INVALID, `ConfigMap ${this.name} has an invalid list (${problems.join('; ')}); ${kept}`);
    this.deps.events.emit('InvalidConfigMap', `ConfigMap ${this.name}: ${problems.join('; ')}; ${kept}`);
    this.warned = true;
  }
}
