// Hostile or broken API answers, and the caps that bound them (src/kube/limits.ts):
// the request client and listWatch against a REAL kube-apiserver 1.20.2 + etcd,
// through the TLS-terminating loopback proxy (test/e2e/support/fault-proxy.ts).
// The proxy passes the real server's answers and, where a test injects one, writes
// what a broken or hostile proxy in front of the API would: endless bodies and
// lines, LISTs whose pages never end, `[[[[…`, control characters in messages,
// oversized headers. The largest legitimate answers come from the real server.
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { before, describe, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { compileJsonPath } from '../../src/core/jsonpath.js';
import { createKubeClient, type KubeClient } from '../../src/kube/client.js';
import { Discovery } from '../../src/kube/discovery.js';
import { MAX_ANSWER_BYTES, MAX_JSON_DEPTH, MAX_SERVER_TEXT, MAX_WATCHED_BYTES } from '../../src/kube/limits.js';
import { printable } from '../../src/core/printable.js';
import { sameJson } from '../../src/kube/manifests.js';
import { waitForCrdEstablished } from '../../src/kube/objects.js';
import { readAll } from '../../src/kube/transport.js';
import { listWatch, type WatchedObject } from '../../src/kube/watch.js';
import { readWatchStream, type StreamEnd, type WatchEventLine } from '../../src/kube/watch-stream.js';
import { useProxiedCluster } from '../e2e/support/api-suite.js';
import { clusterUnavailableReason } from '../e2e/support/cluster.js';
import { streamBytes, type Seen, type Streamed } from '../e2e/support/fault-proxy.js';
import { sleep, until as poll } from '../support/process.js';

const skip = clusterUnavailableReason();
const MiB = 1024 * 1024;

const until = (what: string, cond: () => boolean, ms = 15_000) => poll(what, cond, ms);

/** One line, printable: what every message built from server text must be. */
function assertOneCleanLine(text: string, what: string): void {
  // eslint-disable-next-line no-control-regex -- looking for control characters is the point
  const unprintable = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
  assert.doesNotMatch(text, unprintable, `${what} is one printable line: ${JSON.stringify(text.slice(0, 300))}`);
}

/** A respond fault that streams a body of `maxBytes` (or until the client hangs up), and what was written. */
function endless(opts: { status?: number; headers?: Record<string, string>; head: string; fill: string; maxBytes: number; tail?: string }) {
  let streamed: Promise<Streamed> | undefined;
  return {
    fault: {
      respond: (res: http.ServerResponse) => {
        res.writeHead(opts.status ?? 200, { 'content-type': 'application/json', ...(opts.headers ?? {}) });
        streamed = streamBytes(res, opts);
      },
    },
    result: async (): Promise<Streamed> => {
      await until('the fault was used', () => streamed !== undefined);
      return (await streamed) as Streamed;
    },
  };
}

/** Resolves when `res` can take more, or is closed. */
const drained = (res: http.ServerResponse): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => ({
  respond: (res: http.ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  },
});

// ---- the byte level: a loopback server standing in for a proxy that splits answers anywhere ----

/** Serves `parts`, each in its own write (and TCP segment, with a pause between), then ends. */
async function answerInParts(parts: (string | Buffer)[]): Promise<{ res: http.IncomingMessage; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    void (async () => {
      for (const p of parts) {
        if (res.destroyed) return;
        res.write(p);
        await sleep(2);
      }
      res.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`, { agent: false }, resolve).on('error', reject),
  );
  return {
    res,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const bytesOf = (s: string): Buffer[] => [...Buffer.from(s)].map((b) => Buffer.from([b]));

describe('the caps count bytes as they arrive, however the answer is split', () => {
  test('a watch line of exactly the cap is read, one byte more is refused; characters split across reads are kept whole', async () => {
    const event = (name: string) => JSON.stringify({ type: 'ADDED', object: { metadata: { name, uid: name } } });
    const exact = event('é😀x');
    const cap = Buffer.byteLength(exact);
    const longer = event('é😀xy');
    // Every byte its own read: the 2- and 4-byte characters are split across reads.
    const a = await answerInParts([
      ...bytesOf(`${exact}
`),
      ...bytesOf(`${longer}
`),
    ]);
    const seen: WatchEventLine[] = [];
    const end: StreamEnd = await readWatchStream(a.res, (events) => void seen.push(...events), cap);
    await a.close();
    assert.deepEqual(
      seen.map((e) => [e.object?.metadata.name, e.bytes]),
      [['é😀x', cap]],
    );
    assert.equal(end.how, 'refused');
    assert.match(
      (end as { problem: string }).problem,
      new RegExp(`^one event from the API server is larger than the ${cap} bytes cap on a watch event; refused`),
    );
    assert.ok(a.res.destroyed, 'the connection is closed');
  });

  test('a body of exactly the cap is read, one byte more is refused before the rest arrives', async () => {
    const body = '{"a":"xxxxxxxxxx"}';
    const cap = body.length;
    const a = await answerInParts([...bytesOf(body)]);
    assert.equal(await readAll(a.res, cap, () => new CniNodeError('api', 'too big')), body);
    await a.close();
    const b = await answerInParts([...bytesOf(body), 'z', 'z'.repeat(1000)]);
    await assert.rejects(
      readAll(b.res, cap, (seen) => new CniNodeError('api', `too big (${seen})`)),
      /^CniNodeError: too big \(at least 19 bytes\)$/,
    );
    assert.ok(b.res.destroyed, 'the connection is closed');
    await b.close();
  });
});

describe('hostile or broken API answers: every byte from the API is capped (real kube-apiserver behind a fault proxy)', { skip, timeout: 300_000 }, () => {
  const api = useProxiedCluster();
  let client: KubeClient;
  const ns = 'default';
  const cmPath = `/api/v1/namespaces/${ns}/configmaps`;

  const put = async (name: string, data: Record<string, string>): Promise<void> => {
    const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data };
    const res = await api.cluster.request('PATCH', `${cmPath}/${name}?fieldManager=test`, body, { contentType: 'application/apply-patch+yaml' });
    assert.ok(res.status === 200 || res.status === 201, res.text);
  };

  /** A listWatch of one ConfigMap through the proxy, its callbacks recorded. */
  const watchOne = (name: string) => {
    const changes: WatchedObject[][] = [];
    const errors: { message: string; retryInMs: number; at: number }[] = [];
    const requests: { verb: string; status?: number; at: number }[] = [];
    const controller = new AbortController();
    const watcher = listWatch({
      client,
      path: cmPath,
      ...(name ? { fieldSelector: `metadata.name=${name}` } : {}),
      signal: controller.signal,
      onChange: (objects) => changes.push(objects),
      onError: (e, retryInMs) => errors.push({ message: e.message, retryInMs, at: Date.now() }),
      onRequest: (ev) => requests.push({ verb: ev.verb, ...(ev.status !== undefined ? { status: ev.status } : {}), at: Date.now() }),
      backoff: { baseDelayMs: 200, maxDelayMs: 4_000 },
    });
    return { watcher, changes, errors, requests, stop: async () => (controller.abort(), await watcher.done) };
  };

  const isPath = (p: string) => (s: Seen) => s.path === p;
  const isList = (name: string) => (s: Seen) =>
    s.path === cmPath && s.query.get('watch') === null && (name === '' || s.query.get('fieldSelector') === `metadata.name=${name}`);
  const isWatch = (name: string) => (s: Seen) =>
    s.path === cmPath && s.query.get('watch') === '1' && (name === '' || s.query.get('fieldSelector') === `metadata.name=${name}`);

  before(async () => {
    client = await createKubeClient({ kubeconfig: api.kubeconfigViaProxy(), retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 100 } });
    api.cleanups.push(async () => client.close());
  });

  test('API answers over the size cap are refused with one clear line, memory stays bounded', async () => {
    const p = `${cmPath}/endless`;
    const cap = new RegExp(
      `^the answer to GET https://127\\.0\\.0\\.1:\\d+${p} is larger than the 16 MiB cap \\((at least \\d+ bytes|Content-Length: \\d+)\\); refused, and the connection closed without reading the rest$`,
    );

    // A 200 whose body goes on (160 MiB: a client without a cap reads it all, and fails this test).
    const big = endless({
      head: '{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"endless"},"data":{"k":"',
      fill: 'a'.repeat(64 * 1024),
      maxBytes: 160 * MiB,
      tail: '"}}',
    });
    api.proxy.inject(isPath(p), big.fault);
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = Date.now();
    await assert.rejects(client.request({ method: 'GET', path: p }), (e: unknown) => {
      assert.ok(e instanceof CniNodeError, String(e));
      assert.match(e.message, cap);
      return true;
    });
    const streamed = await big.result();
    assert.ok(streamed.closedByClient, 'the client hung up');
    // What the proxy could hand over before the client's close reached it: the cap plus the socket buffers.
    assert.ok(streamed.written < MAX_ANSWER_BYTES + 12 * MiB, `${(streamed.written / MiB).toFixed(1)} MiB written before the client hung up`);
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 64 * MiB, 'the heap did not take the body');
    assert.equal(api.proxy.count(isPath(p)), 1, 'not retried: it would be as large again');

    // A Content-Length over the cap: refused before reading any of it.
    const declared = endless({ headers: { 'content-length': String(1024 * MiB) }, head: '{', fill: ' '.repeat(64 * 1024), maxBytes: 1024 * MiB });
    api.proxy.inject(isPath(p), declared.fault);
    await assert.rejects(
      client.request({ method: 'GET', path: p }),
      (e: unknown) => e instanceof CniNodeError && cap.test(e.message) && /Content-Length: 1073741824/.test(e.message),
    );
    const early = await declared.result();
    assert.ok(early.closedByClient && early.written < 12 * MiB, `${(early.written / MiB).toFixed(1)} MiB written`);

    // An error answer is capped too (a proxy's endless error page).
    const page = endless({
      status: 502,
      headers: { 'content-type': 'text/html' },
      head: '<html>',
      fill: '<p>bad gateway</p>\n'.repeat(1000),
      maxBytes: 160 * MiB,
    });
    api.proxy.inject(isPath(p), page.fault);
    await assert.rejects(client.request({ method: 'GET', path: p }), (e: unknown) => e instanceof CniNodeError && cap.test(e.message));
    assert.ok((await page.result()).closedByClient);
    assert.ok(Date.now() - t0 < 30_000);

    // The client goes on working over new connections.
    const ok = await client.request<{ kind: string }>({ method: 'GET', path: cmPath });
    assert.equal(ok.body.kind, 'ConfigMapList');
  });

  test("response headers over Node's 16 KiB limit are refused as one clear line", async () => {
    const p = `${cmPath}/big-headers`;
    api.proxy.inject(isPath(p), {
      respond: (res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-filler': 'h'.repeat(20_000) });
        res.end('{}');
      },
    });
    await assert.rejects(client.request({ method: 'GET', path: p }), (e: unknown) => {
      assert.ok(e instanceof CniNodeError, String(e));
      assert.match(
        e.message,
        new RegExp(`^request GET https://127\\.0\\.0\\.1:\\d+${p}: the answer is not HTTP that cni-node accepts \\(.*HPE_HEADER_OVERFLOW.*\\); refused$`),
      );
      assertOneCleanLine(e.message, 'the message');
      return true;
    });
  });

  test('a watch event over the size cap fails that watch like any failed watch: one clear line, growing backoff, nothing applied, then resumed', async () => {
    const name = 'cap-watch';
    await put(name, { plugins: 'a' });
    const r = watchOne(name);
    try {
      assert.equal(await r.watcher.synced, true);
      await until('watching', () => api.proxy.count(isWatch(name)) === 1);
      const rv = r.watcher.resourceVersion();
      // Three watches in a row each open with an event that never ends (64 MiB, 4 times the cap).
      const faults = [1, 2, 3].map(() =>
        endless({
          head: `{"type":"MODIFIED","object":{"metadata":{"name":"${name}","namespace":"${ns}","uid":"hostile","resourceVersion":"999999"},"data":{"plugins":"`,
          fill: 'x'.repeat(64 * 1024),
          maxBytes: 64 * MiB,
          tail: '"}}}\n',
        }),
      );
      for (const f of faults) api.proxy.inject(isWatch(name), f.fault);
      api.proxy.drop();
      await until('three refused watches', () => r.errors.length >= 3, 30_000);
      const line = new RegExp(
        `^watch https://127\\.0\\.0\\.1:\\d+${cmPath}: one event from the API server is larger than the 16 MiB cap on a watch event; refused, and the connection closed without reading the rest$`,
      );
      for (const e of r.errors.slice(0, 3)) assert.match(e.message, line);
      for (const f of faults) {
        const s = await f.result();
        assert.ok(s.closedByClient && s.written < MAX_ANSWER_BYTES + 12 * MiB, `${(s.written / MiB).toFixed(1)} MiB written`);
      }
      // Backoff 200 ms doubling (jittered between half and all of each step): the delays grow.
      const delays = r.errors.slice(0, 3).map((e) => e.retryInMs);
      assert.ok((delays[2] as number) > (delays[0] as number) && (delays[0] as number) >= 100, `growing delays: ${delays.join(', ')} ms`);
      // Nothing of the refused event was applied; the watch resumes from where it was, without a re-list.
      await until('watching again', () => api.proxy.count((s) => isWatch(name)(s) && !s.faulted && s.status === 200) === 2);
      assert.equal(r.watcher.resourceVersion(), rv);
      assert.ok(r.changes.every((set) => set.every((o) => o.metadata.uid !== 'hostile')));
      assert.equal(r.requests.filter((q) => q.verb === 'list').length, 1, 'no re-list');
      await put(name, { plugins: 'b' });
      await until('a real edit after the refusals', () => (r.changes.at(-1)?.[0]?.['data'] as Record<string, string> | undefined)?.['plugins'] === 'b');
    } finally {
      api.proxy.clearFaults();
      await r.stop();
    }
  });

  test('a list+watch holds at most its cap: a LIST whose pages never end and a watch of endless ADDED events are refused', async () => {
    // ~1 MiB pages, each with a continue token, 48 of them: more than the 32 MiB cap on what one watch holds.
    const item = (i: number) => ({ metadata: { name: `p${i}`, namespace: ns, uid: `u${i}`, resourceVersion: '5' }, data: { k: 'v'.repeat(1000) } });
    const pageOf = (n: number, last: boolean) => ({
      kind: 'ConfigMapList',
      apiVersion: 'v1',
      metadata: { resourceVersion: '5', ...(last ? {} : { continue: `page-${n + 1}` }) },
      items: Array.from({ length: 1000 }, (_, i) => item(n * 1000 + i)),
    });
    for (let n = 0; n < 48; n++) api.proxy.inject(isList(''), json(pageOf(n, n === 47)));
    const r = watchOne('');
    try {
      // The faults left over (pages after the cap) must not feed the next attempt.
      await until('the LIST refused', () => r.errors.length >= 1 && (api.proxy.clearFaults(), true), 30_000);
      assert.match(
        r.errors[0]?.message ?? '',
        new RegExp(
          `^the LIST of https://127\\.0\\.0\\.1:\\d+${cmPath}, all its pages together, is larger than the 32 MiB cap \\(at least \\d+ bytes\\); refused, and the connection closed without reading the rest \\(narrow the watch: a namespace, name or label selector\\)$`,
        ),
      );
      const pages = api.proxy.count((s) => isList('')(s) && s.faulted);
      assert.ok(pages >= 30 && pages <= 34, `${pages} pages read, the cap is ${MAX_WATCHED_BYTES / MiB} MiB`);
      assert.equal(r.changes.length, 0, 'nothing of the refused LIST was delivered');
      api.proxy.clearFaults();
      assert.equal(await r.watcher.synced, true, 'the next attempt lists the real server');
    } finally {
      api.proxy.clearFaults();
      await r.stop();
    }

    // A watch that sends ADDED events for ever (64 here), each ~1 MiB and a new object.
    const name = 'cap-set';
    await put(name, { plugins: 'a' });
    const w = watchOne(name);
    try {
      assert.equal(await w.watcher.synced, true);
      await until('watching', () => api.proxy.count(isWatch(name)) >= 1);
      let sent: Promise<number> | undefined;
      api.proxy.inject(isWatch(name), {
        respond: (res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          sent = (async () => {
            let i = 0;
            for (; i < 64 && !res.destroyed; i++) {
              const ev = { type: 'ADDED', object: { metadata: { name: `flood-${i}`, namespace: ns, uid: `flood-${i}` }, data: { k: 'f'.repeat(MiB) } } };
              if (!res.write(`${JSON.stringify(ev)}\n`)) await drained(res);
            }
            res.end();
            return i;
          })();
        },
      });
      api.proxy.drop();
      await until('the set refused', () => w.errors.length >= 1, 30_000);
      assert.match(
        w.errors[0]?.message ?? '',
        new RegExp(
          `^watch https://127\\.0\\.0\\.1:\\d+${cmPath}: the objects this watch holds would be larger than the 32 MiB cap with the next event; refused \\(narrow the watch: a namespace, name or label selector\\)$`,
        ),
      );
      const held = w.watcher.objects().length;
      assert.ok(held >= 25 && held <= 33, `${held} objects held, each ~1 MiB`);
      assert.ok(((await sent) as number) < 64, 'the rest of the flood was not read');
    } finally {
      api.proxy.clearFaults();
      await w.stop();
    }
  });

  test('JSON nested deeper than the cap is refused as one clear error, not a stack overflow', async () => {
    const p = `${cmPath}/deep`;
    const n = 500_000; // 1 MB of `[[[[…]]]]`, well under the size cap
    const deep = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"deep"},"x":${'['.repeat(n)}${']'.repeat(n)}}`;
    api.proxy.inject(isPath(p), json(deep));
    await assert.rejects(client.request({ method: 'GET', path: p }), (e: unknown) => {
      assert.ok(e instanceof CniNodeError, String(e));
      assert.match(
        e.message,
        new RegExp(`^the answer to GET https://127\\.0\\.0\\.1:\\d+${p} nests JSON deeper than the cap of ${MAX_JSON_DEPTH} levels; refused$`),
      );
      return true;
    });

    // The same in a watch event: that watch fails with one line, and is resumed.
    const name = 'deep-watch';
    await put(name, { plugins: 'a' });
    const r = watchOne(name);
    try {
      assert.equal(await r.watcher.synced, true);
      await until('watching', () => api.proxy.count(isWatch(name)) === 1);
      api.proxy.inject(isWatch(name), json(`{"type":"MODIFIED","object":{"metadata":{"name":"${name}","uid":"deep"},"x":${'['.repeat(n)}${']'.repeat(n)}}}\n`));
      api.proxy.drop();
      await until('refused', () => r.errors.length >= 1);
      assert.match(
        r.errors[0]?.message ?? '',
        new RegExp(
          `^watch https://127\\.0\\.0\\.1:\\d+${cmPath}: the API server sent an event that nests JSON deeper than the cap of ${MAX_JSON_DEPTH} levels; refused$`,
        ),
      );
      assert.ok(r.changes.every((set) => set.every((o) => o.metadata.uid !== 'deep')));
    } finally {
      await r.stop();
    }

    // Just under the cap: accepted, and every walk cni-node makes over an answer copes with it.
    const ok = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"deep"},"x":${'{"x":'.repeat(MAX_JSON_DEPTH - 3)}1${'}'.repeat(MAX_JSON_DEPTH - 3)}}`;
    api.proxy.inject(isPath(p), json(ok));
    const res = await client.request({ method: 'GET', path: p });
    assert.ok(sameJson(res.body, JSON.parse(ok)));
    assert.equal(compileJsonPath('{..x}')(res.body).length > 0, true);
  });

  test('text from the API server reaches errors and log lines as one line: control characters escaped, length capped', async () => {
    const forged = 'denied\n2099-01-01T00:00:00Z cni-node: reconcile #9: done\r\u001b[2J\u001b[31mred\u001b[0m\u2028\u202e' + 'z'.repeat(100_000);

    // A Status message (any status), and a non-JSON error page.
    const p = `${cmPath}/forged`;
    api.proxy.inject(isPath(p), json({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 403, reason: 'Forbidden\nX', message: forged }, 403));
    await assert.rejects(client.request({ method: 'GET', path: p }), (e: unknown) => {
      assert.ok(e instanceof CniNodeError);
      assertOneCleanLine(e.message, 'a 403 message');
      assert.match(e.message, /denied\\n2099-01-01T00:00:00Z cni-node: reconcile #9: done\\r\\x1b\[2J\\x1b\[31mred/);
      assert.match(e.message, /… \(\d+ more characters\)/);
      assert.ok(e.message.length < MAX_SERVER_TEXT + 400, `${e.message.length} characters`);
      return true;
    });
    api.proxy.inject(isPath(p), { status: 500, body: `<html>\n<h1>oops</h1>\n\u001b]0;title\u0007${'y'.repeat(50_000)}` });
    await assert.rejects(
      client.request({ method: 'GET', path: p }),
      (e: unknown) => e instanceof CniNodeError && (assertOneCleanLine(e.message, 'a 500 page'), e.message.length < 1_000),
    );

    // A watch ERROR event.
    const name = 'forged-watch';
    await put(name, { plugins: 'a' });
    const r = watchOne(name);
    try {
      assert.equal(await r.watcher.synced, true);
      await until('watching', () => api.proxy.count(isWatch(name)) === 1);
      api.proxy.inject(isWatch(name), { watchErrorEvent: { code: 500, reason: 'InternalError', message: forged } });
      api.proxy.drop();
      await until('reported', () => r.errors.length >= 1);
      assertOneCleanLine(r.errors[0]?.message ?? '', 'the watch error');
      assert.match(r.errors[0]?.message ?? '', /ERROR event 500: denied\\n2099/);
      assert.ok((r.errors[0]?.message.length ?? 0) < MAX_SERVER_TEXT + 400);
    } finally {
      api.proxy.clearFaults();
      await r.stop();
    }

    // A CustomResourceDefinition's condition message.
    const crd = 'things.example.com';
    api.proxy.inject(
      isPath(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`),
      json({ kind: 'CustomResourceDefinition', status: { conditions: [{ type: 'NamesAccepted', status: 'False', reason: 'Taken\n', message: forged }] } }),
    );
    await assert.rejects(
      waitForCrdEstablished(client, crd, { timeoutMs: 2_000 }),
      (e: unknown) => e instanceof CniNodeError && (assertOneCleanLine(e.message, 'the CRD message'), e.message.length < MAX_SERVER_TEXT + 400),
    );

    // Discovery: names that are not names are not used (they would go into request paths), nor echoed.
    api.proxy.inject(
      isPath('/api/v1'),
      json({
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [
          { name: '../../apis/x/v1/secrets', kind: 'ConfigMap', namespaced: true, verbs: ['get'] },
          { name: 'configmaps', kind: 'Config\nMap\u001b[2J', namespaced: true, verbs: ['get'] },
        ],
      }),
    );
    const resolution = await new Discovery(client).resolve('v1', 'ConfigMap');
    assert.equal(resolution.info, undefined, 'neither hostile entry is taken for ConfigMap');
    assertOneCleanLine(resolution.problem ?? '', 'the discovery problem');
    assert.match(resolution.problem ?? '', /unknown kind "ConfigMap": apiVersion v1 .* has no such kind$/);

    // The helper itself, for anything else that passes server text on.
    assert.equal(printable('a\nb\u001b[1m\u0000\u009b\u2066c'), 'a\\nb\\x1b[1m\\x00\\x9b\\u2066c');
    assert.equal(printable('x'.repeat(10), 4), 'xxxx… (6 more characters)');
  });

  test('the largest legitimate answers pass under the caps: a 1 MiB ConfigMap the server sends as 6 MiB of JSON', async () => {
    // Go's JSON escapes `<` as \u003c: 1 MiB of it is 6 MiB on the wire, the worst a valid ConfigMap gets.
    const name = 'largest';
    const value = '<'.repeat(MiB - 4_096);
    const applied = await client.request<{ data?: Record<string, string> }>({
      method: 'PATCH',
      path: `${cmPath}/${name}`,
      query: { fieldManager: 'cni-node-test', force: true },
      body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { k: value } }),
      contentType: 'application/apply-patch+yaml',
    });
    assert.equal(applied.body.data?.['k'], value, 'the server-side apply answer');
    const raw = await api.cluster.request('GET', `${cmPath}/${name}`);
    assert.ok(raw.text.length > 6 * (MiB - 4_096), `the server sends ${(raw.text.length / MiB).toFixed(1)} MiB of JSON for it`);
    assert.ok(raw.text.length < MAX_ANSWER_BYTES / 2);
    const got = await client.request<{ data?: Record<string, string> }>({ method: 'GET', path: `${cmPath}/${name}` });
    assert.equal(got.body.data?.['k'], value, 'GET');

    const r = watchOne(name);
    try {
      assert.equal(await r.watcher.synced, true, 'the LIST filtered by name');
      assert.equal((r.changes[0]?.[0]?.['data'] as Record<string, string>)['k'], value);
      await until('watching', () => api.proxy.count(isWatch(name)) === 1);
      const edited = `${value.slice(0, -1)}>`;
      await client.request({
        method: 'PATCH',
        path: `${cmPath}/${name}`,
        query: { fieldManager: 'cni-node-test', force: true },
        body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { k: edited } }),
        contentType: 'application/apply-patch+yaml',
      });
      await until('the 6 MiB MODIFIED event', () => (r.changes.at(-1)?.[0]?.['data'] as Record<string, string> | undefined)?.['k'] === edited);
      assert.deepEqual(r.errors, []);
    } finally {
      await r.stop();
    }
  });
});
