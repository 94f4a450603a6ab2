// `cni-node run` end to end: the real ./bin/cni-node process, the real CNI plugins
// from Debian's containernetworking-plugins (/usr/lib/cni) as the image's plugins,
// temporary node dirs, and a real kube-apiserver + etcd (test/e2e/support/cluster.ts).
import assert from 'node:assert/strict';
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { useTestCluster } from './support/api-suite.js';
import { clusterUnavailableReason } from './support/cluster.js';
import * as run from './support/daemon.js';
import { DAEMON_RULES, DEBIAN_PLUGINS, exists, NS, projectedVolume, sleep, type Daemon, type Tree } from './support/daemon.js';

const skip = clusterUnavailableReason();

const api = useTestCluster({
  skip,
  grant: {
    name: 'cni-node-run-test',
    rules: [
      ...DAEMON_RULES,
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'create', 'patch', 'update', 'delete'] },
      // Secrets may be created but not deleted: --uninstall-on-exit then fails on the API side.
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'patch'] },
    ],
  },
});
const { cleanups } = api;

// ---- node trees --------------------------------------------------------------

const nodeTree = () => run.nodeTree(api.cluster, cleanups, 'cni-node-run-');

const calico = (name: string) =>
  JSON.stringify({
    cniVersion: '0.4.0',
    name,
    plugins: [
      { type: 'bridge', bridge: 'cni0' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
const MULTUS_TEMPLATE = '{"cniVersion":"0.4.0","name":"multus-cni-network","type":"bridge","delegates":[__10-calico.conflist__]}';

// ---- the daemon process ----------------------------------------------------------

/** Starts `cni-node run` with in-cluster credentials that point straight at the API server, and `env` added. */
const startDaemon = (tree: Tree, args: string[], env: Record<string, string> = {}): Promise<Daemon> =>
  run.startDaemon(tree, args, { port: new URL(api.cluster.server).port, env, cleanups });

/**
 * The reconcile count once it has stopped moving for 600 ms (a reconcile is
 * counted when it ends), or after 10 s if it never does (the caller's assertion
 * then shows the loop).
 */
const settledReconciles = (d: Daemon) => run.settledReconciles(d, { quietMs: 600, pollMs: 200, maxMs: 10_000 });

const until = <T>(what: string, probe: () => Promise<T | undefined | false>, ms?: number, d?: Daemon): Promise<T> => run.until(what, probe, ms, d, 25);

const ino = async (p: string) => (await stat(p)).ino;

// ---- the API side ------------------------------------------------------------------

const putConfigMap = (name: string, data: Record<string, string>) => run.putConfigMap(api.cluster, name, data);

const eventsFor = (pod: string) => run.eventsFor(api.cluster, pod);

describe('cni-node run against a real kube-apiserver', { skip, timeout: 600_000 }, () => {
  test('ConfigMap edits converge: plugins added and removed; an invalid list keeps the last good state', async () => {
    const t = await nodeTree();
    await putConfigMap('cni-run-a', { plugins: 'bridge,macvlan', configs: '', manifests: '' });
    const d = await startDaemon(t, [`--config-map=${NS}/cni-run-a`]);
    await until('ready', async () => (await d.readyz()).status === 200, 15_000, d);
    assert.ok(await exists(path.join(t.bin, 'bridge')));
    assert.ok(await exists(path.join(t.bin, 'macvlan')));
    const bridgeIno = await ino(path.join(t.bin, 'bridge'));

    await putConfigMap('cni-run-a', { plugins: 'bridge,ipvlan,host-device', configs: '', manifests: '' });
    await until(
      'ipvlan and host-device installed, macvlan removed',
      async () => (await exists(path.join(t.bin, 'ipvlan'))) && (await exists(path.join(t.bin, 'host-device'))) && !(await exists(path.join(t.bin, 'macvlan'))),
      10_000,
      d,
    );
    assert.equal(await ino(path.join(t.bin, 'bridge')), bridgeIno, 'a kept plugin is not rewritten');
    await d.waitLog(/reconcile #\d+: ConfigMap kube-system\/cni-run-a changed \(plugins; resourceVersion \d+\)/);
    await d.waitLog(/^plugin macvlan: removed$/);
    await d.waitLog(/^plugin ipvlan: installed$/);
    assert.equal((await d.readyz()).status, 200);

    // An invalid list: reported (log, readiness, Event); the node keeps the last good state.
    const reconcilesBefore = await settledReconciles(d);
    await putConfigMap('cni-run-a', { plugins: 'bridge,,../evil', configs: '', manifests: '' });
    const r = await until(
      'not ready',
      async () => {
        const s = await d.readyz();
        return s.status === 503 ? s : undefined;
      },
      10_000,
      d,
    );
    assert.match(r.text, /ConfigMap kube-system\/cni-run-a has an invalid list/);
    await d.waitLog(/stderr: error: ConfigMap kube-system\/cni-run-a .* has an invalid list; keeping the last good desired state/);
    assert.ok(await exists(path.join(t.bin, 'ipvlan')));
    assert.equal(await d.metric('cni_node_reconciles_total'), reconcilesBefore, 'no reconcile for an invalid ConfigMap');
    const pod = `cni-node-${path.basename(t.root)}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
    await until('an InvalidConfigMap Event on the pod', async () =>
      (await eventsFor(pod)).find((e) => e.reason === 'InvalidConfigMap' && e.type === 'Warning'),
    );

    await putConfigMap('cni-run-a', { plugins: 'bridge', configs: '', manifests: '' });
    await until(
      'ready again with ipvlan and host-device removed',
      async () => (await d.readyz()).status === 200 && !(await exists(path.join(t.bin, 'ipvlan'))) && !(await exists(path.join(t.bin, 'host-device'))),
      10_000,
      d,
    );

    const stopped = await d.stop();
    assert.equal(stopped.code, 0, d.log());
    assert.ok(stopped.ms < 2_000, `SIGTERM took ${stopped.ms} ms`);
    assert.ok(await exists(path.join(t.bin, 'bridge')), 'a plain SIGTERM removes nothing');
  });

  test('a ConfigMap that does not exist yet: not ready with the reason, then reconciled when it is created', async () => {
    const t = await nodeTree();
    await api.cluster.request('DELETE', `/api/v1/namespaces/${NS}/configmaps/cni-run-late`);
    const d = await startDaemon(t, [`--config-map=${NS}/cni-run-late`]);
    const r = await until(
      'not ready',
      async () => {
        const s = await d.readyz();
        return s.status === 503 && /does not exist/.test(s.text) ? s : undefined;
      },
      10_000,
      d,
    );
    assert.match(r.text, /ConfigMap kube-system\/cni-run-late does not exist; waiting for it/);
    assert.equal(await d.metric('cni_node_reconciles_total'), 0);
    await putConfigMap('cni-run-late', { plugins: 'loopback' });
    await until('ready', async () => (await d.readyz()).status === 200, 10_000, d);
    assert.ok(await exists(path.join(t.bin, 'loopback')));
    assert.equal(await d.stop().then((s) => s.code), 0);
  });

  test('pointer targets: missing → waiting (not ready) → rendered when it appears; a rewrite re-renders; a ..data template swap is seen', async () => {
    const t = await nodeTree();
    // The templates dir as a mounted ConfigMap volume.
    await projectedVolume(t.templates, { '05-multus.conf': MULTUS_TEMPLATE });
    const d = await startDaemon(t, ['--plugins=bridge,portmap', '--configs=05-multus.conf']);
    const multus = path.join(t.netd, '05-multus.conf');

    const waiting = await until(
      'waiting readiness',
      async () => {
        const s = await d.readyz();
        return s.status === 503 && /waiting/.test(s.text) ? s : undefined;
      },
      10_000,
      d,
    );
    assert.match(waiting.text, /config 05-multus.conf is waiting for 10-calico.conflist/);
    await d.waitLog(/config 05-multus.conf: waiting for 10-calico.conflist to appear in /);
    assert.equal(await exists(multus), false);
    assert.ok(await exists(path.join(t.bin, 'bridge')), 'the plugins are installed meanwhile');

    // The primary CNI writes its config (atomically, by rename, as most do).
    await writeFile(path.join(t.netd, '.calico.tmp'), calico('k8s-pod-network'));
    await rename(path.join(t.netd, '.calico.tmp'), path.join(t.netd, '10-calico.conflist'));
    await until('05-multus.conf rendered', async () => (await readFile(multus, 'utf8').catch(() => '')).includes('k8s-pod-network'), 5_000, d);
    await d.waitLog(/reconcile #\d+: node file 10-calico.conflist appeared \(pointed to by 05-multus.conf\)/);
    await until('ready', async () => (await d.readyz()).status === 200, 5_000, d);
    assert.deepEqual(JSON.parse(await readFile(multus, 'utf8')).delegates[0].name, 'k8s-pod-network');

    // The primary CNI rewrites it in place.
    await writeFile(path.join(t.netd, '10-calico.conflist'), calico('k8s-pod-network-v2'));
    await until('05-multus.conf re-rendered', async () => (await readFile(multus, 'utf8')).includes('k8s-pod-network-v2'), 5_000, d);
    await d.waitLog(/reconcile #\d+: node file 10-calico.conflist changed \(pointed to by 05-multus.conf\)/);

    // An unrelated file in the node configs dir is no reason to reconcile. The
    // in-place rewrite above is two events (truncate, write) that may each have
    // started a reconcile: measure from a settled count.
    const n = await settledReconciles(d);
    await writeFile(path.join(t.netd, '99-unrelated.conf'), '{}');
    await writeFile(path.join(t.netd, '10-calico.conflist'), calico('k8s-pod-network-v2')); // same content
    await sleep(600);
    assert.equal(await d.metric('cni_node_reconciles_total'), n, 'no reconcile for unrelated files or unchanged content');

    // kubelet updates the mounted ConfigMap: a `..data` swap.
    await projectedVolume(t.templates, { '05-multus.conf': MULTUS_TEMPLATE.replace('multus-cni-network', 'multus-v2') });
    await until('the new template rendered', async () => (await readFile(multus, 'utf8')).includes('multus-v2'), 5_000, d);
    await d.waitLog(/reconcile #\d+: template 05-multus.conf changed in /);
    assert.ok((await readFile(multus, 'utf8')).includes('k8s-pod-network-v2'));

    const stopped = await d.stop('SIGINT');
    assert.equal(stopped.code, 0);
    assert.ok(stopped.ms < 2_000, `SIGINT took ${stopped.ms} ms`);
  });

  test('repair: a deleted or changed installed plugin or config is restored; readiness flips while an item is held for its own problem', async () => {
    const t = await nodeTree();
    await writeFile(path.join(t.netd, '10-calico.conflist'), calico('k8s'));
    await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS_TEMPLATE);
    const d = await startDaemon(t, ['--plugins=bridge,macvlan', '--configs=05-multus.conf']);
    await until('ready', async () => (await d.readyz()).status === 200, 10_000, d);

    await unlink(path.join(t.bin, 'macvlan'));
    await until('macvlan restored', () => exists(path.join(t.bin, 'macvlan')), 5_000, d);
    await d.waitLog(/reconcile #\d+: plugin macvlan, installed by cni-node, was deleted on the node/);
    assert.equal((await stat(path.join(t.bin, 'macvlan'))).mode & 0o777, 0o755);
    assert.deepEqual(await readFile(path.join(t.bin, 'macvlan')), await readFile(path.join(DEBIAN_PLUGINS, 'macvlan')));

    const multus = path.join(t.netd, '05-multus.conf');
    const good = await readFile(multus, 'utf8');
    await writeFile(multus, '{"broken": true}');
    await until('05-multus.conf restored', async () => (await readFile(multus, 'utf8')) === good, 5_000, d);

    // The template became invalid: that item is held as it is on the node (issue 13:
    // the rest would still converge); not ready, with the reason; an ItemInvalid Event.
    await writeFile(path.join(t.templates, '05-multus.conf'), '{"cniVersion":"0.4.0", "name": ');
    const r = await until(
      'not ready',
      async () => {
        const s = await d.readyz();
        return s.status === 503 ? s : undefined;
      },
      5_000,
      d,
    );
    assert.match(r.text, /config 05-multus\.conf is left as it is on the node .*config 05-multus\.conf is not a valid CNI network configuration/);
    assert.equal(await readFile(multus, 'utf8'), good, 'a held item is left as it was on the node');
    assert.ok((await d.metric('cni_node_reconciles_total', { result: 'partial' })) >= 1);
    const pod = run.podName(t);
    await until(
      'an ItemInvalid Event on the pod',
      async () => (await eventsFor(pod)).find((e) => e.reason === 'ItemInvalid' && e.type === 'Warning' && /05-multus\.conf/.test(e.message)),
      10_000,
      d,
    );
    await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS_TEMPLATE);
    await until('ready again', async () => (await d.readyz()).status === 200, 5_000, d);
    assert.equal(await d.stop().then((s) => s.code), 0);
  });

  test('manifests: applied from the ConfigMap, re-applied when the file changes, deleted when dropped; file repairs cost no API request', async () => {
    const t = await nodeTree();
    const sa = (label: string) =>
      `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: cni-run-test-sa\n  namespace: ${NS}\n  labels:\n    version: "${label}"\n`;
    await writeFile(path.join(t.manifests, 'sa.yaml'), sa('one'));
    await putConfigMap('cni-run-m', { plugins: 'bridge', configs: '', manifests: 'sa.yaml' });
    const d = await startDaemon(t, [`--config-map=${NS}/cni-run-m`]);
    await until('ready', async () => (await d.readyz()).status === 200, 20_000, d);
    const get = () => api.cluster.request<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${NS}/serviceaccounts/cni-run-test-sa`);
    assert.equal((await get()).body.metadata.labels?.['version'], 'one');

    await writeFile(path.join(t.manifests, 'sa.yaml'), sa('two'));
    await until('the changed manifest applied', async () => (await get()).body.metadata.labels?.['version'] === 'two', 10_000, d);
    await d.waitLog(/reconcile #\d+: manifest sa.yaml changed in /);

    // Counted at the API server: the engine's manifest client is not the daemon's own.
    const serverRequests = async () => {
      const text = (await api.cluster.request('GET', '/metrics')).text;
      return text
        .split('\n')
        .filter((l) => l.startsWith('apiserver_request_total{') && l.includes('resource="serviceaccounts"'))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    };
    const requests = await serverRequests();
    await unlink(path.join(t.bin, 'bridge'));
    await until('bridge restored', () => exists(path.join(t.bin, 'bridge')), 5_000, d);
    await d.waitLog(/reconcile #\d+ done in \d+ ms: 1 changed \(1 installed\)$/);
    assert.equal(await serverRequests(), requests, 'a plugin repair sends no API request about the manifests');

    await putConfigMap('cni-run-m', { plugins: 'bridge', configs: '', manifests: '' });
    await until('the ServiceAccount deleted', async () => (await get()).status === 404, 10_000, d);
    assert.equal(await d.stop().then((s) => s.code), 0);
  });

  test('the API server stops and starts again mid-watch: no spurious reconcile, then changes flow again', async () => {
    const t = await nodeTree();
    await putConfigMap('cni-run-b', { plugins: 'bridge', configs: '', manifests: '' });
    const d = await startDaemon(t, [`--config-map=${NS}/cni-run-b`]);
    await until('ready', async () => (await d.readyz()).status === 200, 15_000, d);
    const before = await d.metric('cni_node_reconciles_total');
    assert.equal(before, 1);

    await api.cluster.stopApiServer();
    await d.waitLog(/ConfigMap kube-system\/cni-run-b watch/, 15_000);
    await sleep(2_000);
    assert.equal((await d.readyz()).status, 200, 'the node is still as desired; the API being away does not make it unready');
    await api.cluster.startApiServer();
    await d.waitLog(/ConfigMap kube-system\/cni-run-b watch: connected again|watch restarting/, 45_000).catch(() => undefined);
    await sleep(3_000);
    assert.equal(await d.metric('cni_node_reconciles_total'), before, `no reconcile from the restart; log:\n${d.log()}`);
    assert.ok((await d.metric('cni_node_watch_restarts_total')) >= 1);

    await putConfigMap('cni-run-b', { plugins: 'bridge,vlan', configs: '', manifests: '' });
    await until('vlan installed after the restart', () => exists(path.join(t.bin, 'vlan')), 45_000, d);
    // The counter moves when the reconcile has finished, a moment after the file appears.
    await until('the reconcile counted', async () => (await d.metric('cni_node_reconciles_total')) > before, 5_000, d);
    assert.equal(await settledReconciles(d), before + 1, 'exactly one reconcile for the one change');
    assert.equal(await d.stop().then((s) => s.code), 0);
  });

  test('--uninstall-on-exit still removes the node files when the API refuses to delete an object', async () => {
    const t = await nodeTree();
    await writeFile(path.join(t.netd, '10-calico.conflist'), calico('k8s'));
    await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS_TEMPLATE);
    await writeFile(
      path.join(t.manifests, 'secret.yaml'),
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: cni-run-undeletable\n  namespace: ${NS}\nstringData:\n  a: b\n`,
    );
    const d = await startDaemon(t, ['--plugins=bridge,macvlan', '--configs=05-multus.conf', '--manifests=secret.yaml', '--uninstall-on-exit']);
    await until('ready', async () => (await d.readyz()).status === 200, 15_000, d);
    assert.ok(await exists(path.join(t.bin, 'macvlan')));
    assert.ok(await exists(path.join(t.netd, '05-multus.conf')));

    const stopped = await d.stop();
    assert.equal(stopped.code, 1, 'the failed deletion is reported in the exit code');
    await d.waitLog(/--uninstall-on-exit: .*forbidden.*; removing the node's files anyway/i);
    await d.waitLog(/--uninstall-on-exit failed: /);
    assert.equal(await exists(path.join(t.netd, '05-multus.conf')), false, 'the config is removed');
    assert.equal(await exists(path.join(t.bin, 'macvlan')), false, 'the plugins are removed');
    assert.equal(await exists(path.join(t.bin, 'bridge')), false);
    assert.ok(await exists(path.join(t.netd, '10-calico.conflist')), "another installer's config stays");
    assert.equal(
      (await api.cluster.request('GET', `/api/v1/namespaces/${NS}/secrets/cni-run-undeletable`)).status,
      200,
      'the object the API would not delete is still there',
    );
  });

  test('--uninstall-on-exit removes what it installed (and the kubeconfig); token rotation rewrites the kubeconfig', async () => {
    const t = await nodeTree();
    await writeFile(path.join(t.netd, '10-calico.conflist'), calico('k8s'));
    await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS_TEMPLATE);
    await writeFile(path.join(t.bin, 'calico'), 'not ours');
    const kubeconfig = path.join(t.netd, 'multus.d', 'multus.kubeconfig');
    const d = await startDaemon(t, ['--plugins=bridge,macvlan', '--configs=05-multus.conf', '--uninstall-on-exit', `--kubeconfig-out=${kubeconfig}`]);
    await until('ready', async () => (await d.readyz()).status === 200, 10_000, d);

    const kc = new KubeConfig();
    kc.loadFromString(await readFile(kubeconfig, 'utf8'));
    assert.equal(kc.getCurrentCluster()?.server, api.cluster.server);
    assert.equal(kc.getCurrentUser()?.token, api.cluster.tokens.serviceAccount);
    assert.equal((await stat(kubeconfig)).mode & 0o777, 0o600);

    // The kubelet rotates the projected token.
    await projectedVolume(t.sa, { token: api.cluster.tokens.admin, 'ca.crt': api.cluster.caData, namespace: NS });
    await until('the rotated token in the kubeconfig', async () => (await readFile(kubeconfig, 'utf8')).includes(api.cluster.tokens.admin), 5_000, d);
    await d.waitLog(/kubeconfig-out: wrote .*multus.kubeconfig \(the service account token changed \(rotated\)\)/);
    // It works: the plugin can use it against the API server.
    const kc2 = new KubeConfig();
    kc2.loadFromString(await readFile(kubeconfig, 'utf8'));
    assert.equal(kc2.getCurrentUser()?.token, api.cluster.tokens.admin);

    const stopped = await d.stop();
    assert.equal(stopped.code, 0, d.log());
    assert.ok(stopped.ms < 2_000, `stop with --uninstall-on-exit took ${stopped.ms} ms`);
    for (const gone of [path.join(t.bin, 'bridge'), path.join(t.bin, 'macvlan'), path.join(t.netd, '05-multus.conf'), kubeconfig]) {
      assert.equal(await exists(gone), false, `${gone} removed`);
    }
    assert.equal(await readFile(path.join(t.bin, 'calico'), 'utf8'), 'not ours', "another installer's file is untouched");
    assert.ok(await exists(path.join(t.netd, '10-calico.conflist')));
    await d.waitLog(/--uninstall-on-exit: removed 3 item\(s\)/);
  });

  test('a plain SIGTERM removes nothing and exits within 2 s, also in the middle of a reconcile', async () => {
    const t = await nodeTree();
    const all = [
      'bandwidth',
      'bridge',
      'dhcp',
      'firewall',
      'host-device',
      'host-local',
      'ipvlan',
      'loopback',
      'macvlan',
      'portmap',
      'ptp',
      'sbr',
      'static',
      'tuning',
      'vlan',
      'vrf',
    ];
    const d = await startDaemon(t, [`--plugins=${all.join(',')}`]);
    await until('ready', async () => (await d.readyz()).status === 200, 10_000, d);
    // Delete them all and stop while the repair runs.
    for (const p of all) await unlink(path.join(t.bin, p));
    await d.waitLog(/reconcile #2/, 5_000);
    const stopped = await d.stop();
    assert.equal(stopped.code, 0, d.log());
    assert.ok(stopped.ms < 2_000, `SIGTERM took ${stopped.ms} ms`);
    // Whatever is there is whole, and no temporary file is left visible to a runtime.
    for (const p of all) {
      const file = path.join(t.bin, p);
      if (await exists(file)) assert.deepEqual(await readFile(file), await readFile(path.join(DEBIAN_PLUGINS, p)), `${p} is whole`);
    }
  });

  test('fight detection: something else keeps rewriting a managed config → cni-node backs off and reports it', async () => {
    const t = await nodeTree();
    await writeFile(path.join(t.netd, '10-calico.conflist'), calico('k8s'));
    await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS_TEMPLATE);
    const d = await startDaemon(t, ['--plugins=bridge', '--configs=05-multus.conf'], {
      CNI_NODE_FIGHT_LIMIT: '3',
      CNI_NODE_FIGHT_WINDOW: '30s',
      CNI_NODE_FIGHT_HOLD: '4s',
    });
    await until('ready', async () => (await d.readyz()).status === 200, 10_000, d);
    const multus = path.join(t.netd, '05-multus.conf');
    const ours = await readFile(multus, 'utf8');
    const theirs = '{"cniVersion":"0.4.0","name":"other-installer","type":"bridge"}';

    // The other agent: rewrites the file whenever it is not its version.
    let fighting = true;
    const rogue = (async () => {
      while (fighting) {
        if ((await readFile(multus, 'utf8').catch(() => '')) !== theirs) await writeFile(multus, theirs);
        await sleep(50);
      }
    })();
    try {
      const r = await until(
        'the fight reported in readiness',
        async () => {
          const s = await d.readyz();
          return s.status === 503 && /keeps rewriting/.test(s.text) ? s : undefined;
        },
        15_000,
        d,
      );
      assert.match(r.text, /config 05-multus.conf: something else keeps rewriting .*05-multus.conf/);
      assert.equal(await d.metric('cni_node_fight_detections_total', { kind: 'config', name: '05-multus.conf' }), 1);
      await d.waitLog(/stderr: warning: config 05-multus.conf: something else keeps rewriting/);
      // cni-node stopped rewriting: count reconciles over a second of continued fighting.
      const n = await settledReconciles(d);
      await sleep(1_000);
      assert.equal(await d.metric('cni_node_reconciles_total'), n, 'no tight loop');
      assert.equal(await readFile(multus, 'utf8'), theirs);
    } finally {
      fighting = false;
      await rogue;
    }
    // The other agent gave up; after the hold cni-node restores its config and is ready again.
    await until('restored after the hold', async () => (await readFile(multus, 'utf8')) === ours, 10_000, d);
    await until('ready again', async () => (await d.readyz()).status === 200, 5_000, d);
    assert.equal(await d.stop().then((s) => s.code), 0);
  });
});
