// A TLS-terminating loopback proxy in front of the test kube-apiserver that counts
// every TCP connection, TLS connection and HTTP request, and can inject faults:
// answer a request with a status (410, 429 + Retry-After, 5xx) or a watch ERROR
// event instead of the server, or with whatever bytes a test writes (a proxy gone
// wrong: endless bodies and lines, nesting, control characters; see
// streamBytes), delay every response (head and each chunk), cut
// every connection, freeze streams (a silent peer), or accept requests and never
// answer. When the upstream API server is down, the client's request is cut (as a
// load balancer with no backend does) and counted.
//
// It serves with the API server's own key and certificate (valid for 127.0.0.1),
// so a client that trusts the cluster CA trusts the proxy too.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import type { TestCluster } from './cluster.js';

export interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  /** When the request arrived. */
  at: number;
  /** Answered by an injected fault instead of the server. */
  faulted: boolean;
  /** The status sent to the client (undefined while unanswered, or when cut). */
  status?: number;
  /** The upstream could not be reached (the client's request was cut). */
  upstreamError?: string;
}

/** The requests of the list+watch of ConfigMap `name` in `namespace` (by field selector), as the proxy saw them. */
export function configMapRequests(namespace: string, name: string) {
  const mine = (s: Seen) => s.path === `/api/v1/namespaces/${namespace}/configmaps` && s.query.get('fieldSelector') === `metadata.name=${name}`;
  return {
    mine,
    isList: (s: Seen) => mine(s) && s.query.get('watch') === null,
    isWatch: (s: Seen) => mine(s) && s.query.get('watch') === '1',
  };
}

/** The ms between consecutive requests. */
export const gapsOf = (seen: readonly Seen[]): number[] => seen.slice(1).map((s, i) => s.at - (seen[i] as Seen).at);

export type Fault =
  | { status: number; headers?: Record<string, string>; body?: unknown }
  | { watchErrorEvent: { code: number; reason: string; message: string } }
  /** The test writes the answer itself. */
  | { respond: (res: http.ServerResponse) => void };

/** What streamBytes wrote before it stopped. */
export interface Streamed {
  /** Bytes of the body handed to the connection. */
  written: number;
  /** The client closed the connection before `maxBytes` were written. */
  closedByClient: boolean;
}

/**
 * Writes `head`, then `fill` again and again (waiting whenever the connection is
 * full, as a real sender does), until `maxBytes` of body are written (then `tail`
 * and the end) or the client goes away.
 */
export function streamBytes(res: http.ServerResponse, opts: { head: string; fill: string; maxBytes: number; tail?: string }): Promise<Streamed> {
  const fill = Buffer.from(opts.fill);
  return new Promise((resolve) => {
    let written = 0;
    let done = false;
    const stop = (closedByClient: boolean): void => {
      if (done) return;
      done = true;
      resolve({ written, closedByClient });
    };
    res.on('close', () => stop(!res.writableFinished));
    const pump = (): void => {
      while (!done && !res.destroyed) {
        if (written >= opts.maxBytes) {
          res.end(opts.tail ?? '', () => stop(false));
          return;
        }
        written += fill.length;
        if (!res.write(fill)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    written += Buffer.byteLength(opts.head);
    res.write(opts.head);
    pump();
  });
}

export class FaultProxy {
  readonly seen: Seen[] = [];
  /** TCP connections accepted. */
  tcpConnections = 0;
  /** TLS handshakes completed. */
  connections = 0;
  /** Every response (head and each body chunk) is held back this long. */
  delayMs = 0;
  /** Requests are accepted and never answered. */
  blackhole = false;
  url = '';
  port = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly upstreams = new Set<http.ClientRequest>();
  private readonly faults: { match: (s: Seen) => boolean; fault: Fault }[] = [];
  private frozen = false;
  private server: https.Server | undefined;

  constructor(
    private readonly upstream: string,
    private readonly ca: string,
    private readonly key: Buffer,
    private readonly cert: Buffer,
  ) {}

  /** A proxy in front of `cluster`'s API server. */
  static forCluster(cluster: TestCluster): FaultProxy {
    const pki = path.join(cluster.dir, 'pki');
    return new FaultProxy(cluster.server, cluster.caData, readFileSync(path.join(pki, 'apiserver.key')), readFileSync(path.join(pki, 'apiserver.crt')));
  }

  async start(): Promise<string> {
    const server = https.createServer({ key: this.key, cert: this.cert }, (req, res) => this.handle(req, res));
    server.on('connection', () => this.tcpConnections++);
    server.on('secureConnection', (s: net.Socket) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    this.url = `https://127.0.0.1:${this.port}`;
    return this.url;
  }

  /** The next request matching `match` gets `fault` instead of the server's answer (faults are used in the order injected). */
  inject(match: (s: Seen) => boolean, fault: Fault): void {
    this.faults.push({ match, fault });
  }

  /** Faults injected and not used yet. */
  get pendingFaults(): number {
    return this.faults.length;
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Cuts every connection (clients see a reset). */
  drop(): void {
    for (const s of this.sockets) s.destroy();
    for (const u of this.upstreams) u.destroy();
  }

  /** Stops passing on data from the server (connections stay open): a dead peer. */
  freeze(on: boolean): void {
    this.frozen = on;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  count(pred: (s: Seen) => boolean): number {
    return this.seen.filter(pred).length;
  }

  async stop(): Promise<void> {
    this.drop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://x');
    const seen: Seen = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, at: Date.now(), faulted: false };
    this.seen.push(seen);
    if (this.blackhole) {
      req.resume();
      return;
    }
    const delay = this.delayMs;
    const later = (fn: () => void): void => {
      if (delay > 0) setTimeout(fn, delay);
      else fn();
    };
    const i = this.faults.findIndex((f) => f.match(seen));
    if (i !== -1) {
      const { fault } = this.faults.splice(i, 1)[0] as { fault: Fault };
      seen.faulted = true;
      req.resume();
      later(() => {
        if (res.destroyed) return;
        if ('respond' in fault) {
          fault.respond(res);
          seen.status = res.statusCode;
        } else if ('watchErrorEvent' in fault) {
          seen.status = 200;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', ...fault.watchErrorEvent } })}\n`,
          );
        } else {
          seen.status = fault.status;
          const body = fault.body ?? {
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            code: fault.status,
            message: `injected ${fault.status}`,
          };
          res.writeHead(fault.status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...(fault.headers ?? {}) });
          res.end(typeof body === 'string' ? body : JSON.stringify(body));
        }
      });
      return;
    }
    const headers = { ...req.headers, host: new URL(this.upstream).host };
    const up = https.request(`${this.upstream}${req.url ?? '/'}`, { method: req.method, headers, ca: this.ca, agent: false }, (ur) => {
      later(() => {
        if (res.destroyed) return;
        seen.status = ur.statusCode ?? 502;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        // As the API server does for a watch: the head goes out before any event.
        res.flushHeaders();
      });
      ur.on('data', (c: Buffer) => {
        later(() => {
          if (!this.frozen && !res.destroyed) res.write(c);
        });
      });
      // A frozen stream does not even end: the client sees a silent peer.
      ur.on('end', () => {
        later(() => {
          if (!this.frozen && !res.destroyed) res.end();
        });
      });
      ur.on('error', () => res.destroy());
    });
    this.upstreams.add(up);
    up.on('close', () => this.upstreams.delete(up));
    up.on('error', (e: NodeJS.ErrnoException) => {
      seen.upstreamError ??= e.code ?? e.message;
      res.destroy();
    });
    res.on('close', () => up.destroy());
    req.pipe(up);
  }
}
