/**
 * A small request layer over node:https for the Kubernetes API: credentials from
 * config.ts, one keep-alive connection pool, bounded retries with backoff and
 * jitter, errors translated into CniNodeErrors (errors.ts), request counters, and
 * a watch stream. Everything cni-node says to the API server goes through here.
 *
 * Why not the generated API classes of @kubernetes/client-node: cni-node needs
 * arbitrary kinds (discovery-driven paths), server-side apply with dry-run, exact
 * control over retries and status handling, and a cheap no-op path; raw requests
 * make all of that explicit. The library still parses kubeconfigs and runs exec /
 * auth-provider plugins (config.ts).
 *
 * Usage (the daemon does the same):
 *   const client = await createKubeClient({ kubeconfig, env, signal });
 *   const { body } = await client.request<ConfigMap>({ method: 'GET', path: '/api/v1/namespaces/kube-system/configmaps/multus-cni' });
 *   for await (const ev of client.watch('/api/v1/namespaces/kube-system/configmaps', { query: { fieldSelector: 'metadata.name=multus-cni', resourceVersion: rv } })) …
 *   client.close();
 */
import http from 'node:http';
import https from 'node:https';
import { CniNodeError, reason } from '../core/errors.js';
import { resolveKubeConfig, type KubeConfigOptions, type ResolvedKubeConfig } from './config.js';
import { isRetriableStatus, isTlsError, isTransientNetworkError, KubeUnreachableError, networkCode, statusError, type KubeStatus } from './errors.js';
import { backoffDelay, DEFAULT_RETRY, interrupted, retryAfterMs, sleep, type RetryPolicy } from './retry.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface KubeRequest {
  method: HttpMethod;
  /** The API path, e.g. /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x. */
  path: string;
  /** Query parameters; undefined values are left out. */
  query?: Readonly<Record<string, string | number | boolean | undefined>>;
  /** A string or Buffer is sent as it is; anything else as JSON. */
  body?: unknown;
  /** Default application/json when there is a body. */
  contentType?: string;
  /** Statuses returned to the caller instead of thrown (e.g. [404] for "is it there?"). 2xx always are. */
  accept?: readonly number[];
  /**
   * Whether repeating the request is harmless (default: every method but POST).
   * Non-idempotent requests are retried only when they certainly did not reach the
   * server (connection refused, connect timeout) or were throttled (429).
   */
  idempotent?: boolean;
  retry?: RetryPolicy;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface KubeResponse<T = unknown> {
  status: number;
  /** Parsed JSON, or the raw text when the answer is not JSON. */
  body: T;
  headers: http.IncomingHttpHeaders;
}

export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  /** The object; for ERROR a Status (code 410 = resourceVersion too old: list again). */
  object: T;
}

export interface WatchOptions {
  query?: Readonly<Record<string, string | number | boolean | undefined>>;
  signal?: AbortSignal;
}

/** One HTTP exchange, as reported to `onRequest` (each retry is its own exchange). */
export interface RequestEvent {
  method: string;
  path: string;
  /** Undefined when no answer came (network error). */
  status?: number;
  error?: string;
  /** A request that may change something (not GET/HEAD, not a dry run). */
  write: boolean;
  dryRun: boolean;
  ms: number;
}

export interface KubeClientOptions extends KubeConfigOptions {
  retry?: RetryPolicy;
  /** Per request: give up when the server sends nothing for this long (default 30 s). Watches have none. */
  requestTimeoutMs?: number;
  /** Per attempt: give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
  /** Aborts every request of the client (SIGTERM). */
  signal?: AbortSignal;
  userAgent?: string;
  onRequest?: (event: RequestEvent) => void;
}

export interface KubeClientStats {
  /** HTTP exchanges sent, retries included. */
  requests: number;
  /** Of those, requests that may change something (not GET/HEAD, not dry-run). */
  writes: number;
  dryRuns: number;
  retries: number;
}

/** Loads the credentials (config.ts) and returns a client. Throws a CniNodeError when there are none. */
export async function createKubeClient(options: KubeClientOptions = {}): Promise<KubeClient> {
  return new KubeClient(await resolveKubeConfig(options), options);
}

export class KubeClient {
  readonly server: string;
  /** The namespace for namespaced objects that name none (see ResolvedKubeConfig.namespace). */
  readonly namespace: string;
  readonly stats: KubeClientStats = { requests: 0, writes: 0, dryRuns: 0, retries: 0 };
  private readonly agent: http.Agent;
  private readonly ownsAgent: boolean;
  private readonly isHttps: boolean;
  private closed = false;

  constructor(
    readonly config: ResolvedKubeConfig,
    private readonly options: KubeClientOptions = {},
  ) {
    this.server = config.server;
    this.namespace = config.namespace;
    this.isHttps = config.server.startsWith('https:');
    if (config.proxyAgent) {
      this.agent = config.proxyAgent;
      this.ownsAgent = true;
    } else if (this.isHttps) {
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 16, ...config.tls });
      this.ownsAgent = true;
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      this.ownsAgent = true;
    }
  }

  /** Sends one request, with retries; returns 2xx answers (and `accept`ed statuses), throws CniNodeErrors otherwise. */
  async request<T = unknown>(req: KubeRequest): Promise<KubeResponse<T>> {
    const policy = req.retry ?? this.options.retry ?? DEFAULT_RETRY;
    const idempotent = req.idempotent ?? req.method !== 'POST';
    const signal = anySignal(req.signal, this.options.signal);
    const started = Date.now();
    let reauthenticated = false;
    let lastNetworkError: unknown;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw interrupted();
      let res: RawResponse;
      try {
        res = await this.exchange(req, signal);
      } catch (e) {
        if (signal?.aborted || (e as { name?: string }).name === 'AbortError') throw interrupted();
        if (e instanceof CniNodeError) throw e;
        if (isTlsError(e)) {
          throw new CniNodeError(
            'api',
            `cannot talk to the Kubernetes API server at ${this.server} over TLS: ${reason(e)}. Check the cluster CA and server name in the credentials from ${this.config.source}`,
          );
        }
        if (!isTransientNetworkError(e)) {
          throw new CniNodeError('api', `request ${req.method} ${this.server}${req.path} failed: ${reason(e)}`);
        }
        lastNetworkError = e;
        const code = networkCode(e);
        const surelyNotSent = code === 'ECONNREFUSED' || code === 'CONNECT_TIMEOUT' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
        if (attempt < policy.attempts && (idempotent || surelyNotSent)) {
          this.stats.retries++;
          await sleep(backoffDelay(attempt, policy), signal);
          continue;
        }
        throw this.unreachable(lastNetworkError, attempt, Date.now() - started);
      }
      if (res.status === 401 && !reauthenticated && this.config.auth.invalidate()) {
        // A rotated token: read it again once before giving up.
        reauthenticated = true;
        attempt--;
        continue;
      }
      if (isRetriableStatus(res.status, res.headers['retry-after']) && attempt < policy.attempts && (idempotent || res.status === 429)) {
        this.stats.retries++;
        const hint = retryAfterMs(res.headers['retry-after'], Math.max(policy.maxDelayMs, 1_000) * 2);
        await sleep(Math.max(backoffDelay(attempt, policy), hint ?? 0), signal);
        continue;
      }
      if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status)) {
        return { status: res.status, body: parseBody(res) as T, headers: res.headers };
      }
      throw statusError(res.status, res.text, { method: req.method, path: req.path, server: this.server, credentials: this.config.source });
    }
  }

  /**
   * Streams a watch: yields events until the server ends the watch (its timeout, or
   * a restart), the signal aborts (then it just returns) or the connection fails
   * (throws). No retries and no resume here: the caller restarts the watch from the
   * last resourceVersion it saw, and lists again after a 410 ERROR event.
   */
  async *watch<T = unknown>(path: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    const signal = anySignal(options.signal, this.options.signal);
    const req: KubeRequest = { method: 'GET', path, query: { ...options.query, watch: 1, allowWatchBookmarks: options.query?.['allowWatchBookmarks'] ?? true } };
    let res: http.IncomingMessage;
    try {
      res = await this.open(req, signal, 0);
    } catch (e) {
      if (signal?.aborted) return;
      if (e instanceof CniNodeError) throw e;
      throw isTransientNetworkError(e) ? this.unreachable(e, 1, 0) : new CniNodeError('api', `watch ${this.server}${path} failed: ${reason(e)}`);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const text = await readAll(res);
      throw statusError(status, text, { method: 'GET', path, server: this.server, credentials: this.config.source });
    }
    let buffered = '';
    res.setEncoding('utf8');
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === '') continue;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            throw new CniNodeError('api', `watch ${path}: the API server sent a line that is not JSON: ${line.slice(0, 200)}`);
          }
          yield event;
        }
      }
    } catch (e) {
      if (signal?.aborted) return;
      if (e instanceof CniNodeError) throw e;
      throw new CniNodeError('api', `watch ${this.server}${path} broke off: ${reason(e)}`);
    } finally {
      res.destroy();
    }
  }

  /** Releases the connection pool. Requests made afterwards fail. */
  close(): void {
    this.closed = true;
    if (this.ownsAgent) this.agent.destroy();
  }

  private unreachable(e: unknown, attempts: number, ms: number): KubeUnreachableError {
    const code = networkCode(e);
    return new KubeUnreachableError(
      `cannot reach the Kubernetes API server at ${this.server}: ${reason(e)} (${attempts} attempt${attempts > 1 ? 's' : ''} over ${(ms / 1000).toFixed(1)} s). ` +
        `Check that the API server is up and reachable from this node; the address comes from ${this.config.source}`,
      this.server,
      code,
    );
  }

  private async exchange(req: KubeRequest, signal: AbortSignal | undefined): Promise<RawResponse> {
    const res = await this.open(req, signal, req.timeoutMs ?? this.options.requestTimeoutMs ?? 30_000);
    const text = await readAll(res);
    return { status: res.statusCode ?? 0, headers: res.headers, text };
  }

  /** Sends the request and resolves with the response head; counts it and reports it to onRequest. */
  private async open(req: KubeRequest, signal: AbortSignal | undefined, timeoutMs: number): Promise<http.IncomingMessage> {
    if (this.closed) throw new CniNodeError('api', 'internal error: the Kubernetes client was used after close()');
    const url = new URL(this.server + req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.options.userAgent ?? 'cni-node',
    };
    const auth = await this.config.auth.header();
    if (auth) headers['authorization'] = auth;
    let payload: Buffer | undefined;
    if (req.body !== undefined) {
      payload = Buffer.isBuffer(req.body) ? req.body : Buffer.from(typeof req.body === 'string' ? req.body : JSON.stringify(req.body));
      headers['content-type'] = req.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const dryRun = req.query?.['dryRun'] !== undefined;
    const write = !dryRun && req.method !== 'GET' && req.method !== 'HEAD';
    this.stats.requests++;
    if (write) this.stats.writes++;
    if (dryRun) this.stats.dryRuns++;
    const started = Date.now();
    const report = (status: number | undefined, error?: string): void => {
      const ev: RequestEvent = { method: req.method, path: req.path, write, dryRun, ms: Date.now() - started };
      if (status !== undefined) ev.status = status;
      if (error !== undefined) ev.error = error;
      this.options.onRequest?.(ev);
    };
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 10_000;

    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const opts: https.RequestOptions = { method: req.method, headers, agent: this.agent };
      if (signal) opts.signal = signal;
      const r = (this.isHttps ? https : http).request(url, opts, (res) => {
        report(res.statusCode);
        resolve(res);
      });
      r.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => r.destroy(Object.assign(new Error(`connecting to ${this.server} timed out after ${connectTimeoutMs} ms`), { code: 'CONNECT_TIMEOUT' })), connectTimeoutMs);
        socket.once(this.isHttps ? 'secureConnect' : 'connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      if (timeoutMs > 0) {
        r.setTimeout(timeoutMs, () => r.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'REQUEST_TIMEOUT' })));
      }
      r.on('error', (e) => {
        report(undefined, networkCode(e));
        reject(e);
      });
      r.end(payload);
    });
  }
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('aborted', () => reject(Object.assign(new Error('the API server closed the connection mid-answer'), { code: 'ECONNRESET' })));
  });
}

function parseBody(res: RawResponse): unknown {
  if (res.text === '') return undefined;
  if (String(res.headers['content-type'] ?? '').includes('json')) {
    try {
      return JSON.parse(res.text);
    } catch {
      return res.text;
    }
  }
  return res.text;
}

function anySignal(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  if (!a) return b;
  if (!b) return a;
  return AbortSignal.any([a, b]);
}

/** True if `e` is the API server's answer `status` (e.g. isStatus(e, 404)). */
export function isStatus(e: unknown, status: number): boolean {
  return (e as { status?: unknown } | undefined)?.status === status && e instanceof CniNodeError;
}

export type { KubeStatus };
