// `cni-node run` under API-server faults, end to end: the real ./bin/cni-node process,
// Debian's CNI plugins (/usr/lib/cni) as the image's plugins, temporary node dirs, a
// real kube-apiserver + etcd (support/cluster.ts), and between them a TLS-terminating
// proxy (support/fault-proxy.ts) that counts every connection and request and
// injects faults: the API server down when the daemon starts, every response 2 s
// late, 429 + Retry-After and 503 on the LIST, 410 Gone on the watch.
//
// Every test counts requests (at the proxy, and in the daemon's own /metrics) and
// reconciles (cni_node_reconciles_total): faults must cost a bounded number of
// requests with backoff, and must never make the daemon reconcile for nothing.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { useProxiedCluster } from './support/api-suite.js';
import { clusterUnavailableReason } from './support/cluster.js';
import * as run from './support/daemon.js';
import { exists, NS, sleep, until, type Daemon, type Tree } from './support/daemon.js';
import { configMapRequests, gapsOf, type Seen } from './support/fault-proxy.js';
import { closedPort } from '../support/process.js';

const skip = clusterUnavailableReason();

const api = useProxiedCluster({ skip, grant: { name: 'cni-node-faults-test' } });
const { cleanups } = api;

const nodeTree = () => run.nodeTree(api.cluster, cleanups, 'cni-node-faults-');

/** Starts `cni-node run` with in-cluster credentials that point at the proxy (`via: 'proxy'`) or straight at the API server. */
const startDaemon = (tree: Tree, args: string[], via: 'proxy' | 'direct' | { port: number }): Promise<Daemon> =>
  run.startDaemon(tree, args, { port: via === 'proxy' ? api.proxy.port : via === 'direct' ? new URL(api.cluster.server).port : via.port, cleanups });

/** Waits until the daemon's reconcile count has not moved for a second, and returns it. */
const settledReconciles = (d: Daemon) => run.settledReconciles(d, { quietMs: 1_000, pollMs: 250 });

// ---- the API side ------------------------------------------------------------------

const putConfigMap = (name: string, data: Record<string, string>) => run.putConfigMap(api.cluster, name, data);

const cmRequests = (name: string) => configMapRequests(NS, name);

describe('cni-node run: API-server faults (real kube-apiserver behind a counting fault proxy)', { skip, timeout: 300_000 }, () => {
  test('started while the API server is unreachable: alive, not ready with the reason, bounded retries with backoff; syncs once it is back', async (t) => {
    const cm = 'cni-fault-start';
    await putConfigMap(cm, { plugins: 'bridge,loopback', configs: '', manifests: '' });
    await api.cluster.stopApiServer();
    let apiUp = false;
    try {
      // Two daemons over the same outage: one through the proxy (every attempt
      // counted there; the proxy cuts each request, as a load balancer without a
      // backend does), one straight at the stopped API server's port (ECONNREFUSED;
      // counted by its own /metrics).
      const ta = await nodeTree();
      const tb = await nodeTree();
      const mark = api.proxy.seen.length;
      const connMark = api.proxy.tcpConnections;
      const t0 = Date.now();
      const a = await startDaemon(ta, [`--config-map=${NS}/${cm}`], 'proxy');
      const b = await startDaemon(tb, [`--config-map=${NS}/${cm}`], 'direct');

      await sleep(10_000 - (Date.now() - t0));
      const seconds = (Date.now() - t0) / 1000;
      for (const [name, d] of [
        ['via proxy', a],
        ['direct', b],
      ] as const) {
        assert.ok(d.alive(), `${name}: the daemon keeps running while the API server is away; log:\n${d.log()}`);
        assert.equal((await d.get('/healthz')).status, 200, name);
        const r = await d.get('/readyz');
        assert.equal(r.status, 503, `${name}: not ready`);
        assert.match(r.text, new RegExp(`ConfigMap ${NS}/${cm}\\b[^\\n]*API server`), `${name}: the reason names the ConfigMap and the API server: ${r.text}`);
        assert.equal(await d.metric('cni_node_reconciles_total'), 0, `${name}: no reconcile without the desired state`);
        // One warning for the one problem, not one per retry.
        const warnings = d.lines(new RegExp(`ConfigMap ${NS}/${cm} watch: .*retrying in`));
        assert.ok(warnings.length >= 1 && warnings.length <= 2, `${name}: ${warnings.length} warnings:\n${warnings.join('\n')}`);
        assert.match(
          warnings[0] as string,
          /cannot reach the Kubernetes API server at https:\/\/127\.0\.0\.1:\d+|socket hang up|ECONNRESET|ECONNREFUSED/,
          name,
        );
      }
      assert.deepEqual(await Promise.all(['bridge', 'loopback'].map((p) => exists(path.join(ta.bin, p)))), [false, false], 'nothing installed yet');

      // Counted at the proxy: a handful of attempts with growing gaps, not a flood.
      const seenA = api.proxy.seen.slice(mark);
      const lists = seenA.filter(cmRequests(cm).isList);
      const gaps = gapsOf(lists);
      const all = `${seenA.length} requests (${seenA.map((s) => `${s.method} ${s.path}${s.query.get('watch') ? '?watch' : ''} +${s.at - t0}ms ${s.upstreamError ?? s.status ?? ''}`).join(', ')})`;
      assert.ok(lists.length >= 3 && lists.length <= 8, `bounded LIST attempts in ${seconds.toFixed(1)} s: ${all}`);
      assert.ok(seenA.length <= lists.length + 3, `no other request floods the proxy: ${all}`);
      assert.ok(api.proxy.tcpConnections - connMark <= seenA.length + 2, `connections ${api.proxy.tcpConnections - connMark} for ${seenA.length} requests`);
      assert.ok(
        gaps.every((g) => g >= 200),
        `backed off between attempts: ${gaps.join(', ')} ms`,
      );
      assert.ok((gaps.at(-1) as number) > (gaps[0] as number) * 2, `the delays grow: ${gaps.join(', ')} ms`);
      assert.ok(
        seenA.every((s) => s.upstreamError !== undefined),
        'every request met the stopped server',
      );
      // Counted by the direct daemon itself: connection refused, the same bounded number.
      const refused = await b.metric('cni_node_api_requests_total', { code: 'ECONNREFUSED' });
      const requestsB = await b.metric('cni_node_api_requests_total');
      assert.ok(refused >= 3 && requestsB <= 10, `direct: ${refused} refused of ${requestsB} requests in ${seconds.toFixed(1)} s`);
      t.diagnostic(
        `outage of ${seconds.toFixed(1)} s: via proxy ${lists.length} LIST attempts (gaps ${gaps.join(', ')} ms), ${seenA.length} requests in all; direct ${refused} refused of ${requestsB} requests`,
      );

      await api.cluster.startApiServer();
      apiUp = true;
      const upAt = Date.now();
      for (const [name, d, tr] of [
        ['via proxy', a, ta],
        ['direct', b, tb],
      ] as const) {
        await until(`${name}: ready after the API server is back`, async () => (await d.get('/readyz')).status === 200, 45_000, d);
        for (const p of ['bridge', 'loopback']) assert.ok(await exists(path.join(tr.bin, p)), `${name}: ${p} installed`);
        await d.waitLog(new RegExp(`ConfigMap ${NS}/${cm} watch: connected again`), 1_000);
        await d.waitLog(new RegExp(`reconcile #1: start \\(ConfigMap ${NS}/${cm}\\)`), 1_000);
      }
      const readyAfter = Date.now() - upAt;
      assert.equal(await settledReconciles(a), 1, 'exactly one reconcile (via proxy)');
      assert.equal(await settledReconciles(b), 1, 'exactly one reconcile (direct)');
      // The backoff is capped: at most the 16 s step the attempts had reached, plus the slack of polling.
      // (A restarted API server answers 403 for a moment until its RBAC cache is loaded: one more backed-off attempt.)
      assert.ok(readyAfter < 40_000, `ready ${readyAfter} ms after the API server was back`);
      t.diagnostic(`both ready ${readyAfter} ms after the API server was back`);
      const whole = api.proxy.seen.slice(mark);
      assert.equal(whole.filter((s) => cmRequests(cm).isList(s) && s.status === 200).length, 1, 'one successful LIST after the outage');
      assert.equal(whole.filter(cmRequests(cm).isWatch).length, 1, 'then one WATCH');
      assert.ok(whole.length <= 15, `requests over the whole outage and recovery: ${whole.length}`);
      for (const d of [a, b]) assert.equal((await d.stop()).code, 0);
    } finally {
      if (!apiUp) await api.cluster.startApiServer();
    }
  });

  test('unreachable at start: /readyz says the API server cannot be reached, not only that an answer is awaited', {}, async () => {
    const cm = 'cni-fault-readyz';
    const tree = await nodeTree();
    const d = await startDaemon(tree, [`--config-map=${NS}/${cm}`], { port: await closedPort() });
    await d.waitLog(new RegExp(`ConfigMap ${NS}/${cm} watch: cannot reach the Kubernetes API server`), 5_000);
    const r = await d.get('/readyz');
    assert.equal(r.status, 503);
    assert.match(r.text, /cannot reach the Kubernetes API server at https:\/\/127\.0\.0\.1:\d+/, `the readiness reason: ${r.text}`);
    assert.equal((await d.stop()).code, 0);
  });

  test('every response 2 s late, and a watch that stays silent: converges once, no duplicate reconcile, no extra request', async () => {
    const cm = 'cni-fault-slow';
    const { isList, isWatch } = cmRequests(cm);
    await putConfigMap(cm, { plugins: 'bridge', configs: '', manifests: '' });
    const t = await nodeTree();
    api.proxy.delayMs = 2_000;
    try {
      const mark = api.proxy.seen.length;
      const t0 = Date.now();
      const d = await startDaemon(t, [`--config-map=${NS}/${cm}`], 'proxy');
      // Right after start-up the reason may still be only "starting"; within the
      // 2 s the first answer takes, it names the ConfigMap being waited for.
      const early = await until(
        'not ready, waiting for the ConfigMap',
        async () => {
          const r = await d.get('/readyz');
          assert.equal(r.status, 503, `not ready before the first answer: ${r.text}`);
          return new RegExp(`waiting for the first answer about ConfigMap ${NS}/${cm}`).test(r.text) ? r : undefined;
        },
        1_500,
        d,
      );
      assert.equal(early.status, 503);
      await until('ready', async () => (await d.get('/readyz')).status === 200, 20_000, d);
      const readyMs = Date.now() - t0;
      assert.ok(readyMs >= 2_000, `the delay was in effect (${readyMs} ms)`);
      assert.ok(await exists(path.join(t.bin, 'bridge')));

      // The watch stays silent (nothing changes) for 6 s: the daemon keeps it, and does nothing.
      await sleep(6_000);
      assert.equal(await settledReconciles(d), 1, 'one reconcile');
      const mine = () => api.proxy.seen.slice(mark);
      assert.equal(mine().filter(isList).length, 1, 'one LIST');
      assert.equal(mine().filter(isWatch).length, 1, 'one WATCH, kept while silent');
      assert.ok(
        mine().length <= 3,
        `no other requests: ${mine()
          .map((s) => `${s.method} ${s.path}`)
          .join(', ')}`,
      );
      assert.equal(await d.metric('cni_node_watch_restarts_total'), 0, 'the slow watch was not restarted');

      // A change arrives 2 s late, and is applied once.
      const edited = Date.now();
      await putConfigMap(cm, { plugins: 'bridge,vlan', configs: '', manifests: '' });
      await until('vlan installed', () => exists(path.join(t.bin, 'vlan')), 15_000, d);
      const latency = Date.now() - edited;
      assert.ok(latency >= 1_900, `the event came through the slow proxy (${latency} ms)`);
      assert.equal(await settledReconciles(d), 2, 'exactly one more reconcile for the one change');
      assert.equal(mine().filter(isList).length, 1, 'still one LIST');
      assert.equal(mine().filter(isWatch).length, 1, 'still one WATCH');
      assert.equal((await d.get('/readyz')).status, 200);
      assert.equal((await d.stop()).code, 0);
    } finally {
      api.proxy.delayMs = 0;
    }
  });

  test('429 with Retry-After and 503s on the LIST: Retry-After honoured, growing backoff, then recovery; faults on the watch later: no spurious reconcile', async (t) => {
    const cm = 'cni-fault-throttle';
    const { isList, isWatch } = cmRequests(cm);
    await putConfigMap(cm, { plugins: 'bridge', configs: '', manifests: '' });
    const tree = await nodeTree();
    const status = (code: number, reason: string) => ({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      reason,
      code,
      message: `injected ${code}`,
    });
    api.proxy.inject(isList, { status: 429, headers: { 'retry-after': '3' }, body: { ...status(429, 'TooManyRequests'), details: { retryAfterSeconds: 3 } } });
    api.proxy.inject(isList, { status: 503, body: status(503, 'ServiceUnavailable') });
    api.proxy.inject(isList, { status: 503, body: status(503, 'ServiceUnavailable') });
    try {
      const mark = api.proxy.seen.length;
      const d = await startDaemon(tree, [`--config-map=${NS}/${cm}`], 'proxy');
      await until('throttled', async () => api.proxy.seen.slice(mark).filter(isList).length >= 1, 5_000, d);
      const throttled = await until(
        'not ready while throttled',
        async () => {
          const r = await d.get('/readyz');
          return r.status === 503 ? r : undefined;
        },
        2_000,
        d,
      );
      assert.match(throttled.text, new RegExp(`ConfigMap ${NS}/${cm}`));
      await until('ready after the throttling', async () => (await d.get('/readyz')).status === 200, 20_000, d);
      assert.equal(api.proxy.pendingFaults, 0);

      const lists = api.proxy.seen.slice(mark).filter(isList);
      assert.deepEqual(
        lists.map((s) => s.status),
        [429, 503, 503, 200],
        'four LIST attempts, no more',
      );
      const gaps = gapsOf(lists);
      assert.ok((gaps[0] as number) >= 2_950, `Retry-After: 3 honoured: ${gaps.join(', ')} ms`);
      // After the 2nd and 3rd failure: backoff steps of 1 s and 2 s, each jittered between half and all.
      assert.ok((gaps[1] as number) >= 450 && (gaps[1] as number) <= 1_500, `2nd delay ${gaps[1]} ms`);
      assert.ok((gaps[2] as number) >= 950 && (gaps[2] as number) <= 2_500, `3rd delay ${gaps[2]} ms`);
      const warned = d.lines(/watch: .*(429|503|overloaded|unavailable|too many).*retrying in/i);
      assert.ok(warned.length >= 1, `the throttling is logged:\n${d.log()}`);
      assert.ok(await exists(path.join(tree.bin, 'bridge')));
      assert.equal(await settledReconciles(d), 1, 'one reconcile, once the LIST went through');
      assert.equal(await d.metric('cni_node_api_requests_total', { verb: 'list', code: '429' }), 1);
      assert.equal(await d.metric('cni_node_api_requests_total', { verb: 'list', code: '503' }), 2);

      // Now the open watch is cut and re-opening it is refused: 503, 503, then 429 + Retry-After: 2.
      // First the watch lives 10 s (progress: its cut is then a normal reconnect, not
      // one more short-lived watch).
      await until('watch open', async () => api.proxy.seen.slice(mark).filter(isWatch).length === 1, 5_000, d);
      const opened = (api.proxy.seen.slice(mark).find(isWatch) as Seen).at;
      await sleep(10_500 - (Date.now() - opened));
      api.proxy.inject(isWatch, { status: 503, body: status(503, 'ServiceUnavailable') });
      api.proxy.inject(isWatch, { status: 503, body: status(503, 'ServiceUnavailable') });
      api.proxy.inject(isWatch, { status: 429, headers: { 'retry-after': '5' }, body: status(429, 'TooManyRequests') });
      api.proxy.drop();
      await until('watching again', async () => api.proxy.seen.slice(mark).filter(isWatch)[4]?.status === 200, 20_000, d);
      const watches = api.proxy.seen.slice(mark).filter(isWatch);
      assert.deepEqual(
        watches.map((s) => s.status),
        [200, 503, 503, 429, 200],
      );
      const wg = gapsOf(watches.slice(1));
      assert.ok(
        wg.every((g) => g >= 200),
        `backed off: ${wg.join(', ')} ms`,
      );
      // Backoff steps 1 s, 2 s, 4 s after the 2nd, 3rd and 4th failure; Retry-After: 5 is longer than the step.
      assert.ok((wg[0] as number) <= 1_500 && (wg[1] as number) <= 2_500, `backoff from its base again: ${wg.join(', ')} ms`);
      assert.ok((wg[2] as number) >= 4_950, `Retry-After: 5 honoured on the watch: ${wg.join(', ')} ms`);
      t.diagnostic(
        `LIST attempts ${lists.map((s) => s.status).join(', ')} with gaps ${gaps.join(', ')} ms; watch attempts ${watches.map((s) => s.status).join(', ')} with gaps ${wg.join(', ')} ms`,
      );
      assert.equal(api.proxy.seen.slice(mark).filter(isList).length, 4, 'resumed from its resourceVersion: no re-list');
      await sleep(500);
      assert.equal(await settledReconciles(d), 1, 'no spurious reconcile from the watch faults');
      assert.equal((await d.get('/readyz')).status, 200, 'the node is as desired: ready throughout');

      await putConfigMap(cm, { plugins: 'bridge,vlan', configs: '', manifests: '' });
      await until('vlan installed', () => exists(path.join(tree.bin, 'vlan')), 10_000, d);
      assert.equal(await settledReconciles(d), 2, 'exactly one reconcile for the one change');
      assert.equal((await d.stop()).code, 0);
    } finally {
      api.proxy.clearFaults();
    }
  });

  test('410 Gone on the watch (ERROR event and HTTP status): re-list, no spurious reconcile; a change missed meanwhile is applied once', async () => {
    const cm = 'cni-fault-gone';
    const { isList, isWatch } = cmRequests(cm);
    await putConfigMap(cm, { plugins: 'bridge', configs: '', manifests: '' });
    const t = await nodeTree();
    try {
      const mark = api.proxy.seen.length;
      const d = await startDaemon(t, [`--config-map=${NS}/${cm}`], 'proxy');
      await until('ready', async () => (await d.get('/readyz')).status === 200, 15_000, d);
      await until('watch open', async () => api.proxy.seen.slice(mark).filter(isWatch).length === 1, 5_000, d);
      const mine = () => api.proxy.seen.slice(mark);

      // An ERROR event with code 410 in the re-opened watch stream.
      api.proxy.inject(isWatch, { watchErrorEvent: { code: 410, reason: 'Expired', message: 'too old resource version: 1 (2)' } });
      api.proxy.drop();
      await until('re-listed after the ERROR event', async () => mine().filter(isList).length === 2, 10_000, d);
      await until('watching again', async () => mine().filter(isWatch).length === 3, 10_000, d);

      // A 410 status on opening the watch.
      api.proxy.inject(isWatch, {
        status: 410,
        body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' },
      });
      api.proxy.drop();
      await until('re-listed after HTTP 410', async () => mine().filter(isList).length === 3, 10_000, d);
      await until('watching again', async () => mine().filter(isWatch).length === 5, 10_000, d);
      assert.equal(await settledReconciles(d), 1, 'the re-lists brought the same ConfigMap: no reconcile');
      assert.ok((await d.metric('cni_node_watch_restarts_total', { reason: 'expired' })) >= 2);
      assert.equal((await d.get('/readyz')).status, 200);

      // A change made while the watch is dead (frozen, then cut), and the resumed
      // watch is told 410: the re-list brings it, and it is applied once.
      api.proxy.freeze(true);
      await putConfigMap(cm, { plugins: 'bridge,vlan', configs: '', manifests: '' });
      await sleep(300);
      api.proxy.inject(isWatch, {
        status: 410,
        body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' },
      });
      api.proxy.drop();
      api.proxy.freeze(false);
      await until('vlan installed after the re-list', () => exists(path.join(t.bin, 'vlan')), 10_000, d);
      assert.equal(mine().filter(isList).length, 4, 're-listed');
      assert.equal(await settledReconciles(d), 2, 'exactly one reconcile for the one change');
      await d.waitLog(new RegExp(`reconcile #2: ConfigMap ${NS}/${cm} changed \\(plugins; resourceVersion \\d+\\)`), 1_000);
      // About 10 in the expected sequence; a reconnect more under load is fine, a flood is dozens.
      assert.ok(mine().length <= 16, `requests bounded: ${mine().length}`);
      assert.equal((await d.stop()).code, 0);
    } finally {
      api.proxy.freeze(false);
      api.proxy.clearFaults();
    }
  });
});
