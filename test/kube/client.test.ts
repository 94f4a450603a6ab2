// The request layer (client.ts, and the transport under it that list+watch shares)
// against a small local HTTP server that plays the failures and the framing a real
// API server (or the network in front of it) produces. The real API server is
// exercised in test/e2e/manifests.test.ts and test/kube/watch.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { createKubeClient, isStatus, KubeClient, type KubeClientOptions, type RequestEvent } from '../../src/kube/client.js';
import { KubeApiError, KubeUnreachableError } from '../../src/kube/errors.js';
import { listWatch, type WatchRequestEvent } from '../../src/kube/watch.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'cni-node-client-'));
after(() => rmSync(root, { recursive: true, force: true }));
const FAST = { attempts: 4, baseDelayMs: 10, maxDelayMs: 40 };

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

async function server(handler: Handler): Promise<{ url: string; close(): Promise<void>; hits: { method: string; url: string; auth: string | undefined }[] }> {
  const hits: { method: string; url: string; auth: string | undefined }[] = [];
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hits.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`;
  return {
    url,
    hits,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

let kcN = 0;
async function client(url: string, opts: Partial<KubeClientOptions> & { tokenFile?: string } = {}): Promise<KubeClient> {
  const file = path.join(root, `kc-${++kcN}`);
  const user = opts.tokenFile ? `    token-file: ${opts.tokenFile}` : '    token: t0k3n';
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: c',
      '  cluster:',
      `    server: ${url}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: u',
      '  user:',
      user,
      'contexts:',
      '- name: x',
      '  context: {cluster: c, user: u}',
      'current-context: x',
      '',
    ].join('\n'),
  );
  const { tokenFile: _t, ...rest } = opts;
  return createKubeClient({ kubeconfig: file, env: { CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(root, 'none') }, retry: FAST, ...rest });
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

test('2xx: parsed JSON, the bearer token, query parameters, counted as a read or a write', async () => {
  const s = await server((req, res, body) => json(res, req.method === 'PATCH' ? 201 : 200, { method: req.method, url: req.url, body }));
  const events: RequestEvent[] = [];
  const c = await client(s.url, { onRequest: (e) => events.push(e) });
  try {
    const r = await c.request<{ url: string }>({ method: 'GET', path: '/api/v1/namespaces/a/configmaps', query: { labelSelector: 'a=b', skip: undefined } });
    assert.equal(r.status, 200);
    assert.equal(r.body.url, '/api/v1/namespaces/a/configmaps?labelSelector=a%3Db');
    assert.equal(s.hits[0]?.auth, 'Bearer t0k3n');
    const p = await c.request<{ body: string }>({
      method: 'PATCH',
      path: '/x',
      body: { a: 1 },
      contentType: 'application/apply-patch+yaml',
      query: { dryRun: 'All' },
    });
    assert.equal(p.status, 201);
    assert.equal(p.body.body, '{"a":1}');
    await c.request({ method: 'DELETE', path: '/x' });
    assert.deepEqual(c.stats, { requests: 3, writes: 1, dryRuns: 1, retries: 0 });
    assert.deepEqual(
      events.map((e) => [e.method, e.status, e.write, e.dryRun]),
      [
        ['GET', 200, false, false],
        ['PATCH', 201, false, true],
        ['DELETE', 200, true, false],
      ],
    );
  } finally {
    c.close();
    await s.close();
  }
});

test('503 and 429 are retried with backoff (Retry-After honoured); then success', async () => {
  let n = 0;
  const s = await server((_req, res) => {
    n++;
    if (n === 1) json(res, 503, { kind: 'Status', code: 503, message: 'starting' });
    else if (n === 2) json(res, 429, { kind: 'Status', code: 429, message: 'slow down' }, { 'retry-after': '1' });
    else json(res, 200, { ok: true });
  });
  const c = await client(s.url);
  try {
    const started = Date.now();
    const r = await c.request<{ ok: boolean }>({ method: 'GET', path: '/readyz' });
    assert.deepEqual(r.body, { ok: true });
    assert.equal(c.stats.retries, 2);
    assert.ok(Date.now() - started >= 990, 'waited as long as Retry-After said');
  } finally {
    c.close();
    await s.close();
  }
});

test('errors that retrying cannot fix are not retried; accepted statuses are returned', async () => {
  const s = await server((req, res) => {
    if (req.url === '/missing')
      json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'configmaps "x" not found', details: { name: 'x', kind: 'configmaps' } });
    else if (req.url === '/bad') json(res, 422, { kind: 'Status', code: 422, reason: 'Invalid', message: 'bad object' });
    else json(res, 500, { kind: 'Status', code: 500, message: 'internal' });
  });
  const c = await client(s.url);
  try {
    const r = await c.request({ method: 'GET', path: '/missing', accept: [404] });
    assert.equal(r.status, 404);
    await assert.rejects(
      c.request({ method: 'GET', path: '/missing' }),
      (e: unknown) => isStatus(e, 404) && e instanceof KubeApiError && e.reason === 'NotFound',
    );
    await assert.rejects(c.request({ method: 'PATCH', path: '/bad', body: {} }), (e: unknown) => e instanceof KubeApiError && e.kind === 'invalid');
    await assert.rejects(c.request({ method: 'GET', path: '/boom' }), /answered 500/);
    assert.equal(s.hits.length, 4, 'one request each');
  } finally {
    c.close();
    await s.close();
  }
});

test('POST is not repeated after a 503 (it may have been carried out)', async () => {
  const s = await server((_req, res) => json(res, 503, { kind: 'Status', code: 503, message: 'unavailable' }));
  const c = await client(s.url);
  try {
    await assert.rejects(c.request({ method: 'POST', path: '/events', body: {} }), /answered 503/);
    assert.equal(s.hits.length, 1);
  } finally {
    c.close();
    await s.close();
  }
});

test('401: the token file is read again once; a token that stays bad says where the credentials came from', async () => {
  const tokenFile = path.join(root, 'rotating-token');
  writeFileSync(tokenFile, 'old');
  const s = await server((req, res) =>
    req.headers.authorization === 'Bearer new'
      ? json(res, 200, {})
      : json(res, 401, { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' }),
  );
  const c = await client(s.url, { tokenFile });
  try {
    await assert.rejects(
      c.request({ method: 'GET', path: '/api' }),
      (e: unknown) => e instanceof KubeApiError && e.status === 401 && /rejected the credentials from --kubeconfig/.test(e.message),
    );
    assert.deepEqual(
      s.hits.map((h) => h.auth),
      ['Bearer old', 'Bearer old'],
      'read again once, then given up',
    );
    writeFileSync(`${tokenFile}.new`, 'new');
    renameSync(`${tokenFile}.new`, tokenFile);
    assert.equal((await c.request({ method: 'GET', path: '/api' })).status, 200);
  } finally {
    c.close();
    await s.close();
  }
});

test('unreachable: bounded attempts, then a message naming the server', async () => {
  const port = await new Promise<number>((resolve) => {
    const t = net.createServer();
    t.listen(0, '127.0.0.1', () => {
      const p = (t.address() as net.AddressInfo).port;
      t.close(() => resolve(p));
    });
  });
  const events: RequestEvent[] = [];
  const c = await client(`http://127.0.0.1:${port}`, { onRequest: (e) => events.push(e) });
  try {
    await assert.rejects(c.request({ method: 'GET', path: '/api' }), (e: unknown) => {
      assert.ok(e instanceof KubeUnreachableError);
      assert.equal(e.code, 'ECONNREFUSED');
      assert.match(
        e.message,
        new RegExp(
          `^cannot reach the Kubernetes API server at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.* \\(4 attempts over [0-9.]+ s\\)\\. Check that the API server is up`,
        ),
      );
      return true;
    });
    assert.equal(events.length, 4);
    assert.ok(events.every((e) => e.error === 'ECONNREFUSED'));
  } finally {
    c.close();
  }
});

test('a server that never answers: per-request timeout, retried, bounded', async () => {
  const s = await server(() => undefined); // never responds
  const c = await client(s.url, { requestTimeoutMs: 100, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 } });
  try {
    const started = Date.now();
    await assert.rejects(
      c.request({ method: 'GET', path: '/api' }),
      (e: unknown) => e instanceof KubeUnreachableError && /no answer within 100 ms/.test(e.message),
    );
    assert.ok(Date.now() - started < 2_000);
  } finally {
    c.close();
    await s.close();
  }
});

test('abort: a request in backoff stops at once with an interrupted error', async () => {
  const s = await server((_req, res) => json(res, 503, {}));
  const ac = new AbortController();
  const c = await client(s.url, { signal: ac.signal, retry: { attempts: 10, baseDelayMs: 5_000, maxDelayMs: 5_000 } });
  try {
    const started = Date.now();
    const p = c.request({ method: 'GET', path: '/api' });
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(p, (e: unknown) => e instanceof CniNodeError && e.kind === 'interrupted');
    assert.ok(Date.now() - started < 2_000);
  } finally {
    c.close();
    await s.close();
  }
});

// ---- listWatch (watch.ts) over the same transport -----------------------------------

/** A list+watch of /api/v1/namespaces/a/configmaps whose callbacks are recorded. */
async function watcher(url: string, backoff = { baseDelayMs: 50, maxDelayMs: 200 }) {
  const c = await client(url);
  const changes: string[][] = [];
  const restarts: string[] = [];
  const errors: { message: string; retryInMs: number }[] = [];
  const requests: WatchRequestEvent[] = [];
  const w = listWatch({
    client: c,
    path: '/api/v1/namespaces/a/configmaps',
    fieldSelector: 'metadata.name=a',
    backoff,
    onChange: (objects) => changes.push(objects.map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`)),
    onRestart: (reason) => restarts.push(reason),
    onError: (e, retryInMs) => errors.push({ message: e.message, retryInMs }),
    onRequest: (ev) => requests.push(ev),
  });
  return { w, c, changes, restarts, errors, requests };
}

const cm = (rv: string): unknown => ({ metadata: { name: 'a', namespace: 'a', uid: 'u1', resourceVersion: rv } });

test('listWatch: one event per line, split across chunks; an ERROR 410 event lists again; stop ends it quietly', async () => {
  let lists = 0;
  let watches = 0;
  const s = await server((req, res) => {
    const url = new URL(req.url ?? '', 'http://x');
    if (url.searchParams.get('watch') !== '1') {
      lists++;
      json(res, 200, { kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: lists === 1 ? '7' : '9' }, items: lists === 1 ? [] : [cm('9')] });
      return;
    }
    watches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    if (watches > 1) return; // the second watch stays open
    assert.equal(url.searchParams.get('resourceVersion'), '7');
    assert.equal(url.searchParams.get('allowWatchBookmarks'), 'true');
    res.write(`${JSON.stringify({ type: 'ADDED', object: cm('8') })}\n{"type":"MODI`);
    setTimeout(
      () => res.write(`FIED","object":${JSON.stringify(cm('9'))}}\n\n{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}\n`),
      20,
    );
  });
  const r = await watcher(s.url);
  try {
    assert.equal(await r.w.synced, true);
    await until(() => r.requests.length === 4);
    assert.deepEqual(r.changes, [[], ['a@8'], ['a@9']], 'each event as it came; the re-list brought the same object: no call');
    assert.deepEqual(r.restarts, ['expired']);
    assert.deepEqual(
      r.requests.map((q) => `${q.verb}:${q.status}`),
      ['list:200', 'watch:200', 'list:200', 'watch:200'],
    );
    assert.equal(r.w.resourceVersion(), '9');
    const started = Date.now();
    r.w.stop();
    await r.w.done;
    assert.ok(Date.now() - started < 500);
    assert.deepEqual(r.errors, [], 'stopping is not an error');
  } finally {
    r.w.stop();
    await r.w.done;
    r.c.close();
    await s.close();
  }
});

test("listWatch: a refused watch is reported with the API server's reason and retried with backoff", async () => {
  let watches = 0;
  const s = await server((req, res) => {
    if (!/watch=1/.test(req.url ?? '')) return json(res, 200, { kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: [] });
    watches++;
    json(res, 403, {
      kind: 'Status',
      code: 403,
      reason: 'Forbidden',
      message: 'configmaps is forbidden: User "x" cannot watch resource "configmaps" in API group "" in the namespace "a"',
    });
  });
  const r = await watcher(s.url);
  try {
    await until(() => watches >= 3);
    assert.match(r.errors[0]?.message ?? '', /forbidden: user "x" may not watch configmaps in namespace "a"/);
    assert.ok(
      r.errors.every((e) => e.retryInMs >= 25),
      JSON.stringify(r.errors),
    );
    assert.equal(r.requests.filter((q) => q.verb === 'list').length, 1, 'resumed, not listed again');
  } finally {
    r.w.stop();
    await r.w.done;
    r.c.close();
    await s.close();
  }
});

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
