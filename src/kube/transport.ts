/**
 * The one way cni-node talks HTTP to the Kubernetes API server: a keep-alive
 * connection pool with the credentials of config.ts (TLS, bearer token, proxy),
 * connect and answer timeouts, and the translation of network failures and error
 * answers into CniNodeErrors an operator can act on (errors.ts).
 *
 * Two users, one path: KubeClient.request (client.ts) adds bounded retries; a
 * list+watch (watch.ts) adds resume, relist and backoff, and keeps its own
 * transport with one socket so its LIST and WATCH share one connection.
 */
import http from 'node:http';
import https from 'node:https';
import { CniNodeError, reason } from '../core/errors.js';
import type { ResolvedKubeConfig } from './config.js';
import { isTlsError, isTransientNetworkError, KubeUnreachableError, networkCode, statusError, type KubeApiError } from './errors.js';
import { MAX_ANSWER_BYTES, tooLarge } from './limits.js';
import { printable } from '../core/printable.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Query parameters; undefined values are left out. */
export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export interface TransportRequest {
  method: HttpMethod;
  /** The API path, e.g. /api/v1/namespaces/kube-system/configmaps. */
  path: string;
  query?: Query;
  /** A string or Buffer is sent as it is; anything else as JSON. */
  body?: unknown;
  /** Default application/json when there is a body. */
  contentType?: string;
  /** Give up when the server sends nothing for this long; 0 = never (a watch stream has its own watchdog). */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** What became of one request that was sent: its status, or the network error code. */
export type Outcome = { status: number; ms: number } | { error: string; ms: number };

/** A complete answer. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body as text. */
  text: string;
}

export interface TransportOptions {
  /** Connections kept open to the server (a watcher needs one; the client's requests up to 16). */
  maxSockets: number;
  /** Per attempt: give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
  userAgent?: string;
}

export class KubeTransport {
  readonly server: string;
  private readonly agent: http.Agent;
  private readonly isHttps: boolean;
  private closed = false;

  constructor(
    readonly config: ResolvedKubeConfig,
    private readonly options: TransportOptions,
  ) {
    this.server = config.server;
    this.isHttps = config.server.startsWith('https:');
    const pool = { keepAlive: true, maxSockets: options.maxSockets };
    this.agent = config.proxyAgent ?? (this.isHttps ? new https.Agent({ ...pool, ...config.tls }) : new http.Agent(pool));
  }

  /**
   * Sends a request and resolves with the answer's head, whatever its status; the
   * caller reads or streams the body. Rejects with the raw network error (see
   * failure()), or a CniNodeError when there are no credentials. `onOutcome` hears
   * once of every request that was sent: its status, or the error that ended it.
   */
  async open(x: TransportRequest, onOutcome?: (outcome: Outcome) => void): Promise<http.IncomingMessage> {
    if (this.closed) throw new CniNodeError('api', 'internal error: the Kubernetes client was used after close()');
    const url = new URL(this.server + x.path);
    for (const [k, v] of Object.entries(x.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.options.userAgent ?? 'cni-node' };
    const auth = await this.authorization();
    if (auth) headers['authorization'] = auth;
    let payload: Buffer | undefined;
    if (x.body !== undefined) {
      payload = Buffer.isBuffer(x.body) ? x.body : Buffer.from(typeof x.body === 'string' ? x.body : JSON.stringify(x.body));
      headers['content-type'] = x.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const started = Date.now();
    let reported = false;
    const report = (outcome: Outcome): void => {
      // Once: an error after the answer's head (a body cut off) is the reader's to see.
      if (!reported) onOutcome?.(outcome);
      reported = true;
    };
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 10_000;
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const opts: https.RequestOptions = { method: x.method, headers, agent: this.agent };
      if (x.signal) opts.signal = x.signal;
      const req = (this.isHttps ? https : http).request(url, opts, (res) => {
        report({ status: res.statusCode ?? 0, ms: Date.now() - started });
        resolve(res);
      });
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => req.destroy(coded(`connecting to ${this.server} timed out after ${connectTimeoutMs} ms`, 'CONNECT_TIMEOUT')),
          connectTimeoutMs,
        );
        socket.once(this.isHttps ? 'secureConnect' : 'connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      if (x.timeoutMs > 0) req.setTimeout(x.timeoutMs, () => req.destroy(coded(`no answer within ${x.timeoutMs} ms`, 'REQUEST_TIMEOUT')));
      req.on('error', (e) => {
        report({ error: networkCode(e), ms: Date.now() - started });
        reject(e);
      });
      req.end(payload);
    });
  }

  /** Sends a request and reads the whole answer (at most MAX_ANSWER_BYTES, see limits.ts). */
  async exchange(x: TransportRequest, onOutcome?: (outcome: Outcome) => void): Promise<Answer> {
    const res = await this.open(x, onOutcome);
    const text = await readAll(res, MAX_ANSWER_BYTES, (seen) => tooLarge(this.answerTo(x.method, x.path), MAX_ANSWER_BYTES, seen));
    return { status: res.statusCode ?? 0, headers: res.headers, text };
  }

  /** "the answer to GET https://server/path", for messages about an answer. */
  answerTo(method: string, path: string): string {
    return `the answer to ${method} ${this.server}${path}`;
  }

  /**
   * A request that got no answer, as the operator's message. `verb` and `path` say
   * which ("request GET", "watch"); `tries` how long it was tried, if it was retried.
   */
  failure(e: unknown, verb: string, path: string, tries?: { attempts: number; ms: number }): CniNodeError {
    if (e instanceof CniNodeError) return e;
    if (isTlsError(e)) {
      return new CniNodeError(
        'api',
        `cannot talk to the Kubernetes API server at ${this.server} over TLS: ${printable(reason(e), 500)}. Check the cluster CA and server name in the credentials from ${this.config.source}`,
      );
    }
    if (/^HPE_/.test(networkCode(e))) {
      // Node's HTTP parser refused the answer: headers over its 16 KiB limit, or bytes that are not HTTP.
      return new CniNodeError('api', `${verb} ${this.server}${path}: the answer is not HTTP that cni-node accepts (${printable(reason(e), 200)}); refused`);
    }
    if (!isTransientNetworkError(e)) return new CniNodeError('api', `${verb} ${this.server}${path} failed: ${printable(reason(e), 500)}`);
    const tried = tries ? ` (${tries.attempts} attempt${tries.attempts > 1 ? 's' : ''} over ${(tries.ms / 1000).toFixed(1)} s)` : ` (${verb} ${path})`;
    return new KubeUnreachableError(
      `cannot reach the Kubernetes API server at ${this.server}: ${printable(reason(e), 500)}${tried}. Check that the API server is up and reachable from this node; the address comes from ${this.config.source}`,
      this.server,
      networkCode(e),
    );
  }

  /** An error answer (non-2xx) as the operator's message. */
  refusal(answer: Pick<Answer, 'status' | 'text'>, method: string, path: string): KubeApiError {
    return statusError(answer.status, answer.text, { method, path, server: this.server, credentials: this.config.source });
  }

  /** Releases the connections. Requests made afterwards fail. */
  close(): void {
    this.closed = true;
    if (this.agent !== this.config.proxyAgent) this.agent.destroy();
  }

  private async authorization(): Promise<string | undefined> {
    try {
      return await this.config.auth.header();
    } catch (e) {
      if (e instanceof CniNodeError) throw e;
      throw new CniNodeError('api', `cannot get credentials for the API server at ${this.server} from ${this.config.source}: ${reason(e)}`, [], { cause: e });
    }
  }
}

/**
 * Reads a whole body of at most `maxBytes`, counted as the bytes arrive. A body
 * that says (Content-Length) or turns out to be longer is refused with the error
 * `tooBig` makes (see limits.ts tooLarge), and the response and its connection are
 * destroyed at once: the rest is never read.
 */
export function readAll(res: http.IncomingMessage, maxBytes: number, tooBig: (seen: string) => Error): Promise<string> {
  return new Promise((resolve, reject) => {
    const refuse = (seen: string): void => {
      res.removeAllListeners('data');
      reject(tooBig(seen));
      res.destroy();
    };
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      refuse(`Content-Length: ${declared}`);
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    res.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > maxBytes) refuse(`at least ${bytes} bytes`);
      else chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks, bytes).toString('utf8')));
    res.on('error', reject);
    res.on('aborted', () => reject(coded('the API server closed the connection mid-answer', 'ECONNRESET')));
  });
}

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}
