/**
 * The requests of one list+watch (watch.ts) over its own transport: each GET with
 * its reporting, a LIST page within the caps (limits.ts), and a refusal turned
 * into a failed attempt with the server's Retry-After.
 */
import type http from 'node:http';
import { CniNodeError, reason } from '../core/errors.js';
import { MAX_ANSWER_BYTES, MAX_WATCHED_BYTES, parseServerJson, tooLarge } from './limits.js';
import { retryAfterMs } from './retry.js';
import { readAll, type KubeTransport, type Outcome, type Query } from './transport.js';
import type { ListWatchOptions } from './watch.js';

/**
 * Pages of one LIST. A server can hand out `continue` tokens for ever with pages
 * too small for the byte cap to stop it; 32 MiB of the smallest objects (~100
 * bytes) in pages of 500 is ~670 pages.
 */
export const MAX_LIST_PAGES = 1_000;

/** A LIST answer, as it may come: any field may be missing or of another type. */
export interface ListBody {
  kind?: unknown;
  apiVersion?: unknown;
  metadata?: { resourceVersion?: unknown; continue?: unknown } | null;
  items?: unknown;
}

/** A failed attempt, with what the server said about when to come back. */
export class AttemptError extends Error {
  constructor(
    readonly error: CniNodeError,
    readonly retryAfter = 0,
    /** The watch had opened, and then sent something refused (see WatchPacer.refused). */
    readonly opened = false,
  ) {
    super(error.message);
  }
}

export class WatchRequests {
  constructor(
    private readonly transport: KubeTransport,
    private readonly options: ListWatchOptions,
    /** The longest backoff: a server's Retry-After is capped to it. */
    private readonly maxDelayMs: number,
    private readonly stopped: () => boolean,
  ) {}

  private get where(): string {
    return `${this.transport.server}${this.options.path}`;
  }

  /**
   * One page of the LIST, and its size. `budget` is what is left of the cap on
   * the LIST's pages together: the page is refused as soon as it goes over that,
   * or over the cap on one answer.
   */
  async listPage(signal: AbortSignal, cont: string | undefined, budget: number): Promise<{ page: ListBody; bytes: number }> {
    const { fieldSelector, labelSelector } = this.options;
    const query = { fieldSelector, labelSelector, limit: this.options.pageSize ?? 500, continue: cont };
    const res = await this.open('list', query, signal, this.options.listTimeoutMs ?? 60_000);
    if (!ok(res)) throw await this.refused(res, 'list');
    const answer = this.transport.answerTo('GET', this.options.path);
    const [cap, what] = budget < MAX_ANSWER_BYTES ? [MAX_WATCHED_BYTES, `the LIST of ${this.where}, all its pages together,`] : [MAX_ANSWER_BYTES, answer];
    let page: unknown;
    let bytes: number;
    try {
      const text = await readAll(res, Math.min(budget, MAX_ANSWER_BYTES), (seen) => tooLarge(what, cap, seen, cap === MAX_WATCHED_BYTES ? NARROW : undefined));
      bytes = Buffer.byteLength(text);
      page = parseServerJson(text, answer);
    } catch (e) {
      if (e instanceof CniNodeError) throw new AttemptError(e);
      throw new AttemptError(new CniNodeError('api', `list ${this.where}: ${e instanceof SyntaxError ? 'the answer is not JSON' : reason(e)}`));
    }
    if (typeof page !== 'object' || page === null || Array.isArray(page))
      throw new AttemptError(new CniNodeError('api', `list ${this.where}: the answer is not a JSON object`));
    return { page: page as ListBody, bytes };
  }

  /** Sends a GET and resolves with the answer's head (any status). */
  async open(verb: 'list' | 'watch', query: Query, signal: AbortSignal, timeoutMs: number): Promise<http.IncomingMessage> {
    const report = (outcome: Outcome): void => {
      if ('error' in outcome && this.stopped()) return;
      try {
        this.options.onRequest?.({ verb, path: this.options.path, ...('status' in outcome ? { status: outcome.status } : { error: outcome.error }) });
      } catch {
        // Counting must not break the watch.
      }
    };
    try {
      return await this.transport.open({ method: 'GET', path: this.options.path, query, timeoutMs, signal }, report);
    } catch (e) {
      if (this.stopped()) throw e;
      throw new AttemptError(this.transport.failure(e, verb, this.options.path));
    }
  }

  /** A non-2xx answer as an AttemptError (with Retry-After); a 401 makes the credentials be read again. */
  async refused(res: http.IncomingMessage, verb: string): Promise<AttemptError> {
    let text = '';
    let unread: CniNodeError | undefined;
    try {
      text = await readAll(res, MAX_ANSWER_BYTES, (seen) => tooLarge(this.transport.answerTo('GET', this.options.path), MAX_ANSWER_BYTES, seen));
    } catch (e) {
      if (e instanceof CniNodeError) unread = e;
    }
    const status = res.statusCode ?? 0;
    if (status === 401) this.options.client.config.auth.invalidate();
    const error = unread ?? this.transport.refusal({ status, text }, 'GET', `${this.options.path} (${verb})`);
    let hint = retryAfterMs(res.headers['retry-after'], this.maxDelayMs);
    if (hint === undefined) {
      try {
        const secs = (JSON.parse(text) as { details?: { retryAfterSeconds?: number } }).details?.retryAfterSeconds;
        if (typeof secs === 'number' && secs >= 0) hint = Math.min(this.maxDelayMs, secs * 1000);
      } catch {
        // Not a Status: no hint.
      }
    }
    return new AttemptError(error, hint);
  }
}

export const NARROW = 'narrow the watch: a namespace, name or label selector';

export function stringOrUndefined(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function ok(res: http.IncomingMessage): boolean {
  const status = res.statusCode ?? 0;
  return status >= 200 && status < 300;
}
