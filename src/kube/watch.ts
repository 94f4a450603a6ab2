/**
 * List+watch of one Kubernetes collection, kept alive for as long as the caller
 * wants: under `kube-watch object …` and `cni-node run --config-map=…`.
 *
 *   const w = listWatch({ client, path: '/api/v1/namespaces/kube-system/configmaps',
 *     fieldSelector: 'metadata.name=multus-cni', signal,
 *     onChange(objects) { … }, onRestart(reason, detail) { … }, onError(error, retryInMs) { … }, onRequest(event) { … } });
 *   await w.synced; w.objects(); w.stop(); await w.done;
 *
 * Nothing throws: failures go to onError and are retried with backoff; no callback
 * after stop(). How it lists, watches, resumes and caps: docs/ARCHITECTURE.md.
 */
import type http from 'node:http';
import { CniNodeError, reason } from '../core/errors.js';
import type { KubeClient } from './client.js';
import { formatBytes, MAX_ANSWER_BYTES, MAX_WATCHED_BYTES, tooLarge } from './limits.js';
import { readAll, KubeTransport } from './transport.js';
export { MAX_LIST_PAGES } from './watch-requests.js';
import { AttemptError, MAX_LIST_PAGES, NARROW, ok, stringOrUndefined, WatchRequests } from './watch-requests.js';
import { readWatchStream, type StreamEnd, type WatchEventLine } from './watch-stream.js';
import { isWatchedObject, WatchedSet, type SizedObject, type WatchedObject } from './watched-set.js';
import { WatchPacer, type WatchEnd, type WatchRestartReason } from './watch-pacer.js';
import type { BackoffPolicy } from '../sys/backoff.js';
import { pause } from '../sys/sleep.js';

export type { ObjectMeta, WatchedObject } from './watched-set.js';
export type { WatchRestartReason } from './watch-pacer.js';

export interface WatchRequestEvent {
  verb: 'list' | 'watch';
  path: string;
  /** Undefined when no answer came. */
  status?: number;
  error?: string;
}

export interface ListWatchOptions {
  /** Where and as whom (its `config` is used; its own connection pool is not). */
  client: Pick<KubeClient, 'config'>;
  /** The collection path, e.g. /api/v1/namespaces/kube-system/configmaps or /api/v1/nodes. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  signal?: AbortSignal;
  /** The current set, called after the first list and whenever the set changed. */
  onChange: (objects: WatchedObject[]) => unknown;
  /** An established watch ended and is being re-established ('timeout' is the normal renewal). */
  onRestart?: (reason: WatchRestartReason, detail: string) => void;
  /** A failed attempt (the error says what and where) and the delay before the next one; also a failed onChange (0). */
  onError?: (error: CniNodeError, retryInMs: number) => void;
  /** Every HTTP request sent. */
  onRequest?: (event: WatchRequestEvent) => void;
  /** Server-side watch timeout; default random 300–599 s. */
  timeoutSeconds?: number;
  /** Backoff of failed attempts (default 500 ms doubling to 30 s, equal jitter). */
  backoff?: BackoffPolicy;
  /** Page size of the LIST (default 500). */
  pageSize?: number;
  /** Connect timeout per attempt (default 10 s). */
  connectTimeoutMs?: number;
  /** Timeout of one LIST request (default 60 s). */
  listTimeoutMs?: number;
  /** A watch alive this long counts as progress (resets the backoff); default 10 s. */
  progressMs?: number;
  /** Extra silence allowed past timeoutSeconds before the watch counts as stalled; default 30 s. */
  stallGraceMs?: number;
  random?: () => number;
  userAgent?: string;
}

export interface ListWatcher {
  /** Resolves true once the first list has been delivered to onChange; false if stopped before. */
  readonly synced: Promise<boolean>;
  /** The current set (sorted by namespace/name). */
  objects(): WatchedObject[];
  /** The last resourceVersion seen (list, event or bookmark). */
  resourceVersion(): string | undefined;
  /** Established watches that ended (see WatchRestartReason). */
  readonly restarts: number;
  stop(): void;
  /** Resolves when stopped and every socket and timer is released. */
  readonly done: Promise<void>;
}

export const DEFAULT_WATCH_BACKOFF: BackoffPolicy = { baseDelayMs: 500, maxDelayMs: 30_000 };

/** Starts a list+watch; see the top of this file. */
export function listWatch(options: ListWatchOptions): ListWatcher {
  return new ListWatch(options);
}

export class ListWatch implements ListWatcher {
  readonly synced: Promise<boolean>;
  readonly done: Promise<void>;
  private restartCount = 0;
  private readonly transport: KubeTransport;
  private readonly requests: WatchRequests;
  private readonly set = new WatchedSet();
  private readonly pacer: WatchPacer;
  private readonly stopper = new AbortController();
  private readonly random: () => number;
  /** The request in flight; aborted by stop() and by the stall watchdog. */
  private attempt: AbortController | undefined;
  private rv: string | undefined;
  private needList = true;
  /** The resourceVersion comes from a list that no watch has started from yet. */
  private freshList = false;
  private resolveSynced: (listed: boolean) => void = () => undefined;

  /** Starts at once; see the top of this file. */
  constructor(private readonly options: ListWatchOptions) {
    // One socket: the LIST and the WATCH after it take turns on it.
    this.transport = new KubeTransport(options.client.config, { maxSockets: 1, connectTimeoutMs: options.connectTimeoutMs, userAgent: options.userAgent });
    this.random = options.random ?? Math.random;
    const backoff = options.backoff ?? DEFAULT_WATCH_BACKOFF;
    this.requests = new WatchRequests(this.transport, options, backoff.maxDelayMs, () => this.stopped);
    this.pacer = new WatchPacer(backoff, this.random);
    this.synced = new Promise<boolean>((resolve) => (this.resolveSynced = resolve));
    const stop = (): void => this.stop();
    if (options.signal?.aborted) this.stop();
    else options.signal?.addEventListener('abort', stop, { once: true });
    this.stopper.signal.addEventListener('abort', () => this.attempt?.abort(), { once: true });
    this.done = this.run()
      .catch((e: unknown) => this.reportError(wrap(e, 'watch loop'), 0))
      .finally(() => {
        this.resolveSynced(false);
        options.signal?.removeEventListener('abort', stop);
        this.transport.close();
      });
  }

  get restarts(): number {
    return this.restartCount;
  }

  objects(): WatchedObject[] {
    return this.set.objects();
  }

  resourceVersion(): string | undefined {
    return this.rv;
  }

  stop(): void {
    this.stopper.abort();
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const delay = await this.cycle();
      if (delay > 0) await pause(delay, this.stopper.signal);
    }
  }

  /** One attempt: a LIST when needed, then one WATCH until it ends. Returns the delay before the next. */
  private async cycle(): Promise<number> {
    const attempt = (this.attempt = new AbortController());
    try {
      if (this.needList) await this.list(attempt.signal);
      const end = await this.watch(attempt);
      if (this.stopped) return 0;
      return this.watchEnded(end);
    } catch (e) {
      if (this.stopped) return 0;
      const failed = e instanceof AttemptError ? e : new AttemptError(wrap(e, 'watch'));
      const delay = failed.opened ? this.pacer.refused() : this.pacer.failed(failed.retryAfter);
      this.reportError(failed.error, delay);
      return delay;
    } finally {
      this.attempt = undefined;
    }
  }

  /** LIST, all pages: replaces the set and delivers it. */
  private async list(signal: AbortSignal): Promise<void> {
    const objects: SizedObject[] = [];
    let cont: string | undefined;
    let listRv: string | undefined;
    let listed = 0;
    for (let pages = 1; ; pages++) {
      const { page, bytes } = await this.requests.listPage(signal, cont, MAX_WATCHED_BYTES - listed);
      listed += bytes;
      listRv ??= stringOrUndefined(page.metadata?.resourceVersion);
      const kind = stringOrUndefined(page.kind);
      const apiVersion = stringOrUndefined(page.apiVersion);
      const itemKind = kind?.endsWith('List') ? kind.slice(0, -4) : undefined;
      const items = Array.isArray(page.items) ? page.items : [];
      // Each item is counted as its share of the page's bytes.
      const share = Math.ceil(bytes / Math.max(1, items.length));
      for (const item of items) {
        // Listed items carry no kind and apiVersion; fill them in, as kubectl does.
        if (isWatchedObject(item))
          objects.push({ object: { ...(apiVersion ? { apiVersion } : {}), ...(itemKind ? { kind: itemKind } : {}), ...item }, bytes: share });
      }
      cont = stringOrUndefined(page.metadata?.continue);
      if (cont === undefined) break;
      if (pages >= MAX_LIST_PAGES) {
        throw new AttemptError(
          new CniNodeError(
            'api',
            `list ${this.where}: the API server sent more than ${MAX_LIST_PAGES} pages; refused (narrow the watch: a namespace, name or label selector)`,
          ),
        );
      }
    }
    this.set.replace(objects);
    this.rv = listRv;
    this.needList = false;
    this.freshList = true;
    this.pacer.answered();
    this.deliver();
    this.resolveSynced(true);
  }

  /**
   * One WATCH from the last resourceVersion, until it ends. A watchdog covers the
   * whole attempt: a server (or proxy) that never answers the request, and a
   * stream that goes silent without ever ending.
   */
  private async watch(attempt: AbortController): Promise<WatchEnd> {
    const timeoutSeconds = this.options.timeoutSeconds ?? 300 + Math.floor(this.random() * 300);
    const stallMs = timeoutSeconds * 1000 + (this.options.stallGraceMs ?? 30_000);
    let stalled = false;
    const watchdog = setTimeout(() => {
      stalled = true;
      attempt.abort();
    }, stallMs);
    const fromList = this.freshList;
    this.freshList = false;
    try {
      const { fieldSelector, labelSelector } = this.options;
      const query = { watch: 1, allowWatchBookmarks: true, timeoutSeconds, resourceVersion: this.rv || undefined, fieldSelector, labelSelector };
      const res = await this.requests.open('watch', query, attempt.signal, 0);
      if (res.statusCode === 410) {
        await readAll(res, MAX_ANSWER_BYTES, (seen) => tooLarge('a 410 answer', MAX_ANSWER_BYTES, seen)).catch(() => '');
        return { reason: 'expired', detail: 'resourceVersion too old (410 Gone)', progressed: !fromList };
      }
      if (!ok(res)) throw await this.requests.refused(res, 'watch');
      this.pacer.answered();
      return await this.follow(res, timeoutSeconds, fromList, () => stalled);
    } catch (e) {
      if (stalled && !this.stopped) throw new AttemptError(new CniNodeError('api', `watch ${this.where}: no answer within ${stallMs / 1000} s; trying again`));
      throw e;
    } finally {
      clearTimeout(watchdog);
    }
  }

  /** Applies the events of an open watch until it ends, and says how it ended. */
  private async follow(res: http.IncomingMessage, timeoutSeconds: number, fromList: boolean, isStalled: () => boolean): Promise<WatchEnd> {
    const started = Date.now();
    let events = 0;
    const end: StreamEnd = await readWatchStream(res, (lines) => {
      const applied = this.apply(lines);
      events += applied.events;
      return applied.problem;
    });
    const lived = Date.now() - started;
    const progressed = events > 0 || lived >= (this.options.progressMs ?? 10_000);
    switch (end.how) {
      case 'ended': {
        const timedOut = lived >= Math.max(timeoutSeconds * 1000 - 1_000, timeoutSeconds * 900);
        if (timedOut) return { reason: 'timeout', detail: `the server ended the watch after ${timeoutSeconds} s, as asked`, progressed: true };
        return { reason: 'closed', detail: `the server closed the watch after ${(lived / 1000).toFixed(1)} s`, progressed };
      }
      case 'error-event':
        if (end.code === 410)
          return { reason: 'expired', detail: `resourceVersion too old (ERROR event 410: ${end.message})`, progressed: events > 0 || !fromList };
        return { reason: 'error', detail: `ERROR event${end.code ? ` ${end.code}` : ''}: ${end.message}`, progressed: false, status: end.code };
      case 'refused':
        // Nothing of it was applied; resumed from the last event that was.
        throw new AttemptError(new CniNodeError('api', `watch ${this.where}: ${end.problem}`), 0, true);
      case 'broken':
        if (this.stopped) throw end.error;
        if (isStalled())
          return {
            reason: 'stalled',
            detail: `silent for longer than timeoutSeconds (${timeoutSeconds} s) + ${(this.options.stallGraceMs ?? 30_000) / 1000} s; reconnecting`,
            progressed: false,
          };
        return { reason: 'error', detail: `the connection broke: ${reason(end.error)}`, progressed };
    }
  }

  /**
   * Applies the events of one network read, then delivers once; returns how many
   * there were, and a problem if one would grow the set over its cap (it and the
   * events after it are not applied).
   */
  private apply(lines: WatchEventLine[]): { events: number; problem?: string } {
    let events = 0;
    let changed = false;
    let problem: string | undefined;
    for (const { type, object, bytes } of lines) {
      if (!isWatchedObject(object)) continue;
      if (this.set.bytesAfter(type, object, bytes) > MAX_WATCHED_BYTES) {
        problem = `the objects this watch holds would be larger than the ${formatBytes(MAX_WATCHED_BYTES)} cap with the next event; refused (${NARROW})`;
        break;
      }
      events++;
      const rv = stringOrUndefined(object.metadata.resourceVersion);
      if (rv !== undefined) this.rv = rv;
      if (this.set.apply(type, object, bytes)) changed = true;
    }
    if (changed) this.deliver();
    return { events, ...(problem !== undefined ? { problem } : {}) };
  }

  /** An established watch ended: report it, and say when to watch again. */
  private watchEnded(end: WatchEnd): number {
    this.restartCount++;
    try {
      this.options.onRestart?.(end.reason, end.detail);
    } catch {
      // A reporting hook must not break the watch.
    }
    if (end.reason === 'expired') this.needList = true;
    const delay = this.pacer.ended(end);
    if (end.reason === 'error' && end.status !== undefined) this.reportError(new CniNodeError('api', `watch ${this.where}: ${end.detail}`), delay);
    return delay;
  }

  private deliver(): void {
    if (this.stopped) return; // no callback after stop()
    const objects = this.set.changed();
    if (!objects) return;
    try {
      const r = this.options.onChange(objects);
      if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch((e: unknown) => this.reportError(wrap(e, 'onChange'), 0));
    } catch (e) {
      this.reportError(wrap(e, 'onChange'), 0);
    }
  }

  private reportError(e: CniNodeError, retryInMs: number): void {
    try {
      this.options.onError?.(e, retryInMs);
    } catch {
      // A reporting hook must not break the watch.
    }
  }

  private get where(): string {
    return `${this.transport.server}${this.options.path}`;
  }
}

function wrap(e: unknown, what: string): CniNodeError {
  if (e instanceof CniNodeError) return e;
  return new CniNodeError('api', `${what}: ${reason(e)}`, [], { cause: e });
}
