/**
 * KubeClient: single requests to the Kubernetes API server, with bounded retries
 * (backoff with jitter, Retry-After honoured), one re-read of the credentials
 * after a 401, and request counters. The connection, credentials, timeouts and
 * error messages are the transport's (transport.ts), which the long-lived
 * watches (watch.ts) use too.
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
 *   client.close();
 */
import type http from 'node:http';
import { CniNodeError } from '../core/errors.js';
import { resolveKubeConfig, type KubeConfigOptions, type ResolvedKubeConfig } from './config.js';
import { isRetriableStatus, KubeUnreachableError, networkCode, type KubeStatus } from './errors.js';
import { backoffDelay } from '../sys/backoff.js';
import { parseServerJson } from './limits.js';
import { DEFAULT_RETRY, interrupted, retryAfterMs, sleep, type RetryPolicy } from './retry.js';
import { KubeTransport, type Answer, type HttpMethod, type Outcome, type Query } from './transport.js';

export type { HttpMethod };

export interface KubeRequest {
  method: HttpMethod;
  /** The API path, e.g. /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x. */
  path: string;
  /** Query parameters; undefined values are left out. */
  query?: Query;
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
  /** Per request: give up when the server sends nothing for this long (default 30 s). */
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
  private readonly transport: KubeTransport;

  constructor(
    readonly config: ResolvedKubeConfig,
    private readonly options: KubeClientOptions = {},
  ) {
    this.server = config.server;
    this.namespace = config.namespace;
    this.transport = new KubeTransport(config, { maxSockets: 16, connectTimeoutMs: options.connectTimeoutMs, userAgent: options.userAgent });
  }

  /** Sends one request, with retries; returns 2xx answers (and `accept`ed statuses), throws CniNodeErrors otherwise. */
  async request<T = unknown>(req: KubeRequest): Promise<KubeResponse<T>> {
    const policy = req.retry ?? this.options.retry ?? DEFAULT_RETRY;
    const idempotent = req.idempotent ?? req.method !== 'POST';
    const signal = anySignal(req.signal, this.options.signal);
    const started = Date.now();
    let reauthenticated = false;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw interrupted();
      let res: Answer;
      try {
        res = await this.send(req, signal);
      } catch (e) {
        if (signal?.aborted || (e as { name?: string }).name === 'AbortError') throw interrupted();
        const failure = this.transport.failure(e, `request ${req.method}`, req.path, { attempts: attempt, ms: Date.now() - started });
        const code = networkCode(e);
        const surelyNotSent = code === 'ECONNREFUSED' || code === 'CONNECT_TIMEOUT' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
        if (!(failure instanceof KubeUnreachableError) || attempt >= policy.attempts || !(idempotent || surelyNotSent)) throw failure;
        this.stats.retries++;
        await sleep(backoffDelay(attempt, policy), signal);
        continue;
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
        return { status: res.status, body: parseBody(res, this.transport.answerTo(req.method, req.path)) as T, headers: res.headers };
      }
      throw this.transport.refusal(res, req.method, req.path);
    }
  }

  /** Releases the connection pool. Requests made afterwards fail. */
  close(): void {
    this.transport.close();
    this.config.proxyAgent?.destroy();
  }

  /** One exchange: counted, and reported to onRequest. */
  private send(req: KubeRequest, signal: AbortSignal | undefined): Promise<Answer> {
    const dryRun = req.query?.['dryRun'] !== undefined;
    const write = !dryRun && req.method !== 'GET' && req.method !== 'HEAD';
    const report = (outcome: Outcome): void => {
      this.stats.requests++;
      if (write) this.stats.writes++;
      if (dryRun) this.stats.dryRuns++;
      this.options.onRequest?.({ method: req.method, path: req.path, write, dryRun, ...outcome });
    };
    const { method, path, query, body, contentType } = req;
    return this.transport.exchange(
      { method, path, query, body, contentType, timeoutMs: req.timeoutMs ?? this.options.requestTimeoutMs ?? 30_000, signal },
      report,
    );
  }
}

/** The answer's JSON (refused when nested too deep, see limits.ts), or its text when it is not JSON. */
function parseBody(res: Answer, what: string): unknown {
  if (res.text === '') return undefined;
  if (String(res.headers['content-type'] ?? '').includes('json')) {
    try {
      return parseServerJson(res.text, what);
    } catch (e) {
      if (e instanceof CniNodeError) throw e;
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
