// The real `./bin/cni-node run` daemon and `bin/kube-watch` against a real
// kube-apiserver + etcd (support/cluster.ts), for four classes of issue 13's
// follow-ups, each named in its test:
//  - untrusted text: a ConfigMap whose lists forge log lines or hold a megabyte
//    reaches the log, /readyz and Events as escaped, bounded lines;
//  - Event types: what makes the pod NotReady is a Warning, its end Normal (read
//    back from the API server, as `kubectl get events --field-selector type=Warning`);
//  - a flood of watch events that change nothing (real PATCHes of an annotation):
//    no reconcile, no log line, bounded CPU and memory; kube-watch coalesces a flood
//    of real changes while its handler runs;
//  - the periodic re-check of manifests: a per-node ClusterRoleBinding deleted by
//    someone is created again, by a daemon that may not read it (as deploy/'s RBAC),
//    with the requests it costs counted by a proxy (support/fault-proxy.ts).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { useProxiedCluster } from './support/api-suite.js';
import { clusterUnavailableReason } from './support/cluster.js';
import * as run from './support/daemon.js';
import { exists, NS, podName, projectedVolume, sleep, type Daemon, type Tree } from './support/daemon.js';
import { configMapRequests } from './support/fault-proxy.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const skip = clusterUnavailableReason() ?? (existsSync(path.join(ROOT, 'dist', 'cni-node.mjs')) ? undefined : 'the CLI is not built: run `npm run build`');
const MiB = 1024 * 1024;

const api = useProxiedCluster({
  skip,
  grant: {
    name: 'cni-node-hostile2-test',
    rules: [
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
    ],
  },
});
const { cleanups } = api;

const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 15_000, d?: Daemon): Promise<T> => run.until(what, probe, ms, d, 50);
const startDaemon = (tree: Tree, args: string[], env: Record<string, string> = {}, port: number | string = new URL(api.cluster.server).port) =>
  run.startDaemon(tree, args, { port, env, cleanups });

/** A line that, printed raw, starts a forged log line and clears the terminal. */
const FORGED = 'bridge\n2099-01-01T00:00:00.000Z cni-node: reconcile #9 done in 1 ms: nothing changed\r\u001b[2J\u2028\u202e';
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const eventsFor = (pod: string) => run.eventsFor(api.cluster, pod);

/** CPU time (user + system) of a process so far, in ms, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms
}
const peakRss = (pid: number) => Number((/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) as RegExpExecArray)[1]) * 1024;

const patchConfigMap = (name: string, patch: object) =>
  api.cluster.request('PATCH', `/api/v1/namespaces/${NS}/configmaps/${name}`, patch).then((r) => assert.equal(r.status, 200, r.text));

describe(
  'cni-node run and kube-watch against a real kube-apiserver: untrusted text, Event types, floods, manifest re-checks',
  { skip, timeout: 600_000 },
  () => {
    test('untrusted text: a ConfigMap whose lists forge log lines or hold 1 MiB cannot forge a line or push megabytes into the log, /readyz or Events', async () => {
      const cm = 'cni-hostile-text';
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge', configs: '', manifests: '' });
      const t = await run.nodeTree(api.cluster, cleanups, 'cni-node-text-');
      const d = await startDaemon(t, [`--config-map=${NS}/${cm}`]);
      await until('ready', async () => (await d.readyz()).status === 200, 20_000, d);
      const logBefore = d.log().length;

      // Lists that quote themselves in their problems: the Desired:Current form, an empty item, a bad name.
      await run.putConfigMap(api.cluster, cm, { plugins: `${FORGED}:a:b`, configs: `a,,${FORGED}`, manifests: `${FORGED}.yaml` });
      await d.waitLog(/has an invalid list/, 15_000);
      // 1 MiB: a million empty items (each problem quoted the whole text; joined, that was a RangeError).
      await run.putConfigMap(api.cluster, cm, { plugins: `bridge${','.repeat(1000 * 1024)}`, configs: '', manifests: '' });
      // Then valid again: the watch delivers in order, so both hostile versions have been handled.
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge,loopback', configs: '', manifests: '' });
      await until('loopback installed', () => exists(path.join(t.bin, 'loopback')), 20_000, d);
      const invalidLines = d.lines(/has an invalid list/);
      assert.ok(invalidLines.length >= 2, d.log().slice(logBefore, logBefore + 5_000));

      const log = d.log().slice(logBefore);
      assert.deepEqual(d.lines(/^(stderr: )?2099-01-01/), [], 'no forged log line');
      assert.doesNotMatch(log, RAW, 'no raw control or formatting character in the log');
      const longest = Math.max(...d.out.map((l) => l.length));
      assert.ok(longest < 20_000, `the longest log line has ${longest} characters`);
      assert.ok(log.length < 100_000, `the two hostile versions wrote ${log.length} characters of log`);
      assert.ok(d.alive(), 'still running');

      // Events: one line each, at most 1 KiB (the events.k8s.io limit).
      const events = await until('InvalidConfigMap Events', async () => {
        const es = (await eventsFor(podName(t))).filter((e) => e.reason === 'InvalidConfigMap');
        return es.length >= 1 ? es : undefined;
      });
      for (const e of events) {
        assert.doesNotMatch(e.message, RAW, e.message);
        assert.ok(Buffer.byteLength(e.message) <= 1024, `an Event message of ${Buffer.byteLength(e.message)} bytes`);
        assert.equal(e.type, 'Warning');
      }

      // /readyz while invalid: each reason one escaped line.
      await run.putConfigMap(api.cluster, cm, { plugins: `${FORGED}:a:b`, configs: '', manifests: '' });
      const r = await until('not ready', async () => {
        const s = await d.readyz();
        return s.status === 503 && /invalid list/.test(s.text) ? s : undefined;
      });
      for (const line of r.text.split('\n')) assert.doesNotMatch(line, RAW, line);
      assert.ok(!r.text.split('\n').some((l) => l.startsWith('2099-')), r.text);
      assert.equal((await d.stop()).code, 0);
    });

    test('Event types: what makes the pod NotReady is a Warning (the primary conflist missing, the ConfigMap missing); its end is Normal', async () => {
      const cm = 'cni-event-types';
      await api.cluster.request('DELETE', `/api/v1/namespaces/${NS}/configmaps/${cm}`);
      const t = await run.nodeTree(api.cluster, cleanups, 'cni-node-events-');
      await projectedVolume(t.templates, { '05-multus.conf': '{"cniVersion":"0.4.0","name":"multus","type":"bridge","delegates":[__10-calico.conflist__]}' });
      const d = await startDaemon(t, [`--config-map=${NS}/${cm}`]);
      const pod = podName(t);
      const event = (reason: string) => until(`a ${reason} Event`, async () => (await eventsFor(pod)).find((e) => e.reason === reason), 15_000, d);

      assert.equal((await event('ConfigMapMissing')).type, 'Warning');
      assert.equal((await d.readyz()).status, 503);
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge', configs: '05-multus.conf' });
      assert.equal((await event('ConfigMapValid')).type, 'Normal');
      const waiting = await event('WaitingForPointerTarget');
      assert.equal(waiting.type, 'Warning', 'the pod is NotReady while the primary conflist is missing: a Warning (it was Normal)');
      assert.match(waiting.message, /config 05-multus\.conf: waiting for 10-calico\.conflist to appear in /);
      assert.equal((await d.readyz()).status, 503);

      await writeFile(path.join(t.netd, '.calico.tmp'), '{"cniVersion":"0.4.0","name":"k8s-pod-network","plugins":[{"type":"bridge"}]}');
      await rename(path.join(t.netd, '.calico.tmp'), path.join(t.netd, '10-calico.conflist'));
      await until('ready', async () => (await d.readyz()).status === 200, 15_000, d);
      const reconciled = await event('Reconciled');
      assert.equal(reconciled.type, 'Normal');
      assert.match(reconciled.message, /the node is in the desired state again/);

      // Operators who watch Warnings only see exactly the NotReady states.
      const warnings = (await eventsFor(pod)).filter((e) => e.type === 'Warning').map((e) => e.reason);
      assert.deepEqual([...new Set(warnings)].sort(), ['ConfigMapMissing', 'WaitingForPointerTarget']);
      assert.equal((await d.stop()).code, 0);
    });

    test('a flood of watch events that change nothing (500 PATCHes of an annotation or another key, valid and invalid lists): no reconcile, no log line, bounded CPU and memory', async (t) => {
      const cm = 'cni-flood';
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge', configs: '', manifests: '', other: '0' });
      const tree = await run.nodeTree(api.cluster, cleanups, 'cni-node-flood-');
      const d = await startDaemon(tree, [`--config-map=${NS}/${cm}`]);
      await until('ready', async () => (await d.readyz()).status === 200, 20_000, d);
      const pid = d.child.pid as number;
      const reconciles = await run.settledReconciles(d, { quietMs: 600, pollMs: 200, maxMs: 10_000 });
      const lines = d.out.length;
      const cpu0 = cpuMs(pid);
      const rss0 = peakRss(pid);

      const flood = async (n: number) => {
        for (let i = 0; i < n; i++) await patchConfigMap(cm, i % 2 ? { metadata: { annotations: { flood: String(i) } } } : { data: { other: String(i) } });
      };
      const started = Date.now();
      await flood(500);
      // A real change after the flood: the watch delivers in order, so the flood has been handled once it is applied.
      await patchConfigMap(cm, { data: { plugins: 'bridge,loopback' } });
      await until('loopback installed', () => exists(path.join(tree.bin, 'loopback')), 20_000, d);
      const cpu = cpuMs(pid) - cpu0;
      t.diagnostic(
        `500 unchanged MODIFIED events in ${Date.now() - started} ms: daemon CPU ${cpu} ms (${(cpu / 500).toFixed(2)} ms an event), peak RSS ${(rss0 / MiB).toFixed(0)} → ${(peakRss(pid) / MiB).toFixed(0)} MiB`,
      );
      assert.equal(await run.settledReconciles(d, { quietMs: 600, pollMs: 200, maxMs: 10_000 }), reconciles + 1, 'one reconcile: the real change');
      const added = d.out.slice(lines);
      assert.ok(added.length <= 6, `the flood logged nothing; the change a few lines:\n${added.join('\n')}`);
      assert.ok(peakRss(pid) < rss0 + 64 * MiB);

      // The same flood over an invalid list: reported once, not once per event (it was one error line per event).
      await patchConfigMap(cm, { data: { plugins: 'bridge,,loopback' } });
      await d.waitLog(/has an invalid list/);
      const before = d.lines(/has an invalid list/).length;
      await flood(300);
      await patchConfigMap(cm, { data: { plugins: 'bridge' } });
      await until('ready again', async () => (await d.readyz()).status === 200 && !(await exists(path.join(tree.bin, 'loopback'))), 20_000, d);
      assert.equal(
        d.lines(/has an invalid list/).length,
        before,
        `the invalid list is reported once:\n${d
          .lines(/invalid list/)
          .slice(0, 5)
          .join('\n')}`,
      );
      assert.equal((await d.stop()).code, 0);
    });

    test('a hostile API server streaming 300 new versions whose list is not even a string: reported once, no reconcile', async () => {
      const cm = 'cni-flood-hostile';
      await run.putConfigMap(api.cluster, cm, { plugins: 'bridge' });
      const tree = await run.nodeTree(api.cluster, cleanups, 'cni-node-flood2-');
      const { isWatch } = configMapRequests(NS, cm);
      const mark = api.proxy.seen.length;
      const d = await startDaemon(tree, [`--config-map=${NS}/${cm}`], {}, api.proxy.port);
      try {
        await until('ready', async () => (await d.readyz()).status === 200, 20_000, d);
        await until('watching', async () => api.proxy.seen.slice(mark).some(isWatch), 10_000, d);
        const reconciles = await d.metric('cni_node_reconciles_total');
        const uid = (
          (await api.cluster.request<{ metadata: { uid: string } }>('GET', `/api/v1/namespaces/${NS}/configmaps/${cm}`)).body as { metadata: { uid: string } }
        ).metadata.uid;
        const event = (i: number) =>
          `${JSON.stringify({ type: 'MODIFIED', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm, namespace: NS, uid, resourceVersion: String(900_000 + i) }, data: { plugins: { n: i, forged: FORGED } } } })}\n`;
        api.proxy.inject(isWatch, {
          // One event every 5 ms, so each arrives on its own (events read together are applied together).
          respond: (res) => {
            res.writeHead(200, { 'content-type': 'application/json' });
            let i = 0;
            const next = (): void => {
              if (res.destroyed) return;
              if (i === 300) return void res.end();
              res.write(event(i++));
              setTimeout(next, 5);
            };
            next();
          },
        });
        api.proxy.drop();
        await d.waitLog(/key plugins is not a string/, 15_000);
        await until('watching the real server again', async () => api.proxy.seen.slice(mark).filter((x) => isWatch(x) && !x.faulted).length >= 2, 15_000, d);
        await sleep(500);
        assert.equal(d.lines(/key plugins is not a string/).length, 1, d.log().slice(-3_000));
        assert.equal(await d.metric('cni_node_reconciles_total'), reconciles);
        assert.equal((await d.stop()).code, 0);
      } finally {
        api.proxy.clearFaults();
      }
    });

    test("a flood of real changes while kube-watch's handler runs: coalesced into one waiting run with the latest value; memory bounded", async (t) => {
      const cm = 'kube-watch-flood';
      await run.putConfigMap(api.cluster, cm, { v: 'start' });
      const tree = await run.nodeTree(api.cluster, cleanups, 'kube-watch-flood-');
      const kw = await run.startKubeWatch(tree, cm, '{.data.v}', `printf '%s %s\\n' "$2" "$3" >> "$RUNS"\nsleep 1`, new URL(api.cluster.server).port, cleanups);
      const { child, runs, exited } = kw;
      try {
        await until('the first value', async () => runs().length === 1, 20_000);
        const rss0 = peakRss(child.pid as number);
        // 300 real changes of a 32 KiB value in a few seconds, while each handler run takes 1 s.
        const value = (i: number) => `v${String(i).padStart(4, '0')}-${'x'.repeat(32 * 1024)}`;
        for (let i = 1; i <= 300; i++) await patchConfigMap(cm, { data: { v: value(i) } });
        await until('the last value handled', async () => runs().at(-1)?.startsWith('v0300-') === true, 20_000);
        await sleep(1_500);
        const all = runs();
        t.diagnostic(
          `handler runs for 300 changes: ${all.length}; peak RSS ${(rss0 / MiB).toFixed(0)} → ${(peakRss(child.pid as number) / MiB).toFixed(0)} MiB`,
        );
        assert.ok(all.length < 30, `${all.length} handler runs for 300 changes (it was one each: 300 s of handler)`);
        assert.equal(
          all.at(-1)?.split(' ')[1]?.slice(0, 5),
          all.at(-2)?.split(' ')[0]?.slice(0, 5),
          "each run's previous value is the one the handler saw last",
        );
        assert.equal(readFileSync(path.join(tree.root, 'channel'), 'utf8').slice(0, 6), 'v0300-');
        assert.match(kw.out(), /change\(s\) in between coalesced while the handler ran/);
        assert.ok(peakRss(child.pid as number) < rss0 + 64 * MiB);
        child.kill('SIGTERM');
        assert.equal(await exited, 0, kw.out());
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });

    test('manifests are re-checked every CNI_NODE_MANIFEST_RECHECK: a per-node ClusterRoleBinding deleted by someone is created again by a daemon that may not read it', async (t) => {
      const crb = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings';
      // As deploy/multus-cni-rbac.yaml: create and patch bindings, bind one role; no get, list or delete.
      for (const [p, body] of [
        [
          '/apis/rbac.authorization.k8s.io/v1/clusterroles',
          { metadata: { name: 'h2-multus' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] },
        ],
        [
          '/apis/rbac.authorization.k8s.io/v1/clusterroles',
          {
            metadata: { name: 'h2-cni-node' },
            rules: [
              { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterrolebindings'], verbs: ['create', 'patch'] },
              { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'], resourceNames: ['h2-multus'] },
            ],
          },
        ],
        [
          crb,
          {
            metadata: { name: 'h2-cni-node' },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'h2-cni-node' },
            subjects: [{ kind: 'ServiceAccount', name: 'cni-node', namespace: NS }],
          },
        ],
      ] as const) {
        const res = await api.cluster.request('POST', p, {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: p.endsWith('clusterroles') ? 'ClusterRole' : 'ClusterRoleBinding',
          ...body,
        });
        assert.ok(res.status === 201 || res.status === 409, res.text);
      }
      const tree = await run.nodeTree(api.cluster, cleanups, 'cni-node-recheck-');
      await writeFile(
        path.join(tree.manifests, 'crb.yaml'),
        [
          'apiVersion: rbac.authorization.k8s.io/v1',
          'kind: ClusterRoleBinding',
          'metadata:',
          '  name: h2-multus-${NODE_HOSTNAME}',
          'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: h2-multus}',
          'subjects: [{kind: ServiceAccount, name: cni-node, namespace: kube-system}]',
          '',
        ].join('\n'),
      );
      const name = `${crb}/h2-multus-node-h2`;
      const d = await startDaemon(tree, ['--manifests=crb.yaml'], { NODE_HOSTNAME: 'node-h2', CNI_NODE_MANIFEST_RECHECK: '3s' }, api.proxy.port);
      await until('the binding created', async () => (await api.cluster.request('GET', name)).status === 200, 20_000, d);
      assert.equal((await api.cluster.request('GET', name, undefined, { token: api.cluster.tokens.serviceAccount })).status, 403, 'the daemon may not read it');

      // What a re-check costs when nothing changed: the requests between two of them.
      const first = await d.waitLog(/reconcile #\d+: the periodic re-check of manifests/, 10_000);
      const n = Number((/#(\d+)/.exec(first) as RegExpExecArray)[1]);
      await d.waitLog(new RegExp(`reconcile #${n} done in`), 10_000);
      const [mark, conns] = [api.proxy.seen.length, api.proxy.connections];
      await d.waitLog(new RegExp(`reconcile #${n + 3} done in`), 15_000);
      const per = api.proxy.seen.slice(mark).map((s) => `${s.method} ${s.path}${s.query.get('dryRun') ? ' (dry run)' : ''} → ${s.status}`);
      t.diagnostic(`3 re-checks with nothing to do: ${per.length} requests, ${api.proxy.connections - conns} TLS connections:\n${per.join('\n')}`);
      assert.equal(per.length % 3, 0, per.join('\n'));
      assert.ok(per.length / 3 <= 3, `${per.length / 3} requests a re-check`);
      assert.ok(!per.some((p) => p.startsWith('PATCH') && !p.includes('(dry run)')), 'nothing written while nothing changed');

      // Someone deletes it: the next re-check creates it again.
      const deleted = Date.now();
      assert.equal((await api.cluster.request('DELETE', name)).status, 200);
      await until('the binding created again', async () => (await api.cluster.request('GET', name)).status === 200, 15_000, d);
      t.diagnostic(`created again ${Date.now() - deleted} ms after it was deleted (CNI_NODE_MANIFEST_RECHECK=3s)`);
      await d.waitLog(/manifest crb\.yaml: (installed|updated)/, 5_000);
      assert.equal((await d.readyz()).status, 200);
      assert.equal((await d.stop()).code, 0);
      await api.cluster.request('DELETE', name);
    });
  },
);
