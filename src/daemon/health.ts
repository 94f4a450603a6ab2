/**
 * The --listen HTTP server of `cni-node run`:
 *   /healthz  200 "ok" while the process is alive (it answers, so its event loop runs)
 *   /readyz   200 "ok" when ready (see readiness.ts), else 503 with the reasons as text
 *   /metrics  Prometheus text format (see metrics.ts)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CniNodeError } from '../core/errors.js';
import type { DaemonMetrics } from './metrics.js';
import type { ReadinessStatus } from './readiness.js';

export interface ListenAddress {
  /** Undefined: every interface. */
  host: string | undefined;
  port: number;
}

/** "host:port", "[v6]:port", ":port" or "port" (every interface). Port 0 picks a free port. */
export function parseListen(text: string): ListenAddress {
  const bad = () =>
    new CniNodeError('usage', `--listen=${text}: expected <host>:<port>, [<ipv6>]:<port> or :<port>, e.g. --listen=:9090 or --listen=127.0.0.1:9090`);
  const t = text.trim();
  let host: string | undefined;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(t);
  if (v6) {
    host = v6[1];
    portText = v6[2] as string;
  } else if (/^\d+$/.test(t)) {
    portText = t;
  } else {
    const i = t.lastIndexOf(':');
    if (i === -1) throw bad();
    host = t.slice(0, i);
    portText = t.slice(i + 1);
    if (host.includes(':')) throw bad();
    if (host === '' || host === '*') host = undefined;
  }
  if (!/^\d+$/.test(portText)) throw bad();
  const port = Number(portText);
  if (port > 65535) throw bad();
  return { host, port };
}

/** The most connections to /healthz, /readyz and /metrics held at once. */
export const MAX_CONNECTIONS = 64;

export interface HealthServer {
  /** The bound address, e.g. "127.0.0.1:9090" or "[::]:9090". */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface HealthServerOptions {
  listen: ListenAddress;
  readiness: () => ReadinessStatus;
  metrics: DaemonMetrics;
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  // Timeouts are checked every second (Node's default: 30 s).
  const server = http.createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(405, 'method not allowed\n');
      return;
    }
    switch (url) {
      case '/healthz':
      case '/livez':
        send(200, 'ok\n');
        return;
      case '/readyz': {
        const s = options.readiness();
        send(s.ready ? 200 : 503, `${s.reason}\n`);
        return;
      }
      case '/metrics':
        options.metrics.registry.metrics().then(
          (text) => send(200, text, options.metrics.registry.contentType),
          (e: unknown) => send(500, `cannot collect metrics: ${String(e)}\n`),
        );
        return;
      default:
        send(404, 'not found: try /healthz, /readyz or /metrics\n');
    }
  });
  // Connections are an input like any other: anyone on the node (the DaemonSet has
  // the host's network) may open them. Each costs a file descriptor, which the
  // daemon needs for its real work, so at most MAX_CONNECTIONS are kept (more are
  // closed at once) and a connection that has not sent its request within 5 s is
  // closed. A probe or a scrape takes one connection for a few milliseconds.
  server.maxConnections = MAX_CONNECTIONS;
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new CniNodeError('io', `--listen: cannot listen on ${options.listen.host ?? '*'}:${options.listen.port}: ${e.code ?? e.message}`)),
    );
    server.listen(options.listen.port, options.listen.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  return {
    address,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
