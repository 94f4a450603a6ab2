// listWatch against a REAL kube-apiserver 1.20.2 + etcd (test/e2e/support/cluster.ts),
// through a TLS-terminating loopback proxy (test/e2e/support/fault-proxy.ts) that
// counts every HTTP request and TCP connection, and can cut connections, freeze a
// stream, or answer a request with a fault (410, 429 + Retry-After, 5xx, an ERROR
// event) instead of the server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { CniNodeError } from '../../src/core/errors.js';
import { createKubeClient, type KubeClient } from '../../src/kube/client.js';
import { resolveResourceType } from '../../src/kube/discovery.js';
import { listWatch, type ListWatchOptions, type WatchedObject, type WatchRequestEvent, type WatchRestartReason } from '../../src/kube/watch.js';
import { useProxiedCluster } from '../e2e/support/api-suite.js';
import { clusterUnavailableReason } from '../e2e/support/cluster.js';
import type { Seen } from '../e2e/support/fault-proxy.js';
import { sleep, until } from '../support/process.js';
import { REPO_ROOT } from '../support/repo.js';

const skip = clusterUnavailableReason();

// ---- helpers ----------------------------------------------------------------------

interface ConfigMap extends WatchedObject {
  data?: Record<string, string>;
}

/** A listWatch whose callbacks are recorded. */
function record(client: KubeClient, opts: Partial<ListWatchOptions> & { path: string }) {
  const changes: ConfigMap[][] = [];
  const restarts: { reason: WatchRestartReason; detail: string }[] = [];
  const errors: { error: CniNodeError; retryInMs: number; at: number }[] = [];
  const requests: (WatchRequestEvent & { at: number })[] = [];
  const controller = new AbortController();
  const watcher = listWatch({
    client,
    signal: controller.signal,
    onChange: (objects) => changes.push(objects as ConfigMap[]),
    onRestart: (reason, detail) => restarts.push({ reason, detail }),
    onError: (error, retryInMs) => errors.push({ error, retryInMs, at: Date.now() }),
    onRequest: (ev) => requests.push({ ...ev, at: Date.now() }),
    backoff: { baseDelayMs: 200, maxDelayMs: 2_000 },
    ...opts,
  });
  return { watcher, changes, restarts, errors, requests, controller, last: () => changes.at(-1) ?? [] };
}

const values = (objs: ConfigMap[]): string[] => objs.map((o) => `${o.metadata.namespace}/${o.metadata.name}=${o.data?.['plugins'] ?? ''}`);

// ---- the tests --------------------------------------------------------------------

describe('listWatch against a real kube-apiserver', { skip, timeout: 300_000 }, () => {
  const api = useProxiedCluster();
  let client: KubeClient;
  let direct: KubeClient;
  const ns = 'default';
  const cmPath = `/api/v1/namespaces/${ns}/configmaps`;
  let seq = 0;

  const put = async (name: string, data: Record<string, string>, namespace = ns, labels?: Record<string, string>): Promise<void> => {
    const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, ...(labels ? { labels } : {}) }, data };
    const res = await api.cluster.request('PATCH', `/api/v1/namespaces/${namespace}/configmaps/${name}?fieldManager=test`, body, {
      contentType: 'application/apply-patch+yaml',
    });
    assert.ok(res.status === 200 || res.status === 201, res.text);
  };

  before(async () => {
    client = await createKubeClient({ kubeconfig: api.kubeconfigViaProxy() });
    api.cleanups.push(async () => client.close());
    direct = await createKubeClient({ kubeconfig: api.cluster.writeKubeconfig(api.cluster.tokens.admin) });
    api.cleanups.push(async () => direct.close());
  });

  test('one object by name: initial set, edits, delete, re-create; others ignored; one list, one watch, one connection', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const connectionsBefore = api.proxy.connections;
    const seenBefore = api.proxy.seen.length;
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}` });
    try {
      assert.equal(await r.watcher.synced, true);
      assert.deepEqual(r.changes.map(values), [[`${ns}/${name}=a`]]);
      const first = r.last()[0] as ConfigMap;
      assert.equal(first.kind, 'ConfigMap', 'listed items carry their kind');
      assert.equal(first.apiVersion, 'v1');

      await put(name, { plugins: 'b' });
      await until('edit seen', () => r.changes.length === 2);
      assert.deepEqual(values(r.last()), [`${ns}/${name}=b`]);

      // Other objects of the same type: filtered by the server, never reported.
      await put(`${name}-other`, { plugins: 'zzz' });
      await api.cluster.request('DELETE', `${cmPath}/${name}`);
      await until('delete seen', () => r.changes.length === 3);
      assert.deepEqual(r.last(), []);

      await put(name, { plugins: 'c' });
      await until('re-create seen', () => r.changes.length === 4);
      assert.deepEqual(values(r.last()), [`${ns}/${name}=c`]);
      await sleep(300);
      assert.equal(r.changes.length, 4, 'no duplicate deliveries');

      const mine = api.proxy.seen.slice(seenBefore);
      assert.equal(mine.filter((s) => s.query.get('watch') === null).length, 1, 'one LIST');
      assert.equal(mine.filter((s) => s.query.get('watch') === '1').length, 1, 'one WATCH');
      const w = mine.find((s) => s.query.get('watch') === '1') as Seen;
      assert.equal(w.query.get('allowWatchBookmarks'), 'true');
      assert.ok(Number(w.query.get('timeoutSeconds')) >= 300);
      assert.equal(w.query.get('fieldSelector'), `metadata.name=${name}`);
      assert.equal(api.proxy.connections - connectionsBefore, 1, 'LIST and WATCH share one connection');
      assert.deepEqual(r.restarts, []);
      assert.deepEqual(r.errors, []);
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('label selector across all namespaces', async () => {
    const label = `set-${++seq}`;
    await api.cluster.request('POST', '/api/v1/namespaces', { metadata: { name: label } });
    await put('one', { plugins: '1' }, ns, { group: label });
    const r = record(client, { path: '/api/v1/configmaps', labelSelector: `group=${label}` });
    try {
      await r.watcher.synced;
      assert.deepEqual(values(r.last()), [`${ns}/one=1`]);
      await put('two', { plugins: '2' }, label, { group: label });
      await until('second namespace seen', () => r.last().length === 2);
      assert.deepEqual(values(r.last()), [`${label}/two=2`, `${ns}/one=1`].sort());
      await put('unlabelled', { plugins: 'x' }, label);
      await sleep(300);
      assert.equal(r.changes.length, 2);
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('connection drop: resumed from the last resourceVersion, no re-list, no spurious change; later edits seen', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const seenBefore = api.proxy.seen.length;
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}` });
    try {
      await r.watcher.synced;
      await until('watch open', () => api.proxy.count((s) => s.query.get('watch') === '1' && s.query.get('fieldSelector') === `metadata.name=${name}`) === 1);
      await put(name, { plugins: 'b' });
      await until('edit seen', () => r.changes.length === 2);
      const rv = r.watcher.resourceVersion();
      api.proxy.drop();
      await until('restart', () => r.restarts.length === 1);
      await until('second watch', () => api.proxy.seen.slice(seenBefore).filter((s) => s.query.get('watch') === '1').length === 2);
      const mine = api.proxy.seen.slice(seenBefore);
      assert.equal(mine.filter((s) => s.query.get('watch') === null).length, 1, 'no re-list after a drop');
      assert.equal(
        mine
          .filter((s) => s.query.get('watch') === '1')
          .at(-1)
          ?.query.get('resourceVersion'),
        rv,
        'resumed from the last resourceVersion',
      );
      await sleep(300);
      assert.equal(r.changes.length, 2, 'the reconnect brought nothing new: no onChange');
      await put(name, { plugins: 'c' });
      await until('edit after reconnect', () => r.changes.length === 3);
      assert.deepEqual(values(r.last()), [`${ns}/${name}=c`]);
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('the server ending the watch (timeoutSeconds) is resumed at once: no re-list, no onChange, no backoff', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const mine = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}`;
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}`, timeoutSeconds: 1 });
    try {
      await r.watcher.synced;
      await sleep(3_600);
      const watches = api.proxy.seen.filter((s) => mine(s) && s.query.get('watch') === '1');
      assert.ok(watches.length >= 3 && watches.length <= 5, `one watch per timeoutSeconds: ${watches.length}`);
      assert.equal(
        api.proxy.count((s) => mine(s) && s.query.get('watch') === null),
        1,
        'listed once',
      );
      assert.ok(r.restarts.length >= 2 && r.restarts.every((x) => x.reason === 'timeout'), JSON.stringify(r.restarts));
      const gaps = watches.slice(1).map((w, i) => w.at - (watches[i] as Seen).at);
      assert.ok(
        gaps.every((g) => g < 1_400),
        `re-established at once: ${gaps.join(', ')} ms`,
      );
      assert.equal(r.changes.length, 1, 'nothing new: no onChange');
      assert.deepEqual(r.errors, []);
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('410 Gone (HTTP status and ERROR event): re-list, same set → no onChange; Retry-After and 5xx back off', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const mineOf = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}`;
    const isWatch = (s: Seen): boolean => mineOf(s) && s.query.get('watch') === '1';
    const isList = (s: Seen): boolean => mineOf(s) && s.query.get('watch') === null;
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}` });
    try {
      await r.watcher.synced;
      await until('watch open', () => api.proxy.count(isWatch) === 1);

      // An ERROR event 410 in a watch stream.
      api.proxy.inject(isWatch, { watchErrorEvent: { code: 410, reason: 'Expired', message: 'too old resource version: 1 (2)' } });
      api.proxy.drop();
      await until('re-listed after the ERROR event', () => api.proxy.count(isList) === 2);
      await until('watching again', () => api.proxy.count(isWatch) === 3);
      assert.ok(
        r.restarts.some((x) => x.reason === 'expired'),
        JSON.stringify(r.restarts),
      );

      // A 410 status on opening the watch.
      api.proxy.inject(isWatch, {
        status: 410,
        body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' },
      });
      api.proxy.drop();
      await until('re-listed after HTTP 410', () => api.proxy.count(isList) === 3);
      await until('watching again', () => api.proxy.count(isWatch) === 5);
      assert.equal(r.changes.length, 1, 'the re-lists brought the same object: no onChange');

      // 429 with Retry-After: 2 → the next attempt waits at least that long.
      api.proxy.inject(isWatch, { status: 429, headers: { 'retry-after': '2' }, body: 'Too many requests, please try again later.' });
      const errorsBefore = r.errors.length;
      api.proxy.drop();
      await until('throttled', () => r.errors.length === errorsBefore + 1);
      const throttledAt = (api.proxy.seen.filter(isWatch).at(-1) as Seen).at;
      await until('watching after Retry-After', () => api.proxy.count(isWatch) === 7, 8_000);
      const resumedAt = (api.proxy.seen.filter(isWatch).at(-1) as Seen).at;
      assert.ok(resumedAt - throttledAt >= 1_950, `Retry-After honoured (${resumedAt - throttledAt} ms)`);
      assert.match(r.errors.at(-1)?.error.message ?? '', /429|overloaded/);
      assert.ok((r.errors.at(-1)?.retryInMs ?? 0) >= 2_000);

      // Three 503s in a row: growing delays, each reported, then recovery.
      for (let i = 0; i < 3; i++) api.proxy.inject(isWatch, { status: 503 });
      api.proxy.drop();
      await until('recovered after 503s', () => api.proxy.count(isWatch) === 11, 15_000);
      const attempts = api.proxy.seen
        .filter(isWatch)
        .slice(-4)
        .map((s) => s.at);
      const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] as number));
      assert.ok(
        gaps.every((g) => g >= 90),
        `backed off between attempts: ${gaps.join(', ')} ms`,
      );
      assert.ok((gaps[2] as number) > (gaps[0] as number) / 2, `delays grow (equal jitter): ${gaps.join(', ')} ms`);
      assert.equal(r.changes.length, 1, 'no spurious onChange through all of that');

      await put(name, { plugins: 'after' });
      await until('edit seen after the faults', () => r.changes.length === 2);
      assert.deepEqual(values(r.last()), [`${ns}/${name}=after`]);
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('a stalled connection (no data, no end) and an unanswered request are dropped and re-established', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const isWatch = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}` && s.query.get('watch') === '1';
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}`, timeoutSeconds: 1, stallGraceMs: 500 });
    try {
      await r.watcher.synced;
      await until('watch open', () => api.proxy.count(isWatch) === 1);
      api.proxy.freeze(true);
      await until('stalled', () => r.restarts.some((x) => x.reason === 'stalled'), 5_000);
      api.proxy.freeze(false);
      await put(name, { plugins: 'b' });
      await until('edit seen', () => values(r.last())[0] === `${ns}/${name}=b`, 5_000);

      // A server that accepts the request and never answers at all.
      const errorsBefore = r.errors.length;
      api.proxy.blackhole = true;
      api.proxy.drop();
      await until('unanswered watch given up', () => r.errors.slice(errorsBefore).some((e) => /no answer within 1.5 s/.test(e.error.message)), 5_000);
      api.proxy.blackhole = false;
      await put(name, { plugins: 'c' });
      await until('edit seen', () => values(r.last())[0] === `${ns}/${name}=c`, 8_000);
      assert.equal(r.changes.length, 3, 'one onChange per edit, none for the stalls');
    } finally {
      api.proxy.freeze(false);
      api.proxy.blackhole = false;
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('forbidden: reported with the RBAC reason, retried with backoff, never thrown', async () => {
    const kc = api.cluster.writeKubeconfig(api.cluster.tokens.denied);
    const denied = await createKubeClient({ kubeconfig: kc });
    const r = record(denied, { path: cmPath, fieldSelector: 'metadata.name=x', backoff: { baseDelayMs: 100, maxDelayMs: 400 } });
    try {
      await until('two failed attempts', () => r.errors.length >= 2);
      assert.match(r.errors[0]?.error.message ?? '', /forbidden: user "denied" may not list configmaps/);
      assert.equal(r.changes.length, 0);
    } finally {
      r.controller.abort();
      assert.equal(await r.watcher.synced, false);
      await r.watcher.done;
      denied.close();
    }
  });

  test('stop is prompt and releases the connection and timers (watching, and while backing off)', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}` });
    await r.watcher.synced;
    await until('watch open', () => api.proxy.openConnections > 0);
    let t = Date.now();
    r.controller.abort();
    await r.watcher.done;
    assert.ok(Date.now() - t < 100, `stopped in ${Date.now() - t} ms`);
    await until('proxy sees the connection closed', () => api.proxy.openConnections === 0, 1_000);

    // Stopped while waiting to retry (the API server refuses).
    const isWatch = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}` && s.query.get('watch') === '1';
    for (let i = 0; i < 5; i++) api.proxy.inject(isWatch, { status: 500 });
    const r2 = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}`, backoff: { baseDelayMs: 5_000, maxDelayMs: 30_000 } });
    await until('backing off', () => r2.errors.length === 1);
    const handlesBefore = process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
    t = Date.now();
    r2.controller.abort();
    await r2.watcher.done;
    assert.ok(Date.now() - t < 100, `stopped in ${Date.now() - t} ms`);
    assert.ok(process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length < handlesBefore, 'the backoff timer was cleared');
    await until('no connection left', () => api.proxy.openConnections === 0, 1_000);
  });

  test('API server stopped and restarted mid-watch: recovers, no spurious onChange, a later edit is seen, no flood', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'before' });
    const mine = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}`;
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}`, backoff: { baseDelayMs: 500, maxDelayMs: 30_000 } });
    try {
      await r.watcher.synced;
      await until('watch open', () => api.proxy.count((s) => mine(s) && s.query.get('watch') === '1') === 1);
      const downAt = Date.now();
      await api.cluster.stopApiServer();
      await sleep(3_000);
      await api.cluster.startApiServer();
      const upAt = Date.now();
      await until('watching again', () => r.requests.some((q) => q.verb === 'watch' && q.status === 200 && q.at > downAt), 20_000);
      const upAgain = Date.now() - upAt;
      // Give a re-list (410 after the restart) time to happen.
      await sleep(1_000);
      assert.equal(r.changes.length, 1, `no spurious onChange (got ${r.changes.length})`);
      assert.ok(r.restarts.length >= 1);
      const attempts = api.proxy.count((s) => mine(s) && s.at >= downAt);
      const seconds = (Date.now() - downAt) / 1000;
      assert.ok(attempts <= 15, `requests while the server was away are bounded: ${attempts} in ${seconds.toFixed(1)} s`);
      assert.ok(upAgain < 10_000, `watching again ${upAgain} ms after the server was back`);

      await put(name, { plugins: 'after' });
      await until('edit after restart', () => r.changes.length === 2, 10_000);
      assert.deepEqual(values(r.last()), [`${ns}/${name}=after`]);
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test("after a run of refused attempts, a watch the server answers and then cuts at once is resumed after the first step, not the run's", async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const isWatch = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}` && s.query.get('watch') === '1';
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}`, backoff: { baseDelayMs: 200, maxDelayMs: 4_000 } });
    const watches = (): WatchRequestEvent[] => r.requests.filter((q) => q.verb === 'watch');
    try {
      await r.watcher.synced;
      await until('watch open', () => watches().length === 1 && watches()[0]?.status === 200);
      for (let i = 0; i < 5; i++) api.proxy.inject(isWatch, { status: 503 });
      api.proxy.drop();
      // Five 503s: 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.8-1.6, 1.6-3.2 s apart; then the server answers.
      await until('open again after the 503s', () => watches().length === 7 && watches()[6]?.status === 200, 15_000);
      assert.deepEqual(
        watches().map((q) => q.status),
        [200, 503, 503, 503, 503, 503, 200],
      );
      const cutAt = Date.now();
      api.proxy.drop();
      await until('watching again', () => api.proxy.count(isWatch) === 8, 10_000);
      const gap = (api.proxy.seen.filter(isWatch).at(-1) as Seen).at - cutAt;
      // The run of 503s had reached the 3.2 s step (the next would be 2-4 s); the
      // server answered since, so the cut watch waits the short-watch step: 0.2-0.4 s.
      assert.ok(gap < 1_500, `resumed ${gap} ms after the cut`);
      assert.equal(r.changes.length, 1, 'no spurious onChange');
      assert.equal(
        api.proxy.count((s) => s.query.get('fieldSelector') === `metadata.name=${name}` && s.query.get('watch') === null),
        1,
        'never re-listed',
      );
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('410 for every watch right after its list: listed again with growing delays, not in a loop', async () => {
    const name = `cm-${++seq}`;
    await put(name, { plugins: 'a' });
    const mine = (s: Seen): boolean => s.query.get('fieldSelector') === `metadata.name=${name}`;
    const isWatch = (s: Seen): boolean => mine(s) && s.query.get('watch') === '1';
    const isList = (s: Seen): boolean => mine(s) && s.query.get('watch') === null;
    const gone = {
      status: 410,
      body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' },
    };
    const r = record(client, { path: cmPath, fieldSelector: `metadata.name=${name}`, backoff: { baseDelayMs: 200, maxDelayMs: 4_000 } });
    try {
      await r.watcher.synced;
      await until('watch open', () => api.proxy.count(isWatch) === 1);
      for (let i = 0; i < 4; i++) api.proxy.inject(isWatch, gone);
      api.proxy.drop();
      await until('listed four more times and watching', () => api.proxy.count(isList) === 5 && api.proxy.count(isWatch) === 6, 15_000);
      const seen = api.proxy.seen.filter((s) => isWatch(s) || isList(s));
      // After each 410'd watch: how long until the next list.
      const gaps = seen.flatMap((s, i) => (isWatch(s) && s.status === 410 && seen[i + 1] ? [(seen[i + 1] as Seen).at - s.at] : []));
      assert.equal(gaps.length, 4, JSON.stringify(seen.map((s) => `${isWatch(s) ? 'watch' : 'list'} ${s.status}`)));
      // The first 410 came for a resumed watch (the normal case): listed again at once.
      // The next three came right after a list: 0.1-0.2, 0.2-0.4, 0.4-0.8 s.
      assert.ok((gaps[0] as number) < 1_000, `re-listed at once after a resumed watch's 410: ${gaps.join(', ')} ms`);
      assert.ok((gaps[3] as number) >= 350 && (gaps[3] as number) > (gaps[1] as number), `growing delays: ${gaps.join(', ')} ms`);
      assert.ok(r.restarts.filter((x) => x.reason === 'expired').length === 4, JSON.stringify(r.restarts));
      assert.equal(r.changes.length, 1, 'the re-lists brought the same object: no onChange');
    } finally {
      r.controller.abort();
      await r.watcher.done;
    }
  });

  test('resolveResourceType: built-in names, discovery, groups, CRD short names, unknown types', async () => {
    assert.deepEqual(await resolveResourceType(direct, 'cm'), { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true });
    assert.equal((await resolveResourceType(direct, 'ConfigMap')).resource, 'configmaps');
    assert.equal((await resolveResourceType(direct, 'nodes')).namespaced, false);
    assert.deepEqual(await resolveResourceType(direct, 'deployments.apps'), {
      group: 'apps',
      version: 'v1',
      resource: 'deployments',
      kind: 'Deployment',
      namespaced: true,
    });
    assert.equal((await resolveResourceType(direct, 'deploy')).resource, 'deployments');
    assert.equal((await resolveResourceType(direct, 'clusterrolebinding')).group, 'rbac.authorization.k8s.io');
    assert.equal((await resolveResourceType(direct, 'limitranges')).kind, 'LimitRange');

    // The NetworkAttachmentDefinition CRD as Multus installs it: a CRD short name.
    const crd: unknown = parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/manifests/nad-crd.yaml'), 'utf8'));
    const created = await api.cluster.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    assert.equal(created.status, 201, created.text);
    const deadline = Date.now() + 15_000;
    let nad;
    while (!nad) {
      try {
        nad = await resolveResourceType(direct, 'net-attach-def');
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
    assert.deepEqual(nad, {
      group: 'k8s.cni.cncf.io',
      version: 'v1',
      resource: 'network-attachment-definitions',
      kind: 'NetworkAttachmentDefinition',
      namespaced: true,
    });
    assert.equal((await resolveResourceType(direct, 'network-attachment-definition')).resource, 'network-attachment-definitions');

    await assert.rejects(
      resolveResourceType(direct, 'nosuchthing'),
      (e: unknown) => e instanceof CniNodeError && /unknown object type "nosuchthing"/.test(e.message),
    );
    await assert.rejects(
      resolveResourceType(direct, 'pods.nosuch.group'),
      (e: unknown) => e instanceof CniNodeError && /no API group "nosuch.group"/.test(e.message),
    );
  });
});
