/**
 * List+watch of one Kubernetes resource collection, kept alive for as long as the
 * caller wants: the engine under `kube-watch object …` and `cni-node run
 * --config-map=…`.
 *
 * API
 * ---
 *   const w = listWatch({
 *     client,                                   // a KubeClient (client.ts): server, TLS and credentials
 *     path: '/api/v1/namespaces/kube-system/configmaps',
 *     fieldSelector: 'metadata.name=multus-cni',  // and/or labelSelector
 *     signal,                                   // abort = stop (promptly: sockets and timers released at once)
 *     onChange(objects) { … },                  // the current set, whenever it changed
 *     onRestart(reason, detail) { … },          // an established watch ended and is being re-established
 *                                               // (WatchRestartReason; 'timeout' is the normal renewal)
 *     onError(error, retryInMs) { … },          // one failed attempt (list or watch), retried after retryInMs;
 *                                               // also an exception of onChange (retryInMs 0)
 *     onRequest(event) { … },                   // every HTTP request sent: {verb: list|watch, path, status | error}
 *   });
 *   await w.synced;         // true once the first list was delivered (false if stopped before)
 *   w.objects();            // the current set
 *   w.stop(); await w.done; // or abort the signal
 *
 * Semantics
 * ---------
 * - The first successful LIST gives the set and its resourceVersion; `onChange` is
 *   called with it (also when empty). A WATCH from that resourceVersion follows
 *   (allowWatchBookmarks, timeoutSeconds between 5 and 10 min, like client-go).
 * - `onChange(objects)` is called ONLY when the set changed: objects compared by
 *   uid and resourceVersion (a re-list that brings the same objects, a reconnect,
 *   a bookmark, the server's timeout: no call). Objects are sorted by namespace
 *   and name and carry `kind` and `apiVersion` (filled in for listed items, as
 *   kubectl does). Events of one network read are applied together, then compared
 *   once. Calls never overlap and are not awaited: keep `onChange` quick and queue
 *   long work (its exceptions and rejections go to `onError`).
 * - Exactly one connection per watcher at a time (its own keep-alive agent with
 *   one socket: the LIST and the WATCH after it share it); no polling.
 * - Restarts: an ended watch (server timeout, API server shutdown, network drop)
 *   is resumed from the last resourceVersion seen (an event or a bookmark); a 410
 *   Gone (HTTP status or an ERROR event with code 410) means that resourceVersion
 *   is too old: the collection is listed again. Failed attempts back off
 *   exponentially with jitter (0.5 s doubling, capped at 30 s), honouring
 *   Retry-After on 429/5xx; a watch that made progress (an event, or 10 s of life)
 *   that ended cleanly or with 410 is re-established at once. A 401 makes the
 *   credentials be read again (rotated service account token). 403/404 are
 *   retried with backoff too (RBAC or a CRD may appear later) and reported.
 *   A watch that stays silent past its timeoutSeconds + 30 s (a dead peer that
 *   never closed the connection) is dropped and re-established ('stalled'); the
 *   same watchdog gives up on a watch request that is never answered.
 * - stop()/abort: the request in flight is destroyed and a pending backoff timer
 *   cleared at once; `done` resolves within milliseconds; no callback after it.
 * - Nothing here throws after listWatch() returns: failures are reported to
 *   onError and retried until stopped.
 *
 * Why not client.watch(): the watch needs its own single-socket agent, the
 * response headers (Retry-After) of a refused watch, a stall watchdog and a
 * per-attempt abort; client.ts still provides the credentials (config.ts), the
 * error translation (errors.ts) and the backoff arithmetic (retry.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { CniNodeError, reason } from '../core/errors.js';
import type { KubeClient } from './client.js';
import type { ResolvedKubeConfig } from './config.js';
import { isTlsError, isTransientNetworkError, KubeUnreachableError, networkCode, statusError } from './errors.js';
import { backoffDelay, retryAfterMs, type RetryPolicy } from './retry.js';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** A Kubernetes object as the API server sends it. */
export interface WatchedObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/**
 * Why an established watch ended:
 *  - 'timeout': the server ended it after timeoutSeconds (normal; resumed at once)
 *  - 'closed':  the server ended it early (e.g. an API server shutting down)
 *  - 'expired': 410 Gone, the resourceVersion is too old (listed again)
 *  - 'error':   the connection failed or an ERROR event other than 410 came
 *  - 'stalled': no end and no data past timeoutSeconds + 30 s (dropped by us)
 */
export type WatchRestartReason = 'timeout' | 'closed' | 'expired' | 'error' | 'stalled';

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
  onRestart?: (reason: WatchRestartReason, detail: string) => void;
  /** A failed attempt (the error says what and where) and the delay before the next one. */
  onError?: (error: CniNodeError, retryInMs: number) => void;
  onRequest?: (event: WatchRequestEvent) => void;
  /** Server-side watch timeout; default random 300–599 s. */
  timeoutSeconds?: number;
  /** Backoff of failed attempts (default 500 ms doubling to 30 s, equal jitter). */
  backoff?: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>;
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

export const DEFAULT_WATCH_BACKOFF: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'> = { baseDelayMs: 500, maxDelayMs: 30_000 };

interface ListBody {
  kind?: string;
  apiVersion?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: WatchedObject[];
}

interface WatchEventLine {
  type?: string;
  object?: WatchedObject & { code?: number; reason?: string; message?: string };
}

class Stopped extends Error {}

/** A failed attempt, with what the server said about when to come back. */
class AttemptError extends Error {
  constructor(
    readonly error: CniNodeError,
    readonly status?: number,
    readonly retryAfter?: number,
  ) {
    super(error.message);
  }
}

function keyOf(o: WatchedObject): string {
  return o.metadata.uid ?? `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
}

function sortKey(o: WatchedObject): string {
  return `${o.metadata.namespace ?? ''}\u0000${o.metadata.name ?? ''}`;
}

function signatureOf(store: Map<string, WatchedObject>): string {
  return [...store.entries()]
    .map(([k, o]) => `${k}@${o.metadata.resourceVersion ?? ''}`)
    .sort()
    .join('\n');
}

function isObject(v: unknown): v is WatchedObject {
  return typeof v === 'object' && v !== null && typeof (v as { metadata?: unknown }).metadata === 'object' && (v as { metadata?: unknown }).metadata !== null;
}

/** Starts a list+watch; see the top of this file. */
export function listWatch(options: ListWatchOptions): ListWatcher {
  const config: ResolvedKubeConfig = options.client.config;
  const backoff: RetryPolicy = { attempts: Number.MAX_SAFE_INTEGER, ...(options.backoff ?? DEFAULT_WATCH_BACKOFF) };
  const random = options.random ?? Math.random;
  const isHttps = config.server.startsWith('https:');
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const progressMs = options.progressMs ?? 10_000;
  const stallGraceMs = options.stallGraceMs ?? 30_000;
  const pageSize = options.pageSize ?? 500;
  // One socket per watcher: the LIST and the WATCH after it take turns on it.
  const agent: http.Agent = config.proxyAgent ?? (isHttps ? new https.Agent({ keepAlive: true, maxSockets: 1, ...config.tls }) : new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const ownsAgent = config.proxyAgent === undefined;

  const stopper = new AbortController();
  const stop = (): void => stopper.abort();
  if (options.signal?.aborted) stop();
  else options.signal?.addEventListener('abort', stop, { once: true });

  let store = new Map<string, WatchedObject>();
  let delivered: string | undefined;
  let rv: string | undefined;
  let restarts = 0;
  let resolveSynced: (v: boolean) => void = () => undefined;
  const synced = new Promise<boolean>((resolve) => (resolveSynced = resolve));
  let current: AbortController | undefined;
  let sleeping: { timer: NodeJS.Timeout; resolve: () => void } | undefined;

  stopper.signal.addEventListener('abort', () => {
    current?.abort();
    if (sleeping) {
      clearTimeout(sleeping.timer);
      sleeping.resolve();
    }
  });

  const reportError = (e: CniNodeError, retryIn: number): void => {
    try {
      options.onError?.(e, retryIn);
    } catch {
      // A reporting hook must not break the watch.
    }
  };

  const deliver = (): void => {
    if (stopper.signal.aborted) return; // no callback after stop()
    const sig = signatureOf(store);
    if (sig === delivered) return;
    delivered = sig;
    const objects = sorted();
    try {
      const r = options.onChange(objects);
      if (r && typeof (r as Promise<void>).then === 'function') {
        (r as Promise<void>).catch((e: unknown) => reportError(wrap(e, 'onChange'), 0));
      }
    } catch (e) {
      reportError(wrap(e, 'onChange'), 0);
    }
  };

  const sorted = (): WatchedObject[] => [...store.values()].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));

  const sleep = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      if (stopper.signal.aborted || ms <= 0) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        sleeping = undefined;
        resolve();
      }, ms);
      sleeping = { timer, resolve };
    });

  const report = (ev: WatchRequestEvent): void => {
    try {
      options.onRequest?.(ev);
    } catch {
      // Counting must not break the watch.
    }
  };

  /** Sends a GET and resolves with the response head (any status). */
  const open = (verb: 'list' | 'watch', query: Record<string, string | number | boolean | undefined>, signal: AbortSignal, timeoutMs: number): Promise<http.IncomingMessage> =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      void (async () => {
        const url = new URL(config.server + options.path);
        for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
        const headers: Record<string, string> = { accept: 'application/json', 'user-agent': options.userAgent ?? 'cni-node' };
        let auth: string | undefined;
        try {
          auth = await config.auth.header();
        } catch (e) {
          reject(new AttemptError(wrap(e, 'credentials')));
          return;
        }
        if (auth) headers['authorization'] = auth;
        if (signal.aborted) {
          reject(stopper.signal.aborted ? new Stopped() : new AttemptError(new CniNodeError('api', `${verb} ${config.server}${options.path}: abandoned`)));
          return;
        }
        const req = (isHttps ? https : http).request(url, { method: 'GET', headers, agent, signal }, (res) => {
          report({ verb, path: options.path, status: res.statusCode ?? 0 });
          resolve(res);
        });
        req.on('socket', (socket) => {
          if (!socket.connecting) return;
          const timer = setTimeout(
            () => req.destroy(Object.assign(new Error(`connecting to ${config.server} timed out after ${connectTimeoutMs} ms`), { code: 'CONNECT_TIMEOUT' })),
            connectTimeoutMs,
          );
          socket.once(isHttps ? 'secureConnect' : 'connect', () => clearTimeout(timer));
          socket.once('close', () => clearTimeout(timer));
        });
        if (timeoutMs > 0) {
          req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'REQUEST_TIMEOUT' })));
        }
        req.on('error', (e) => {
          if (stopper.signal.aborted) {
            reject(new Stopped());
            return;
          }
          report({ verb, path: options.path, error: networkCode(e) });
          reject(new AttemptError(networkError(e, verb)));
        });
        req.end();
      })();
    });

  const networkError = (e: unknown, verb: string): CniNodeError => {
    const where = `${verb} ${config.server}${options.path}`;
    if (isTlsError(e)) {
      return new CniNodeError('api', `cannot talk to the Kubernetes API server at ${config.server} over TLS: ${reason(e)}. Check the cluster CA and server name in the credentials from ${config.source}`);
    }
    if (isTransientNetworkError(e)) {
      return new KubeUnreachableError(`cannot reach the Kubernetes API server at ${config.server} (${where}): ${reason(e)}; the address comes from ${config.source}`, config.server, networkCode(e));
    }
    return new CniNodeError('api', `${where} failed: ${reason(e)}`);
  };

  const readAll = (res: http.IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
      res.on('aborted', () => reject(Object.assign(new Error('the API server closed the connection mid-answer'), { code: 'ECONNRESET' })));
    });

  /** A non-2xx answer as an AttemptError (with Retry-After), after re-reading credentials on 401. */
  const refused = async (res: http.IncomingMessage, verb: string): Promise<AttemptError> => {
    const text = await readAll(res).catch(() => '');
    const status = res.statusCode ?? 0;
    if (status === 401) config.auth.invalidate();
    const err = statusError(status, text, { method: 'GET', path: `${options.path} (${verb})`, server: config.server, credentials: config.source });
    let hint = retryAfterMs(res.headers['retry-after'], backoff.maxDelayMs);
    if (hint === undefined) {
      try {
        const secs = (JSON.parse(text) as { details?: { retryAfterSeconds?: number } }).details?.retryAfterSeconds;
        if (typeof secs === 'number' && secs >= 0) hint = Math.min(backoff.maxDelayMs, secs * 1000);
      } catch {
        // Not a Status: no hint.
      }
    }
    return new AttemptError(err, status, hint);
  };

  /** LIST (all pages): replaces the set; returns the list's resourceVersion. */
  const list = async (signal: AbortSignal): Promise<void> => {
    const next = new Map<string, WatchedObject>();
    let cont: string | undefined;
    let listRv: string | undefined;
    do {
      const res = await open(
        'list',
        { fieldSelector: options.fieldSelector, labelSelector: options.labelSelector, limit: pageSize, continue: cont },
        signal,
        options.listTimeoutMs ?? 60_000,
      );
      if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) throw await refused(res, 'list');
      let body: ListBody;
      try {
        body = JSON.parse(await readAll(res)) as ListBody;
      } catch (e) {
        if (stopper.signal.aborted) throw new Stopped();
        throw new AttemptError(new CniNodeError('api', `list ${config.server}${options.path}: ${e instanceof SyntaxError ? 'the answer is not JSON' : reason(e)}`));
      }
      listRv ??= body.metadata?.resourceVersion;
      const itemKind = body.kind?.endsWith('List') ? body.kind.slice(0, -4) : undefined;
      for (const item of body.items ?? []) {
        if (!isObject(item)) continue;
        const obj: WatchedObject = { ...(body.apiVersion ? { apiVersion: body.apiVersion } : {}), ...(itemKind ? { kind: itemKind } : {}), ...item };
        next.set(keyOf(obj), obj);
      }
      cont = body.metadata?.continue || undefined;
    } while (cont !== undefined);
    store = next;
    rv = listRv;
  };

  type WatchEnd = { reason: WatchRestartReason; detail: string; progressed: boolean; status?: number; retryAfter?: number };

  /** One WATCH from `rv`, until it ends; applies events as they come. */
  const watchOnce = async (signal: AbortController): Promise<WatchEnd> => {
    const timeoutSeconds = options.timeoutSeconds ?? 300 + Math.floor(random() * 300);
    // The watchdog covers the whole attempt: a server (or proxy) that never answers
    // the request, and a stream that goes silent without ever ending.
    const stallMs = timeoutSeconds * 1000 + stallGraceMs;
    let stalled = false;
    const watchdog = setTimeout(() => {
      stalled = true;
      signal.abort();
    }, stallMs);
    try {
      return await streamWatch(signal, timeoutSeconds, () => stalled);
    } catch (e) {
      if (stalled && !stopper.signal.aborted) {
        throw new AttemptError(new CniNodeError('api', `watch ${config.server}${options.path}: no answer within ${stallMs / 1000} s; trying again`));
      }
      throw e;
    } finally {
      clearTimeout(watchdog);
    }
  };

  const streamWatch = async (signal: AbortController, timeoutSeconds: number, isStalled: () => boolean): Promise<WatchEnd> => {
    const res = await open(
      'watch',
      {
        watch: 1,
        allowWatchBookmarks: true,
        timeoutSeconds,
        resourceVersion: rv,
        fieldSelector: options.fieldSelector,
        labelSelector: options.labelSelector,
      },
      signal.signal,
      0,
    );
    const status = res.statusCode ?? 0;
    if (status === 410) {
      await readAll(res).catch(() => '');
      return { reason: 'expired', detail: 'resourceVersion too old (410 Gone)', progressed: true };
    }
    if (status < 200 || status >= 300) throw await refused(res, 'watch');

    const started = Date.now();
    let events = 0;
    return await new Promise<WatchEnd>((resolve, reject) => {
      let buffered = '';
      let finished = false;
      const finish = (end: WatchEnd | Error): void => {
        if (finished) return;
        finished = true;
        res.removeAllListeners('data');
        res.destroy();
        if (end instanceof Error) reject(end);
        else resolve(end);
      };
      const progressed = (): boolean => events > 0 || Date.now() - started >= progressMs;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        let changed = false;
        while ((nl = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === '') continue;
          let ev: WatchEventLine;
          try {
            ev = JSON.parse(line) as WatchEventLine;
          } catch {
            finish(new AttemptError(new CniNodeError('api', `watch ${config.server}${options.path}: the API server sent a line that is not JSON: ${line.slice(0, 200)}`)));
            return;
          }
          const obj = ev.object;
          if (ev.type === 'ERROR') {
            const code = obj?.code;
            const message = obj?.message ?? JSON.stringify(obj);
            if (code === 410) {
              finish({ reason: 'expired', detail: `resourceVersion too old (ERROR event 410: ${message})`, progressed: true });
            } else {
              finish({ reason: 'error', detail: `ERROR event${code ? ` ${code}` : ''}: ${message}`, progressed: false, ...(code ? { status: code } : {}) });
            }
            return;
          }
          if (!isObject(obj)) continue;
          events++;
          if (obj.metadata.resourceVersion) rv = obj.metadata.resourceVersion;
          if (ev.type === 'BOOKMARK') continue;
          if (ev.type === 'DELETED') store.delete(keyOf(obj));
          else if (ev.type === 'ADDED' || ev.type === 'MODIFIED') store.set(keyOf(obj), obj);
          else continue;
          changed = true;
        }
        if (changed) deliver();
      });
      res.on('end', () => {
        const lived = Date.now() - started;
        const timedOut = lived >= Math.max(timeoutSeconds * 1000 - 1_000, timeoutSeconds * 900);
        finish({
          reason: timedOut ? 'timeout' : 'closed',
          detail: timedOut ? `the server ended the watch after ${timeoutSeconds} s, as asked` : `the server closed the watch after ${(lived / 1000).toFixed(1)} s`,
          // Ending as asked is healthy however short timeoutSeconds was.
          progressed: timedOut || progressed(),
        });
      });
      const broke = (e: unknown): void => {
        if (stopper.signal.aborted) finish(new Stopped());
        else if (isStalled()) finish({ reason: 'stalled', detail: `silent for longer than timeoutSeconds (${timeoutSeconds} s) + ${stallGraceMs / 1000} s; reconnecting`, progressed: false });
        else finish({ reason: 'error', detail: `the connection broke: ${reason(e)}`, progressed: progressed() });
      };
      res.on('error', broke);
      res.on('aborted', () => broke(new Error('aborted')));
      res.on('close', () => {
        if (!res.complete) broke(new Error('connection closed mid-stream'));
      });
    });
  };

  const loop = async (): Promise<void> => {
    let failures = 0;
    let listed = false;
    let needList = true;
    while (!stopper.signal.aborted) {
      const attempt = new AbortController();
      current = attempt;
      let delay = 0;
      try {
        if (needList) {
          await list(attempt.signal);
          needList = false;
          deliver();
          if (!listed) {
            listed = true;
            resolveSynced(true);
          }
        }
        const end = await watchOnce(attempt);
        restarts++;
        try {
          options.onRestart?.(end.reason, end.detail);
        } catch {
          // A reporting hook must not break the watch.
        }
        if (end.reason === 'expired') needList = true;
        if (end.progressed) failures = 0;
        if (end.progressed && (end.reason === 'timeout' || end.reason === 'closed' || end.reason === 'expired')) {
          delay = 0;
        } else {
          failures++;
          delay = Math.max(backoffDelay(failures, backoff, random), end.retryAfter ?? 0);
          if (end.reason === 'error' && end.status !== undefined) {
            reportError(new CniNodeError('api', `watch ${config.server}${options.path}: ${end.detail}`), delay);
          }
        }
      } catch (e) {
        if (e instanceof Stopped || stopper.signal.aborted) break;
        const err = e instanceof AttemptError ? e : new AttemptError(wrap(e, 'watch'));
        if (err.status === 410) needList = true;
        failures++;
        delay = Math.max(backoffDelay(failures, backoff, random), err.retryAfter ?? 0);
        reportError(err.error, delay);
      } finally {
        current = undefined;
      }
      if (delay > 0) await sleep(delay);
    }
  };

  const done = loop()
    .catch((e: unknown) => reportError(wrap(e, 'watch loop'), 0))
    .finally(() => {
      resolveSynced(false);
      options.signal?.removeEventListener('abort', stop);
      if (ownsAgent) agent.destroy();
    });

  return {
    synced,
    objects: sorted,
    resourceVersion: () => rv,
    get restarts() {
      return restarts;
    },
    stop,
    done,
  };
}

function wrap(e: unknown, what: string): CniNodeError {
  if (e instanceof CniNodeError) return e;
  return new CniNodeError('api', `${what}: ${reason(e)}`, [], { cause: e });
}
