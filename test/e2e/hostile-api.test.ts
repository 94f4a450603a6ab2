// The processes under a hostile or broken API: the real `./bin/cni-node run
// --config-map=…` daemon and `./bin/kube-watch object …`, with in-cluster
// credentials pointing at a TLS-terminating proxy (support/fault-proxy.ts) in front
// of a real kube-apiserver + etcd (support/cluster.ts). The proxy passes the real
// answers and, where a test injects one, answers as a proxy gone wrong would: a
// watch event that never ends, a LIST answer that never ends, a Status message that
// tries to forge log lines. Each test reads the process's peak memory (VmHWM).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { useProxiedCluster } from './support/api-suite.js';
import { clusterUnavailableReason } from './support/cluster.js';
import * as run from './support/daemon.js';
import { exists, NS, until, type Tree } from './support/daemon.js';
import { configMapRequests, gapsOf, streamBytes, type Streamed } from './support/fault-proxy.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const skip = clusterUnavailableReason() ?? (existsSync(path.join(ROOT, 'dist', 'cni-node.mjs')) ? undefined : 'the CLI is not built: run `npm run build`');
const MiB = 1024 * 1024;
const CAP = 16 * MiB;

const api = useProxiedCluster({ skip, grant: { name: 'cni-node-hostile-test' } });
const { cleanups } = api;

/** A process's peak and current resident memory, from /proc. */
function memory(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number((new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status) as RegExpExecArray)[1]) * 1024;
  return { peak: kb('VmHWM'), now: kb('VmRSS') };
}

/** A watch answer whose first event never ends (`maxBytes`, many times the cap), and what the proxy managed to write. */
function endlessEvent(name: string, maxBytes = 256 * MiB) {
  let streamed: Promise<Streamed> | undefined;
  return {
    fault: {
      respond: (res: http.ServerResponse) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        streamed = streamBytes(res, {
          head: `{"type":"MODIFIED","object":{"metadata":{"name":"${name}","namespace":"${NS}","uid":"hostile","resourceVersion":"999999"},"data":{"plugins":"`,
          fill: 'macvlan,'.repeat(8 * 1024),
          maxBytes,
          tail: '"}}}\n',
        });
      },
    },
    streamed: () => streamed,
  };
}

/** A LIST answer that never ends. */
function endlessList(maxBytes = 256 * MiB) {
  return {
    respond: (res: http.ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      void streamBytes(res, {
        head: '{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[',
        fill: `${JSON.stringify({ metadata: { name: 'x' } })},`.repeat(1000),
        maxBytes,
        tail: '{}]}',
      });
    },
  };
}

const FORGED = 'no\n2099-01-01T00:00:00.000Z cni-node: forged line\u001b[2J';

const cmRequests = (name: string) => configMapRequests(NS, name);

describe(
  'a hostile or broken API: the daemon and kube-watch refuse oversized answers, stay bounded and keep the node (real kube-apiserver behind a fault proxy)',
  { skip, timeout: 300_000 },
  () => {
    test('cni-node run: a watch event over the size cap is a failed watch (one warning, growing backoff, bounded memory); the node is kept and later changes flow', async (t) => {
      const cm = 'cni-hostile-watch';
      const { isList, isWatch } = cmRequests(cm);
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge', configs: '', manifests: '' });
      const tree: Tree = await run.nodeTree(api.cluster, cleanups, 'cni-node-hostile-');
      const mark = api.proxy.seen.length;
      const d = await run.startDaemon(tree, [`--config-map=${NS}/${cm}`], { port: api.proxy.port, cleanups });
      try {
        await until('ready', async () => (await d.get('/readyz')).status === 200, 20_000, d);
        await until('watching', async () => api.proxy.seen.slice(mark).filter(isWatch).length === 1, 5_000, d);
        const pid = d.child.pid as number;
        const before = memory(pid).now;

        // Four watches in a row open with an event that never ends (256 MiB each, 16 times the cap).
        const faults = [1, 2, 3, 4].map(() => endlessEvent(cm));
        for (const f of faults) api.proxy.inject(isWatch, f.fault);
        api.proxy.drop();
        await until(
          'the four refused, and watching the real server again',
          async () => api.proxy.pendingFaults === 0 && api.proxy.seen.slice(mark).filter((s) => isWatch(s) && !s.faulted).length === 2,
          90_000,
          d,
        );
        for (const f of faults) {
          const s = (await f.streamed()) as Streamed;
          assert.ok(s.closedByClient && s.written < CAP + 12 * MiB, `${(s.written / MiB).toFixed(1)} MiB written before the daemon hung up`);
        }
        const peak = memory(pid).peak;
        t.diagnostic(`daemon RSS ${(before / MiB).toFixed(0)} MiB before the faults, peak ${(peak / MiB).toFixed(0)} MiB`);
        assert.ok(peak < before + 96 * MiB, `peak RSS ${(peak / MiB).toFixed(0)} MiB, ${(before / MiB).toFixed(0)} MiB before`);

        assert.ok(d.alive(), d.log());
        const warned = d.lines(
          new RegExp(
            `ConfigMap ${NS}/${cm} watch: watch https://127\\.0\\.0\\.1:\\d+/api/v1/namespaces/${NS}/configmaps: one event from the API server is larger than the 16 MiB cap on a watch event; refused, and the connection closed without reading the rest; retrying in \\d+\\.\\d s`,
          ),
        );
        assert.equal(warned.length, 1, `one warning for the one problem, not one per retry:\n${d.log()}`);
        const watches = api.proxy.seen.slice(mark).filter(isWatch).slice(1, 6);
        const gaps = gapsOf(watches);
        assert.ok((gaps.at(-1) as number) > (gaps[0] as number), `growing backoff between the watches: ${gaps.join(', ')} ms`);
        t.diagnostic(`watch attempts after the cut: gaps ${gaps.join(', ')} ms`);
        assert.equal(api.proxy.seen.slice(mark).filter(isList).length, 1, 'resumed, not re-listed');
        assert.equal((await d.get('/readyz')).status, 200, 'the node is as desired: still ready');
        assert.equal(await run.settledReconciles(d, { quietMs: 1_000, pollMs: 250 }), 1, 'nothing of the refused event was applied');
        assert.equal(await exists(path.join(tree.bin, 'macvlan')), false);

        // The watch is back: a real change flows (an event is progress, which ends the backoff streak).
        await run.putConfigMap(api.cluster, cm, { plugins: 'bridge,vlan', configs: '', manifests: '' });
        await until('vlan installed', () => exists(path.join(tree.bin, 'vlan')), 20_000, d);

        // The server's words cannot forge a log line.
        api.proxy.inject(isWatch, { watchErrorEvent: { code: 500, reason: 'InternalError', message: FORGED } });
        api.proxy.drop();
        await d.waitLog(/ERROR event 500: no\\n2099/, 15_000);
        assert.deepEqual(d.lines(/^(stderr: )?2099-01-01T00:00:00\.000Z cni-node: forged line/), [], 'no forged line');
        assert.ok(!d.log().includes('\u001b'), 'no terminal escape in the log');
        assert.equal((await d.stop()).code, 0);
      } finally {
        api.proxy.clearFaults();
      }
    });

    test('cni-node run: a LIST answer over the size cap at start: not ready, /readyz names the cap; ready once the answers are sane', async () => {
      const cm = 'cni-hostile-list';
      const { isList } = cmRequests(cm);
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge', configs: '', manifests: '' });
      const tree = await run.nodeTree(api.cluster, cleanups, 'cni-node-hostile-');
      api.proxy.inject(isList, endlessList());
      api.proxy.inject(isList, endlessList());
      try {
        const d = await run.startDaemon(tree, [`--config-map=${NS}/${cm}`], { port: api.proxy.port, cleanups });
        const r = await until(
          'not ready, naming the cap',
          async () => {
            const x = await d.get('/readyz');
            return x.status === 503 && /larger than the 16 MiB cap/.test(x.text) ? x : undefined;
          },
          15_000,
          d,
        );
        assert.match(
          r.text,
          new RegExp(
            `no answer yet about ConfigMap ${NS}/${cm}: the answer to GET https://127\\.0\\.0\\.1:\\d+/api/v1/namespaces/${NS}/configmaps is larger than the 16 MiB cap \\(at least \\d+ bytes\\); refused, and the connection closed without reading the rest; retrying with backoff`,
          ),
        );
        assert.equal(await exists(path.join(tree.bin, 'bridge')), false);
        await until('ready after the hostile answers', async () => (await d.get('/readyz')).status === 200, 30_000, d);
        assert.ok(await exists(path.join(tree.bin, 'bridge')));
        assert.equal((await d.stop()).code, 0);
      } finally {
        api.proxy.clearFaults();
      }
    });

    test('kube-watch object: a watch event over the size cap is refused with one clear line and retried with backoff; bounded memory; the handler sees only real values', async (t) => {
      const cm = 'kube-watch-hostile';
      const { isWatch } = cmRequests(cm);
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge', configs: '', manifests: '' });
      const tree = await run.nodeTree(api.cluster, cleanups, 'kube-watch-hostile-');
      const kw = await run.startKubeWatch(tree, cm, '{.data.plugins}', `printf '%s\\n' "$2" >> "$RUNS"`, api.proxy.port, cleanups);
      const { child, runs, exited } = kw;
      try {
        await until('the first value', async () => runs().length === 1, 20_000);
        assert.deepEqual(runs(), ['bridge']);
        const mark = api.proxy.seen.length;
        const before = memory(child.pid as number).now;
        const faults = [1, 2, 3].map(() => endlessEvent(cm));
        for (const f of faults) api.proxy.inject(isWatch, f.fault);
        api.proxy.drop();
        await until(
          'the three refused, and watching the real server again',
          async () => api.proxy.pendingFaults === 0 && api.proxy.seen.slice(mark).filter((s) => isWatch(s) && !s.faulted).length === 1,
          60_000,
        );
        const peak = memory(child.pid as number).peak;
        t.diagnostic(`kube-watch RSS ${(before / MiB).toFixed(0)} MiB before the faults, peak ${(peak / MiB).toFixed(0)} MiB`);
        assert.ok(peak < before + 96 * MiB, `peak RSS ${(peak / MiB).toFixed(0)} MiB`);
        for (const f of faults) assert.ok(((await f.streamed()) as Streamed).written < CAP + 12 * MiB);
        const lines = kw
          .out()
          .split('\n')
          .filter((l) => /larger than the 16 MiB cap/.test(l));
        assert.equal(lines.length, 3, kw.out());
        for (const l of lines)
          assert.match(
            l,
            new RegExp(
              `watch https://127\\.0\\.0\\.1:\\d+/api/v1/namespaces/${NS}/configmaps: one event from the API server is larger than the 16 MiB cap on a watch event; refused, and the connection closed without reading the rest; retrying in \\d+\\.\\d s$`,
            ),
          );
        const delays = lines.map((l) => Number((/retrying in (\d+\.\d) s$/.exec(l) as RegExpExecArray)[1]));
        assert.ok((delays[2] as number) > (delays[0] as number), `growing delays: ${delays.join(', ')} s`);
        assert.deepEqual(runs(), ['bridge'], 'the handler never saw the refused value');

        // The watch is back: a real change reaches the handler (and, an event being progress, ends the backoff streak).
        await run.putConfigMap(api.cluster, cm, { plugins: 'bridge,vlan', configs: '', manifests: '' });
        await until('the real edit reaches the handler', async () => runs().length === 2, 20_000);
        assert.deepEqual(runs(), ['bridge', 'bridge,vlan']);

        // The server's words cannot forge a log line.
        api.proxy.inject(isWatch, { watchErrorEvent: { code: 500, reason: 'InternalError', message: FORGED } });
        api.proxy.drop();
        await until('the ERROR event reported', async () => /ERROR event 500: no\\n2099/.test(kw.out()), 15_000);
        assert.doesNotMatch(kw.out(), /^2099-01-01T00:00:00\.000Z cni-node: forged line/m);
        assert.ok(!kw.out().includes('\u001b'), 'no terminal escape in the log');

        assert.equal(child.exitCode, null, kw.out());
        child.kill('SIGTERM');
        assert.equal(await exited, 0, kw.out());
      } finally {
        api.proxy.clearFaults();
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  },
);
