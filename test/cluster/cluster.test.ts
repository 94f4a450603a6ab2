// cni-node deployed the way its users deploy it, on a real Kubernetes cluster:
// the image as a DaemonSet pod started by a kubelet, writing through hostPath into
// the node's CNI dirs with the service account token the kubelet projects, and
// Multus on the node (run by containerd for every pod) reading the config and the
// kubeconfig that cni-node wrote.
//
// The cluster: by default the machine's own single-node cluster
// (scripts/test-cluster.sh: etcd, kube-apiserver, controller-manager, scheduler,
// kubelet, kube-proxy, containerd + runc, all inside a network namespace),
// started for this suite and stopped after it; the last test proves that the
// host is left as it was. Or any cluster: CNI_NODE_TEST_KUBECONFIG and
// CNI_NODE_TEST_IMAGE (docs/development.md, "Testing on your own cluster").
//
// Everything goes through kubectl and the README's own commands (the last test
// checks that every command in the README's "Deploying on a cluster" section is
// one this suite ran); node-side checks go through a helper pod on the node.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { compareHostStates, readHostState, type HostState } from './support/host-state.js';
import { Kubectl, podReady, ranCommands, run, show, sleep, waitFor, type KubeEvent, type KubeList, type KubeObject, type Pod } from './support/kubectl.js';
import { diffSnapshots, NodeHelper, NodeWatcher, podOnNode, type Snapshot, type WatchRecord } from './support/node.js';
import {
  cleanupLocalCluster,
  clusterSuiteUnavailableReason,
  localImage,
  readSettings,
  ROOT,
  splitImage,
  startLocalCluster,
  stopLocalCluster,
  type LocalCluster,
} from './support/target.js';

const settings = readSettings();
const unavailable = clusterSuiteUnavailableReason(settings);
const SUITE_TIMEOUT_MS = 75 * 60_000;

const DS = 'multus-cni-node';
const DS_SELECTOR = 'app=multus-cni-node';
const SYSTEM = 'kube-system';
const BIN = '/opt/cni/bin';
const NETD = '/etc/cni/net.d';
const MULTUS_CONF = `${NETD}/05-multus.conf`;
const KUBECONFIG_OUT = `${NETD}/multus.d/multus.kubeconfig`;
const SA_USER = 'system:serviceaccount:kube-system:cni-node';
const NAD = 'macvlan-net1';
/** TEST-NET-1: documentation addresses, routed nowhere. */
const NET1_SUBNET = '192.0.2.';
const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
const STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status';
/** cni-node's own bookkeeping files in a node dir (its record, its lock). */
const BOOKKEEPING = /\/\.cni-node[-.]/;

/** Timings printed at the end (and as each test's diagnostics). */
const timings: Array<[string, string]> = [];
function timing(t: TestContext | undefined, what: string, value: string): void {
  timings.push([what, value]);
  t?.diagnostic(`${what}: ${value}`);
}
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

interface NetworkStatus {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
}

// Shared by the tests below, in order.
let hostBefore: HostState | undefined;
let local: LocalCluster | undefined;
let k: Kubectl;
let work: string;
let image: string;
let node: string;
let ns: string;
let helper: NodeHelper;
let nodeBefore: Snapshot;
let primaryText: string;
let primary: { name: string };
let installed = false;
let uninstalled = false;
const suiteLog = (s: string): void => console.log(s);

describe('cni-node on a real cluster, deployed from deploy/ as users deploy it', { skip: unavailable, timeout: SUITE_TIMEOUT_MS }, () => {
  before(async () => {
    const started = Date.now();
    if (settings.mode === 'local') {
      await cleanupLocalCluster((s) => suiteLog(`  ${s}`));
      hostBefore = readHostState();
      local = await startLocalCluster((s) => suiteLog(`  ${s}`));
      timing(undefined, 'cluster start (scripts/test-cluster.sh start)', secs(local.startMs));
    }
    const kubeconfig = local?.kubeconfig ?? (settings.kubeconfig as string);

    // The suite's copy of a user's checkout: deploy/ as shipped, edited only the
    // way the README tells users to (the overlay, the simple example's sed).
    work = mkdtempSync(path.join(os.tmpdir(), 'cni-node-cluster-'));
    cpSync(path.join(ROOT, 'deploy'), path.join(work, 'deploy'), { recursive: true });
    k = new Kubectl(settings.kubectl, kubeconfig, work);

    if (local !== undefined) {
      const img = await localImage(settings, (s) => suiteLog(`  ${s}`));
      image = img.ref;
      if (img.buildMs > 0) timing(undefined, 'image build (scripts/image-build.sh)', secs(img.buildMs));
      timing(undefined, 'image load into containerd', secs(img.loadMs));
    } else {
      image = settings.image as string;
      // Never deploy over somebody's installation.
      for (const [kind, name] of [
        ['daemonset', DS],
        ['daemonset', 'multus-cni-simple'],
        ['configmap', 'multus-cni'],
        ['configmap', 'multus-cni-simple'],
      ] as const) {
        const found = await k.getOrUndefined(['-n', SYSTEM, kind, name]);
        assert.equal(
          found,
          undefined,
          `${kind} ${SYSTEM}/${name} already exists in this cluster: the suite deploys deploy/ itself; remove that installation first (README, "Uninstalling for good")`,
        );
      }
    }

    node = settings.node ?? (await firstReadyNode());
    ns = `cni-node-e2e-${randomBytes(3).toString('hex')}`;
    await k.ok(['create', 'namespace', ns]);
    // Clusters that enforce Pod Security: the helper pod is privileged.
    await k.ok(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=privileged', '--overwrite']);
    helper = await NodeHelper.create(k, ns, node, settings.busyboxImage);
    nodeBefore = await helper.snapshot([BIN, NETD]);
    const primaryPath = `${NETD}/${settings.primaryConflist}`;
    assert.ok(
      nodeBefore.has(primaryPath),
      `the node ${node} has no ${primaryPath}; set CNI_NODE_TEST_PRIMARY_CONFLIST to its primary CNI's conflist (it has: ${[...nodeBefore.keys()].filter((p) => p.startsWith(NETD)).join(', ')})`,
    );
    primaryText = await helper.read(primaryPath);
    primary = JSON.parse(primaryText) as { name: string };
    suiteLog(`  cluster ready for the suite in ${secs(Date.now() - started)}: node ${node}, image ${image}, test namespace ${ns}`);
  });

  after(async () => {
    if (k === undefined) return;
    // On a cluster that is not ours, leave nothing behind even when a test failed half-way.
    if (settings.mode === 'byo' && installed && !uninstalled) {
      await k.run(['-n', SYSTEM, 'patch', 'configmap', 'multus-cni', '--type', 'merge', '-p', '{"data":{"plugins":"","configs":""}}']);
      await sleep(10_000);
      await k.run(['delete', '-f', 'deploy/multus-cni.yaml', '--ignore-not-found']);
      await k.run(['delete', 'clusterrolebindings', '-l', 'app.kubernetes.io/part-of=multus-cni,app.kubernetes.io/managed-by=cni-node']);
      await k.run(['delete', '-f', 'deploy/multus-cni-rbac.yaml', '--ignore-not-found']);
      await k.run(['delete', '-f', 'deploy/multus-cni-config.yaml', '--ignore-not-found']);
    }
    if (ns !== undefined) await k.run(['delete', 'namespace', ns, '--wait=false'], { timeoutMs: 60_000 });
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
    console.log(`\ncluster suite timings (${settings.mode === 'local' ? 'local single-node cluster' : `cluster of ${settings.kubeconfig}`}):`);
    for (const [what, value] of timings) console.log(`  ${what}: ${value}`);
  });

  test('Install: the DaemonSet becomes Ready and puts Multus, macvlan, 05-multus.conf and the kubeconfig on the node; the per-node ClusterRoleBinding exists', async (t) => {
    // The README's overlay: deploy/ as shipped, only the image changed.
    const overlay = readmeOverlay();
    const ref = splitImage(image);
    overlay.images = [{ name: 'cni-node', newName: ref.name, ...(ref.tag ? { newTag: ref.tag } : {}), ...(ref.digest ? { digest: ref.digest } : {}) }];
    if (settings.primaryConflist !== '10-calico.conflist') {
      // Another primary CNI: point the template at its file (README: "change the pointer").
      const cm = parseYaml(readFileSync(path.join(work, 'deploy', 'multus-cni-config.yaml'), 'utf8')) as { data: Record<string, string> };
      const template = (cm.data['05-multus.conf'] as string).replace('__10-calico.conflist__', `__${settings.primaryConflist}__`);
      writeFileSync(
        path.join(work, 'my-cni-node', 'primary.yaml'),
        stringifyYaml({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'multus-cni', namespace: SYSTEM }, data: { '05-multus.conf': template } }),
      );
      overlay.patchesStrategicMerge = ['primary.yaml'];
    }
    writeFileSync(path.join(work, 'my-cni-node', 'kustomization.yaml'), stringifyYaml(overlay));
    const rendered = await k.ok(['kustomize', 'my-cni-node']);
    assert.ok(
      rendered.includes(`image: ${image}`),
      `the overlay renders the image ${image}:\n${rendered
        .split('\n')
        .filter((l) => l.includes('image:'))
        .join('\n')}`,
    );
    assert.equal(rendered.split('\n').filter((l) => /^\s*image: /.test(l)).length, 1, 'one image reference, the DaemonSet container');

    const t0 = Date.now();
    await k.ok(['apply', '-k', 'my-cni-node']);
    installed = true;
    await k.ok(['-n', SYSTEM, 'rollout', 'status', `daemonset/${DS}`], { timeoutMs: 300_000 });
    const readyMs = Date.now() - t0;
    timing(t, 'DaemonSet Ready (kubectl apply -k → rollout status done)', secs(readyMs));

    const ds = await k.json<KubeObject & { status: Record<string, number> }>(['-n', SYSTEM, 'get', 'daemonset', DS]);
    assert.ok((ds.status['desiredNumberScheduled'] ?? 0) >= 1, 'the DaemonSet runs on at least one node');
    assert.equal(ds.status['numberReady'], ds.status['desiredNumberScheduled'], "every node's pod is Ready");
    const pod = await dsPod();
    assert.ok(podReady(pod), `pod ${pod.metadata.name} on ${node} is Ready`);
    assert.equal(pod.spec.containers[0]?.image, image);

    // The node's files.
    const snap = await helper.snapshot([BIN, NETD]);
    for (const plugin of ['multus', 'macvlan']) {
      const f = snap.get(`${BIN}/${plugin}`);
      assert.ok(f !== undefined, `${BIN}/${plugin} is on the node`);
      assert.equal(f.type, 'regular file');
      assert.equal(f.mode, '755', `${plugin} mode`);
    }
    const imageSums = await imagePluginSums(pod.metadata.name, ['multus', 'macvlan']);
    for (const plugin of ['multus', 'macvlan']) {
      assert.equal(
        snap.get(`${BIN}/${plugin}`)?.sha256,
        imageSums[plugin],
        `${BIN}/${plugin} on the node is the image's /opt/cni/bin/${plugin}, byte for byte`,
      );
    }

    const conf = JSON.parse(await helper.read(MULTUS_CONF)) as { type: string; kubeconfig: string; delegates: unknown[]; cniVersion: string };
    assert.equal(conf.type, 'multus');
    assert.equal(conf.kubeconfig, KUBECONFIG_OUT);
    assert.equal(conf.delegates.length, 1);
    assert.deepEqual(
      conf.delegates[0],
      JSON.parse(primaryText),
      `05-multus.conf's delegate is the node's ${settings.primaryConflist}, the pointer replaced by its content`,
    );
    assert.equal(snap.get(MULTUS_CONF)?.mode, '644');

    const kc = snap.get(KUBECONFIG_OUT);
    assert.ok(kc !== undefined && kc.type === 'regular file', `${KUBECONFIG_OUT} is on the node`);
    assert.equal(kc.mode, '600', 'the kubeconfig holds a token: mode 0600');
    const kubeconfig = await multusKubeconfig();
    const svc = await k.json<KubeObject & { spec: { clusterIP: string; ports: Array<{ port: number }> } }>(['-n', 'default', 'get', 'service', 'kubernetes']);
    assert.equal(
      kubeconfig.server,
      `https://${svc.spec.clusterIP}:${svc.spec.ports[0]?.port}`,
      'the API server at the kubernetes Service address, as the pod sees it',
    );
    const rootCa = await k.json<KubeObject & { data: Record<string, string> }>(['-n', SYSTEM, 'get', 'configmap', 'kube-root-ca.crt']);
    assert.equal(kubeconfig.ca.trim(), (rootCa.data['ca.crt'] ?? '').trim(), "the cluster's CA, embedded");
    const claims = jwtClaims(kubeconfig.token);
    assert.equal(claims['sub'], SA_USER, "the token is the cni-node service account's");
    assert.equal((claims['kubernetes.io'] as { pod?: unknown } | undefined)?.pod, undefined, 'requested by cni-node, not the pod-bound projected token');
    const lifetime = Number(claims['exp']) - Number(claims['iat']);
    assert.ok(lifetime >= 600 && lifetime <= 24 * 3600 + 60, `a token of limited life (${lifetime} s)`);
    assert.match(
      await k.ok(['-n', SYSTEM, 'logs', pod.metadata.name]),
      /kubeconfig for plugins at \S+ \(embed; a requested token, renewed before it expires\)/,
    );

    // Nothing else on the node changed; the primary config is untouched.
    const diff = diffSnapshots(nodeBefore, snap).filter((d) => !BOOKKEEPING.test(d));
    const expectedNew = [`${BIN}/macvlan`, `${BIN}/multus`, MULTUS_CONF, `${NETD}/multus.d`, KUBECONFIG_OUT].map((p) => `${p}: new`);
    assert.deepEqual(
      diff.map((d) => d.replace(/ \(.*\)$/, '')).sort(),
      expectedNew.sort(),
      `the install added exactly the plugins, the config and the kubeconfig, and changed nothing else:\n${diff.join('\n')}`,
    );
    t.diagnostic(`cni-node's bookkeeping on the node: ${[...snap.keys()].filter((p) => BOOKKEEPING.test(p)).join(', ') || 'none'}`);

    // The per-node ClusterRoleBinding, created by the pod on that node.
    const crb = await k.json<KubeObject & { roleRef: { name: string }; subjects: Array<{ kind: string; name: string; namespace: string }> }>([
      'get',
      'clusterrolebinding',
      `multus-cni-${node}`,
    ]);
    assert.equal(crb.roleRef.name, 'multus-cni');
    assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'cni-node', namespace: SYSTEM }]);
    assert.equal(crb.metadata.labels?.['app.kubernetes.io/managed-by'], 'cni-node');

    // What the README tells operators to look at.
    const logs = await k.ok(['-n', SYSTEM, 'logs', '-l', DS_SELECTOR, '--prefix', '--tail=20']);
    assert.match(logs, /plugin multus: installed/);
    assert.match(logs, /config 05-multus\.conf: installed/);
    const wide = await k.ok(['-n', SYSTEM, 'get', 'pods', '-l', DS_SELECTOR, '-o', 'wide']);
    assert.match(wide, new RegExp(`${pod.metadata.name}\\s+1/1\\s+Running`));
  });

  test('Multus works: a pod with a NetworkAttachmentDefinition gets eth0 from the primary and net1 from the attachment, with Multus authenticated by the kubeconfig cni-node wrote', async (t) => {
    assert.ok(installed, 'needs the install above');
    await createNad();
    const name = 'multi';
    const t0 = Date.now();
    await k.ok(['apply', '-f', '-'], { input: JSON.stringify(testPod(name)) });
    await k.ok(['-n', ns, 'wait', '--for=condition=Ready', `pod/${name}`, '--timeout=180s'], { timeoutMs: 200_000 });
    timing(t, 'pod with an extra network Ready', secs(Date.now() - t0));
    const pod = await k.json<Pod>(['-n', ns, 'get', 'pod', name]);
    const inside = await interfaces(name);
    assert.equal(inside.get('eth0')?.ip, pod.status.podIP, `eth0 inside the pod has the pod IP (${pod.status.podIP}) from the primary network`);
    const net1 = inside.get('net1');
    assert.ok(
      net1 !== undefined && net1.ip?.startsWith(NET1_SUBNET),
      `net1 inside the pod has an address of the attachment (${NET1_SUBNET}0/24): ${JSON.stringify([...inside])}`,
    );

    const status = networkStatus(pod);
    assert.equal(status.length, 2, `network-status lists two networks: ${JSON.stringify(status)}`);
    assert.equal(status[0]?.name, primary.name, "the first is the primary's network");
    assert.equal(status[0]?.interface, 'eth0');
    assert.equal(status[0]?.default, true);
    assert.deepEqual(status[0]?.ips, [pod.status.podIP]);
    assert.equal(status[1]?.name, `${ns}/${NAD}`);
    assert.equal(status[1]?.interface, 'net1');
    assert.deepEqual(status[1]?.ips, [net1.ip]);
    assert.equal(status[1]?.mac, net1.mac, 'the MAC Multus recorded is the one inside the pod');

    // Whose credentials Multus used: the kubeconfig's token is valid, and is the
    // cni-node service account's, bound to the DaemonSet pod on this node.
    const kubeconfig = await multusKubeconfig();
    const review = await tokenReview(kubeconfig.token);
    assert.equal(review.authenticated, true, 'the token in the kubeconfig cni-node wrote is valid');
    assert.equal(review.user?.username, SA_USER);
    // A token cni-node requested for its account, not the pod's own (bound to the pod, it would die with it).
    assert.equal(review.user?.extra?.['authentication.kubernetes.io/pod-name'], undefined, 'not bound to the pod');
    // And it is what Multus authenticates with: without the node's binding of
    // the multus-cni role (the README's per-node removal command), the API server
    // refuses Multus *as that account*, and the pod cannot start.
    const saved = await k.json<KubeObject>(['get', 'clusterrolebinding', `multus-cni-${node}`]);
    await k.ok(['delete', 'clusterrolebinding', `multus-cni-${node}`]);
    try {
      await k.ok(['apply', '-f', '-'], { input: JSON.stringify(testPod('multi-denied')) });
      const denied = await waitFor('Multus to be refused as the cni-node service account', 120_000, async () => {
        const events = await podEvents(ns, 'multi-denied');
        return events.find((e) => e.reason === 'FailedCreatePodSandBox' && (e.message ?? '').includes(SA_USER));
      });
      t.diagnostic(`without its binding, Multus is refused: ${(denied.message ?? '').slice(0, 300)}`);
    } finally {
      const restore = { ...saved, metadata: { name: saved.metadata.name, labels: saved.metadata.labels, annotations: saved.metadata.annotations } };
      await k.ok(['create', '-f', '-'], { input: JSON.stringify(restore) });
    }
    // With the binding back, the kubelet's next attempt succeeds.
    await k.ok(['-n', ns, 'wait', '--for=condition=Ready', 'pod/multi-denied', '--timeout=180s'], { timeoutMs: 200_000 });
    assert.equal(networkStatus(await k.json<Pod>(['-n', ns, 'get', 'pod', 'multi-denied'])).length, 2);
    await k.ok(['-n', ns, 'delete', 'pod', 'multi-denied', '--wait=false']);
  });

  test('Follows changes: a plugin added to the ConfigMap and an edited template reach the node without a pod restart', async (t) => {
    assert.ok(installed, 'needs the install above');
    const before = await dsPod();
    const follow = k.spawn(['-n', SYSTEM, 'logs', '-l', DS_SELECTOR, '--prefix', '-f', '--tail=20']);
    let followed = '';
    follow.stdout?.on('data', (d: Buffer) => (followed += d.toString()));
    try {
      // A list: read from the API (a watch), applied within about a second.
      let t0 = Date.now();
      await k.ok(['-n', SYSTEM, 'patch', 'configmap', 'multus-cni', '--type', 'merge', '-p', '{"data":{"plugins":"multus,macvlan,ipvlan"}}']);
      await waitFor('ipvlan on the node', 60_000, async () => ((await helper.exists(`${BIN}/ipvlan`)) ? true : undefined), 200);
      timing(t, 'ConfigMap change → node (plugins list: ipvlan added)', secs(Date.now() - t0));
      await waitFor('"plugin ipvlan: installed" in the followed logs', 30_000, async () => (/plugin ipvlan: installed/.test(followed) ? true : undefined));

      // A template: the kubelet updates the mounted ConfigMap, cni-node renders again.
      const editor = path.join(work, 'editor.sh');
      writeFileSync(editor, `#!/bin/sh\nsed -i 's/"logLevel": "error"/"logLevel": "panic"/' "$1"\n`);
      chmodSync(editor, 0o755);
      t0 = Date.now();
      await k.ok(['-n', SYSTEM, 'edit', 'configmap', 'multus-cni'], { env: { KUBE_EDITOR: editor, EDITOR: editor } });
      const cm = await k.json<KubeObject & { data: Record<string, string> }>(['-n', SYSTEM, 'get', 'configmap', 'multus-cni']);
      assert.match(cm.data['05-multus.conf'] ?? '', /"logLevel": "panic"/, 'kubectl edit changed the template');
      await waitFor(
        'the edited template rendered on the node',
        settings.configMapSyncTimeoutS * 1000,
        async () => ((JSON.parse(await helper.read(MULTUS_CONF)) as { logLevel?: string }).logLevel === 'panic' ? true : undefined),
        1000,
      );
      timing(t, "ConfigMap change → node (template edited; through the kubelet's ConfigMap volume)", secs(Date.now() - t0));
      const conf = JSON.parse(await helper.read(MULTUS_CONF)) as { delegates: unknown[] };
      assert.deepEqual(conf.delegates[0], JSON.parse(primaryText), 'still delegating to the primary');
    } finally {
      follow.kill();
    }
    const afterPod = await dsPod();
    assert.equal(afterPod.metadata.uid, before.metadata.uid, 'the same pod');
    assert.equal(afterPod.status.containerStatuses?.[0]?.restartCount, before.status.containerStatuses?.[0]?.restartCount, 'no container restart');
    assert.match(await k.ok(['-n', SYSTEM, 'get', 'pods', '-l', DS_SELECTOR, '-o', 'wide']), /1\/1\s+Running/);
  });

  test('Readiness: without the primary conflist the pod turns NotReady with the reason in its Events, and Ready again when it is back', async (t) => {
    assert.ok(installed, 'needs the install above');
    const pod = await dsPod();
    const podName = pod.metadata.name;
    const primaryPath = `${NETD}/${settings.primaryConflist}`;
    const aside = `${primaryPath}.cni-node-e2e-aside`;
    const confBefore = (await helper.snapshot([NETD])).get(MULTUS_CONF);
    // The README's way to look at /readyz and /metrics.
    const pf = await portForward(podName);
    try {
      // A rename in the same directory: the file keeps its inode and mtime, and
      // no runtime loads a name without a .conf/.conflist/.json ending.
      await helper.sh('mv "/host$1" "/host$2"', [primaryPath, aside]);
      const t0 = Date.now();
      await waitFor(
        'the cni-node pod to turn NotReady',
        120_000,
        async () => (podReady(await k.json<Pod>(['-n', SYSTEM, 'get', 'pod', podName])) ? undefined : true),
        500,
      );
      timing(t, 'primary conflist removed → pod NotReady', secs(Date.now() - t0));
      const event = await waitFor('an Event on the pod naming the missing file', 60_000, async () =>
        (await podEvents(SYSTEM, podName)).find(
          (e) =>
            (e.message ?? '').includes(settings.primaryConflist) &&
            e.metadata.creationTimestamp !== undefined &&
            Date.parse(e.metadata.creationTimestamp) >= t0 - 1000,
        ),
      );
      t.diagnostic(`Event (${event.type}) ${event.reason}: ${event.message}`);
      const described = await k.ok(['-n', SYSTEM, 'describe', 'pod', podName]);
      assert.ok(described.includes(settings.primaryConflist), `kubectl describe pod shows the reason in its Events:\n${described.slice(-1500)}`);
      const readyz = await run(['curl', '-s', `localhost:${pf.port}/readyz`]);
      assert.ok(readyz.stdout.includes(settings.primaryConflist), `/readyz names the missing file: ${readyz.stdout}`);
      const scraped = await run(['curl', '-s', `localhost:${pf.port}/metrics`]);
      const metrics = await run(['grep', '^cni_node'], { input: scraped.stdout });
      assert.match(metrics.stdout, /^cni_node_/m, 'the metrics are served');
      // Meanwhile the node keeps its last good config: nothing half-rendered.
      assert.deepEqual((await helper.snapshot([NETD])).get(MULTUS_CONF), confBefore, '05-multus.conf is left exactly as it was');
    } finally {
      await helper.sh('if [ -e "/host$2" ]; then mv "/host$2" "/host$1"; fi', [primaryPath, aside]);
      pf.stop();
    }
    const t1 = Date.now();
    await k.ok(['-n', SYSTEM, 'wait', '--for=condition=Ready', `pod/${podName}`, '--timeout=120s'], { timeoutMs: 150_000 });
    timing(t, 'primary conflist back → pod Ready', secs(Date.now() - t1));
    assert.deepEqual((await helper.snapshot([NETD])).get(MULTUS_CONF), confBefore, '05-multus.conf was not rewritten (same content)');
  });

  test('Crash: kill -9 of the cni-node process restarts the container with nothing lost or rewritten on the node', async (t) => {
    assert.ok(installed, 'needs the install above');
    const pod = await dsPod();
    const cs = pod.status.containerStatuses?.[0];
    assert.ok(cs?.containerID, 'the container has an ID');
    const containerId = cs.containerID.replace(/^[a-z]+:\/\//, '');
    const snap = await helper.snapshot([BIN, NETD]);
    const pids = await helper.pidsOf(containerId, 'cni-node.mjs');
    assert.equal(pids.length, 1, `one cni-node process in container ${containerId}: ${pids.join(', ')}`);
    // The daemon's memory as a node pays for it, in its container (a reading for
    // BENCHMARKS.md; the idle goal itself is measured by bench/footprint.ts).
    const status = await helper.sh('grep -E "^(VmRSS|RssAnon|RssFile):" "/proc/$1/status"', [String(pids[0])]);
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    const mib = (field: string): string => (kib(field) / 1024).toFixed(1);
    const up = cs.state?.running?.startedAt ? ((Date.now() - Date.parse(cs.state.running.startedAt)) / 1000).toFixed(0) : '?';
    timing(t, 'daemon RSS in its container (anon / file)', `${mib('VmRSS')} MiB (${mib('RssAnon')} / ${mib('RssFile')}), ${up} s after its start`);
    const t0 = Date.now();
    await helper.sh('kill -9 "$1"', [String(pids[0])]);
    const restarted = await waitFor('the container to restart and turn Ready', 180_000, async () => {
      const p = await k.json<Pod>(['-n', SYSTEM, 'get', 'pod', pod.metadata.name]);
      const s = p.status.containerStatuses?.[0];
      return s !== undefined && s.restartCount === cs.restartCount + 1 && podReady(p) ? p : undefined;
    });
    timing(t, 'kill -9 → container restarted and Ready', secs(Date.now() - t0));
    const last = restarted.status.containerStatuses?.[0]?.lastState?.terminated;
    assert.equal(last?.exitCode, 137, `the previous container was killed by SIGKILL: ${JSON.stringify(last)}`);
    const diff = diffSnapshots(snap, await helper.snapshot([BIN, NETD]));
    assert.deepEqual(
      diff.filter((d) => !d.includes('/.cni-node.lock')),
      [],
      `every file on the node is as it was (same inode, mtime, content):\n${diff.join('\n')}`,
    );
    const logs = await k.ok(['-n', SYSTEM, 'logs', pod.metadata.name]);
    assert.doesNotMatch(logs, /: (installed|updated|removed)$/m, `the restarted daemon changed nothing:\n${logs}`);
  });

  test('Upgrade-safe: during a rolling update every pod created every 0.5 s gets its networks and the node files are never absent', async (t) => {
    assert.ok(installed, 'needs the install above');
    const old = await dsPod();
    const oldToken = (await multusKubeconfig()).token;
    const watched = [MULTUS_CONF, `${NETD}/${settings.primaryConflist}`, KUBECONFIG_OUT, `${BIN}/multus`, `${BIN}/macvlan`];
    const watcher = await NodeWatcher.start(k, ns, node, image, watched);
    // Pods are created every 0.5 s from before the rollout until after it; each is
    // checked as soon as it is Ready (both networks in its network-status) and then
    // deleted, so that a slow rollout on a busy machine never fills the node.
    const created: string[] = [];
    const creating: Array<Promise<{ name: string; code: number | null; stderr: string }>> = [];
    const verified = new Map<string, NetworkStatus[]>();
    const MAX_PODS = 400;
    let stop = false;
    const creator = (async () => {
      for (let i = 0; !stop && i < MAX_PODS; i++) {
        const name = `rollout-${i}`;
        created.push(name);
        creating.push(
          k
            .run(['create', '-f', '-'], { input: JSON.stringify(testPod(name, { 'cni-node-e2e': 'rollout' })), timeoutMs: 120_000 })
            .then((r) => ({ name, code: r.code, stderr: r.stderr })),
        );
        await sleep(500);
      }
    })();
    let verifying = true;
    const verifier = (async () => {
      while (verifying) {
        const pods = (await k.json<KubeList<Pod>>(['-n', ns, 'get', 'pods', '-l', 'cni-node-e2e=rollout'], { timeoutMs: 60_000 })).items;
        const ready = pods.filter((p) => podReady(p) && p.metadata.deletionTimestamp === undefined && !verified.has(p.metadata.name));
        for (const p of ready) verified.set(p.metadata.name, networkStatus(p));
        if (ready.length > 0) await k.run(['-n', ns, 'delete', 'pods', '--wait=false', ...ready.map((p) => p.metadata.name)], { timeoutMs: 60_000 });
        await sleep(1_000);
      }
    })();
    let rolloutMs = 0;
    let windowStart = 0;
    let windowEnd = 0;
    try {
      await sleep(2_000);
      windowStart = Date.now();
      // "Change an env value": a new pod template, so the DaemonSet rolls.
      await k.ok(['-n', SYSTEM, 'set', 'env', `daemonset/${DS}`, `CNI_NODE_E2E_ROLLOUT=${Date.now()}`]);
      await k.ok(['-n', SYSTEM, 'rollout', 'status', `daemonset/${DS}`], { timeoutMs: 300_000 });
      rolloutMs = Date.now() - windowStart;
      await sleep(3_000);
      windowEnd = Date.now();
    } finally {
      stop = true;
      await creator;
      const failedCreates = (await Promise.all(creating)).filter((c) => c.code !== 0);
      // Then until every pod is checked (or it is clear some never will be).
      await waitFor(
        'every pod created during the rollout to be Ready',
        240_000,
        async () => (created.every((n) => verified.has(n)) ? true : undefined),
        1_000,
      ).catch(() => undefined);
      verifying = false;
      await verifier;
      assert.deepEqual(failedCreates, [], 'every kubectl create succeeded');
    }
    timing(t, 'rolling update (set env → rollout status done)', secs(rolloutMs));
    const now = await dsPod();
    assert.notEqual(now.metadata.uid, old.metadata.uid, 'the pod was replaced');
    assert.ok(
      now.spec.containers[0]?.env?.some((e) => e.name === 'CNI_NODE_E2E_ROLLOUT'),
      'by one with the new env value',
    );

    // Every pod got both networks, and no sandbox ever failed.
    const ok = created.filter(
      (n) =>
        (verified.get(n) ?? []).some((s) => s.interface === 'net1' && (s.ips?.[0] ?? '').startsWith(NET1_SUBNET)) &&
        (verified.get(n) ?? []).some((s) => s.interface === 'eth0'),
    );
    const events = (await k.json<KubeList<KubeEvent>>(['-n', ns, 'get', 'events'])).items.filter(
      (e) => e.reason === 'FailedCreatePodSandBox' && (e.involvedObject.name ?? '').startsWith('rollout-'),
    );
    timing(
      t,
      'pods created every 0.5 s during the rollout that got both networks',
      `${ok.length}/${created.length} (${((100 * ok.length) / Math.max(1, created.length)).toFixed(0)}%), ${events.length} sandbox failures`,
    );
    assert.deepEqual(
      events.map((e) => `${e.involvedObject.name}: ${e.message}`),
      [],
      'no pod sandbox failed (a missing or broken CNI config, or Multus without credentials, would fail it)',
    );
    assert.deepEqual(
      created.filter((n) => !ok.includes(n)),
      [],
      'every pod got eth0 and net1',
    );
    // Why none failed, without depending on timing: the token the old pod wrote is
    // still accepted now that the old pod is long gone (a pod's own projected token
    // is rejected once its pod is deleted; the API server's 10 s cache is past).
    const review = await tokenReview(oldToken);
    assert.equal(review.authenticated, true, `the kubeconfig the old pod wrote still works after it is gone: ${review.error ?? ''}`);

    // The watcher: no watched file was ever absent during the rollout.
    const records = await watcher.records();
    await watcher.stop();
    const during = records.filter((r) => r.t >= windowStart && r.t <= windowEnd && r.f !== undefined);
    const absent = during.filter((r) => r.id === null);
    assert.deepEqual(absent.map(describeRecord), [], 'no node file was absent at any moment of the rollout');
    const changed = [...new Set(during.map((r) => r.f?.replace(/^\/host/, '')))];
    t.diagnostic(`files replaced during the rollout: ${changed.join(', ') || 'none'} (${during.length} changes seen)`);
    for (const f of [MULTUS_CONF, `${NETD}/${settings.primaryConflist}`, `${BIN}/multus`, `${BIN}/macvlan`]) {
      assert.ok(!changed.includes(f), `${f} was not rewritten by the new pod (unchanged content is never rewritten)`);
    }
    assert.ok(
      records.some((r) => r.f === `/host${KUBECONFIG_OUT}` && r.id !== null),
      'the watcher saw the kubeconfig',
    );
    await k.ok(['-n', ns, 'delete', 'pods', '-l', 'cni-node-e2e=rollout', '--wait=false']);
  });

  test("Uninstall for good: the README's removal leaves the node with exactly the files it had before the install", async (t) => {
    assert.ok(installed, 'needs the install above');
    // 1. Pods with extra networks first, with the README's commands, while Multus is
    // on the node: their CNI DEL goes through Multus and releases the attachment's address.
    assert.notEqual(await attachmentReservations(), '', "before: the attachment's host-local reservations are on the node");
    const attached = (await attachedPods()).filter(([podNs]) => podNs === ns); // on a cluster of your own, only the suite's pods
    assert.ok(
      attached.some(([, pod]) => pod === 'multi'),
      `the README's listing finds the pods with extra networks: ${JSON.stringify(attached)}`,
    );
    for (const [podNs, pod] of attached) {
      const r = await k.run(['-n', podNs, 'delete', 'pod', pod], { timeoutMs: 200_000 });
      assert.ok(r.code === 0 || /NotFound|not found/.test(r.stderr), show(['kubectl', '-n', podNs, 'delete', 'pod', pod], r));
    }
    assert.deepEqual(
      (await attachedPods()).filter(([podNs]) => podNs === ns),
      [],
      'the listing is empty once they are deleted',
    );
    // A reservation DEL did not release would stay for ever; the sandboxes' teardown may lag the API by a moment.
    await waitFor("no host-local reservation of the attachment left on the node (Multus ran each pod's DEL)", 60_000, async () =>
      (await attachmentReservations()) === '' ? true : undefined,
    );
    const t0 = Date.now();
    // 2. Empty the lists.
    await k.ok(['-n', SYSTEM, 'patch', 'configmap', 'multus-cni', '--type', 'merge', '-p', '{"data":{"plugins":"","configs":""}}']);
    // 3. Until every node has converged.
    await waitFor(
      'every node to log the removals and be READY',
      120_000,
      async () => {
        const logs = await k.ok(['-n', SYSTEM, 'logs', '-l', DS_SELECTOR, '--prefix', '--tail=20']);
        const pods = await k.ok(['-n', SYSTEM, 'get', 'pods', '-l', DS_SELECTOR]);
        const done =
          /config 05-multus\.conf: removed/.test(logs) &&
          /plugin multus: removed/.test(logs) &&
          /plugin macvlan: removed/.test(logs) &&
          /plugin ipvlan: removed/.test(logs);
        return done && !/0\/1/.test(pods) ? true : undefined;
      },
      1_000,
    );
    timing(t, 'uninstall: lists emptied → node converged', secs(Date.now() - t0));
    // 4. The DaemonSet, then the per-node bindings.
    await k.ok(['delete', '-f', 'deploy/multus-cni.yaml']);
    await k.ok(['delete', 'clusterrolebindings', '-l', 'app.kubernetes.io/part-of=multus-cni,app.kubernetes.io/managed-by=cni-node']);
    await waitFor('the DaemonSet pods to be gone', 120_000, async () =>
      (await podOnNode(k, SYSTEM, DS_SELECTOR, node, { terminating: true })) === undefined ? true : undefined,
    );
    // 5. The README's variant that keeps the CRD (and with it the attachments)…
    await k.ok(['-n', SYSTEM, 'delete', 'serviceaccount/cni-node', 'role/cni-node', 'rolebinding/cni-node']);
    await k.ok(['delete', 'clusterrolebinding/cni-node', 'clusterrole/cni-node', 'clusterrole/multus-cni']);
    assert.ok((await k.getOrUndefined(['-n', ns, 'network-attachment-definitions', NAD])) !== undefined, 'that variant keeps the NetworkAttachmentDefinitions');
    // …then the whole file, which deletes the CRD; the objects above are gone already.
    const rbac = await k.run(['delete', '-f', 'deploy/multus-cni-rbac.yaml'], { timeoutMs: 120_000 });
    const unexpected = rbac.stderr.split('\n').filter((l) => l.trim() !== '' && !/NotFound|not found/.test(l));
    assert.deepEqual(
      unexpected,
      [],
      `deleting deploy/multus-cni-rbac.yaml: only "not found" for what was deleted already:\n${show(['kubectl', 'delete', '-f', 'deploy/multus-cni-rbac.yaml'], rbac)}`,
    );
    await k.ok(['delete', '-f', 'deploy/multus-cni-config.yaml']);
    // What stays on the node (the kubeconfig, cni-node's record), with the README's command.
    const debug = await k.ok([
      'debug',
      `node/${node}`,
      `--image=${settings.busyboxImage}`,
      '--',
      'rm',
      '-r',
      '/host/etc/cni/net.d/multus.d',
      '/host/etc/cni/net.d/.cni-node-state',
    ]);
    const debugPod = /pod (node-debugger-[a-z0-9.-]+)/.exec(debug)?.[1];
    assert.ok(debugPod, `kubectl debug names its pod: ${debug}`);
    await waitFor(`${debugPod} to finish`, 120_000, async () => {
      const p = await k.json<Pod>(['get', 'pod', debugPod]);
      return p.status.phase === 'Succeeded' ? true : p.status.phase === 'Failed' ? Promise.reject(new Error(`${debugPod} failed`)) : undefined;
    });
    await k.ok(['delete', 'pod', debugPod]);
    uninstalled = true;
    timing(t, 'uninstall: all README steps', secs(Date.now() - t0));

    for (const args of [
      ['-n', SYSTEM, 'daemonset', DS],
      ['-n', SYSTEM, 'configmap', 'multus-cni'],
      ['-n', SYSTEM, 'serviceaccount', 'cni-node'],
      ['crd', 'network-attachment-definitions.k8s.cni.cncf.io'],
      ['clusterrole', 'multus-cni'],
      ['clusterrolebinding', `multus-cni-${node}`],
    ]) {
      assert.equal(await k.getOrUndefined(args), undefined, `${args.join(' ')} is gone`);
    }
    const snap = await helper.snapshot([BIN, NETD]);
    const diff = diffSnapshots(nodeBefore, snap, ['type', 'mode', 'size', 'sha256']);
    assert.deepEqual(diff, [], `the node has exactly the files it had before the install:\n${diff.join('\n')}`);
    const primaryPath = `${NETD}/${settings.primaryConflist}`;
    assert.deepEqual(snap.get(primaryPath), nodeBefore.get(primaryPath), 'the primary config is untouched (same inode, mtime, content)');
  });

  test('The simple example: installed at pod start, re-rendered on rollout restart, removed by its preStop hook', async (t) => {
    assert.ok(uninstalled, 'runs after the watch-based example is removed (the README: never both at once)');
    const ref = image;
    // The README's way for this single file: point it at the image.
    const sed = await run(['sed', '-i', `s|image: cni-node:0.1.0|image: ${ref}|`, 'deploy/multus-cni-simple.yaml'], { cwd: work });
    assert.equal(sed.code, 0, show(['sed'], sed));
    if (settings.primaryConflist !== '10-calico.conflist') {
      await run(['sed', '-i', `s|__10-calico.conflist__|__${settings.primaryConflist}__|`, 'deploy/multus-cni-simple.yaml'], { cwd: work }, false);
    }
    const t0 = Date.now();
    await k.ok(['apply', '-f', 'deploy/multus-cni-simple.yaml']);
    await k.ok(['-n', SYSTEM, 'rollout', 'status', 'daemonset/multus-cni-simple'], { timeoutMs: 300_000 });
    timing(t, 'simple example: DaemonSet Ready', secs(Date.now() - t0));
    const logs = await k.ok(['-n', SYSTEM, 'logs', '-l', 'app=multus-cni-simple', '--prefix']);
    assert.match(logs, /plugin multus: installed/);
    assert.match(logs, /config 05-multus\.conf: installed/);
    let conf = JSON.parse(await helper.read(MULTUS_CONF)) as { delegates: unknown[]; logLevel?: string; kubeconfig?: string };
    assert.deepEqual(conf.delegates[0], JSON.parse(primaryText));
    assert.equal(conf.kubeconfig, undefined, 'the simple example gives Multus no kubeconfig');
    assert.ok(await helper.exists(`${BIN}/multus`));

    const editor = path.join(work, 'editor.sh');
    await k.ok(['-n', SYSTEM, 'edit', 'configmap', 'multus-cni-simple'], { env: { KUBE_EDITOR: editor, EDITOR: editor } });
    await k.ok(['-n', SYSTEM, 'rollout', 'restart', 'daemonset/multus-cni-simple']);
    await k.ok(['-n', SYSTEM, 'rollout', 'status', 'daemonset/multus-cni-simple'], { timeoutMs: 300_000 });
    conf = JSON.parse(await helper.read(MULTUS_CONF)) as typeof conf;
    assert.equal(conf.logLevel, 'panic', 'the restarted pods rendered the edited template');

    const t1 = Date.now();
    await k.ok(['delete', '-f', 'deploy/multus-cni-simple.yaml'], { timeoutMs: 180_000 });
    await waitFor("the simple example's pods to be gone", 120_000, async () =>
      (await podOnNode(k, SYSTEM, 'app=multus-cni-simple', node, { terminating: true })) === undefined ? true : undefined,
    );
    timing(t, 'simple example: kubectl delete → node clean', secs(Date.now() - t1));
    const diff = diffSnapshots(nodeBefore, await helper.snapshot([BIN, NETD]), ['type', 'mode', 'size', 'sha256']);
    assert.deepEqual(diff, [], `the preStop hook removed what the pod installed:\n${diff.join('\n')}`);
  });

  test('README: every command in "Deploying on a cluster" is one this suite ran', () => {
    const commands = readmeCommands();
    assert.ok(commands.length >= 15, `found the README's commands (${commands.length})`);
    const missing = commands.filter((c) => !ranCommands.some((r) => matches(c, r)));
    assert.deepEqual(
      missing.map((c) => c.join(' ')),
      [],
      'README commands the suite never ran',
    );
  });
});

test(
  'Teardown: stopping the local cluster leaves the host as it was (sysctls, mounts, namespaces, processes, cgroups, interfaces, iptables)',
  { skip: unavailable ?? (settings.mode === 'byo' ? 'a cluster of your own: nothing on this machine to give back' : undefined), timeout: 300_000 },
  async (t) => {
    assert.ok(hostBefore !== undefined && local !== undefined, 'the cluster was started by the suite above');
    const stopMs = await stopLocalCluster((s) => t.diagnostic(s));
    timing(t, 'cluster stop (scripts/test-cluster.sh stop)', secs(stopMs));
    const problems = compareHostStates(hostBefore, readHostState(), local);
    assert.deepEqual(problems, [], 'the host is as it was before the cluster started');
    t.diagnostic(
      `compared ${Object.keys(hostBefore.sysctls).length} sysctls, ${hostBefore.mounts.length} mounts, ${hostBefore.links.length} interfaces, ${hostBefore.iptables.length} iptables lines`,
    );
  },
);

// ---------------------------------------------------------------------------

async function firstReadyNode(): Promise<string> {
  return waitFor(
    'a Ready, schedulable Linux node',
    120_000,
    async () => {
      const nodes = await k.json<
        KubeList<KubeObject & { spec?: { unschedulable?: boolean }; status: { conditions: Array<{ type: string; status: string }> } }>
      >(['get', 'nodes']);
      const ready = nodes.items.filter(
        (n) =>
          !n.spec?.unschedulable &&
          n.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True') &&
          n.metadata.labels?.['kubernetes.io/os'] === 'linux',
      );
      return ready[0]?.metadata.name;
    },
    2_000,
  );
}

async function dsPod(): Promise<Pod> {
  return waitFor(`the ${DS} pod on ${node}`, 120_000, () => podOnNode(k, SYSTEM, DS_SELECTOR, node));
}

/** sha256 of plugins in the image, computed inside the cni-node container by its own Node.js. */
async function imagePluginSums(pod: string, plugins: string[]): Promise<Record<string, string>> {
  const code =
    "const c=require('crypto'),f=require('fs');for(const n of process.argv.slice(1))console.log(n+' '+c.createHash('sha256').update(f.readFileSync('/opt/cni/bin/'+n)).digest('hex'))";
  const out = await k.ok(['-n', SYSTEM, 'exec', pod, '-c', 'cni-node', '--', '/nodejs/bin/node', '-e', code, ...plugins]);
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  );
}

async function multusKubeconfig(): Promise<{ server: string; ca: string; token: string }> {
  const doc = parseYaml(await helper.read(KUBECONFIG_OUT)) as {
    clusters: Array<{ cluster: { server: string; 'certificate-authority-data'?: string } }>;
    users: Array<{ user: { token?: string } }>;
  };
  const cluster = doc.clusters[0]?.cluster;
  const token = doc.users[0]?.user.token;
  assert.ok(cluster?.['certificate-authority-data'] && token, 'the kubeconfig embeds the CA and the token');
  return { server: cluster.server, ca: Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8'), token };
}

async function tokenReview(
  token: string,
): Promise<{ authenticated?: boolean; error?: string; user?: { username?: string; extra?: Record<string, string[]> } }> {
  const review = await k.json<{ status: { authenticated?: boolean; error?: string; user?: { username?: string; extra?: Record<string, string[]> } } }>(
    ['create', '-f', '-'],
    {
      input: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }),
    },
  );
  return review.status;
}

function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  assert.ok(part, 'the token is a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function createNad(): Promise<void> {
  // macvlan without "master": the interface of the node's default route, whatever its name.
  const config = {
    cniVersion: '0.3.1',
    name: NAD,
    type: 'macvlan',
    mode: 'bridge',
    ipam: { type: 'host-local', ranges: [[{ subnet: `${NET1_SUBNET}0/24` }]] },
  };
  await k.ok(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: NAD, namespace: ns },
      spec: { config: JSON.stringify(config) },
    }),
  });
}

function testPod(name: string, labels: Record<string, string> = { 'cni-node-e2e': 'multus' }): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels, annotations: { [NETWORKS_ANNOTATION]: NAD } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [{ name: 'main', image: settings.busyboxImage, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'] }],
    },
  };
}

/** The README's listing of the pods with extra networks ("Uninstalling for good"): every pod with the networks annotation. */
const ATTACHED_PODS_JSONPATH = `{range .items[?(@.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/networks)]}{.metadata.namespace}{" "}{.metadata.name}{"\\n"}{end}`;

/** [namespace, name] of each pod the README's listing prints. */
async function attachedPods(): Promise<Array<[string, string]>> {
  const out = await k.ok(['get', 'pods', '-A', '-o', `jsonpath=${ATTACHED_PODS_JSONPATH}`]);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(' ') as [string, string]);
}

/** The addresses host-local holds for the attachment on the node (one file per address), one per line. */
async function attachmentReservations(): Promise<string> {
  const out = await helper.sh('ls "/host/var/lib/cni/networks/$1" 2>/dev/null || true', [NAD]);
  return out
    .split('\n')
    .filter((f) => f.startsWith(NET1_SUBNET))
    .join('\n');
}

function networkStatus(pod: Pod): NetworkStatus[] {
  const text = pod.metadata.annotations?.[STATUS_ANNOTATION];
  if (text === undefined) return [];
  return JSON.parse(text) as NetworkStatus[];
}

/** Interfaces inside a pod, read there with busybox `ip`. */
async function interfaces(pod: string): Promise<Map<string, { ip?: string; mac?: string }>> {
  const addrs = await k.ok(['-n', ns, 'exec', pod, '--', 'ip', '-o', '-4', 'addr', 'show']);
  const links = await k.ok(['-n', ns, 'exec', pod, '--', 'ip', '-o', 'link', 'show']);
  const out = new Map<string, { ip?: string; mac?: string }>();
  for (const l of addrs.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(l);
    if (m) out.set(m[1] as string, { ip: m[2] as string });
  }
  for (const l of links.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)[@:].*link\/ether\s+([0-9a-f:]+)/.exec(l);
    if (m) out.set(m[1] as string, { ...out.get(m[1] as string), mac: m[2] as string });
  }
  return out;
}

async function podEvents(namespace: string, pod: string): Promise<KubeEvent[]> {
  return (await k.json<KubeList<KubeEvent>>(['-n', namespace, 'get', 'events', '--field-selector', `involvedObject.name=${pod}`])).items;
}

/** `kubectl port-forward pod/… 9740:9740 &` (another local port if 9740 is taken on this machine). */
async function portForward(pod: string): Promise<{ port: number; stop: () => void }> {
  for (const port of [9740, 19740 + Math.floor(Math.random() * 1000)]) {
    const child = k.spawn(['-n', SYSTEM, 'port-forward', `pod/${pod}`, `${port}:9740`]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const ok = await waitFor(
      'kubectl port-forward',
      30_000,
      async () => (/Forwarding from/.test(out) ? true : child.exitCode !== null ? false : undefined),
      200,
    ).catch(() => false);
    if (ok) return { port, stop: () => child.kill() };
    child.kill();
    suiteLog(`  port-forward on ${port} failed: ${out.trim()}`);
  }
  throw new Error('kubectl port-forward failed');
}

function describeRecord(r: WatchRecord): string {
  return `${new Date(r.t).toISOString()} ${r.f} ${r.id === null ? 'ABSENT' : r.id} (${r.why})`;
}

// ---------------------------------------------------------------------------
// The README

function readmeSection(): string {
  const text = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = text.indexOf('\n## Deploying on a cluster');
  assert.ok(start >= 0, 'README has "## Deploying on a cluster"');
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The overlay the README shows (the ```yaml block that starts with `# my-cni-node/kustomization.yaml`). */
function readmeOverlay(): Record<string, unknown> {
  const m = /```yaml\n(# my-cni-node\/kustomization\.yaml\n[\s\S]*?)```/.exec(readmeSection());
  assert.ok(m, 'the README shows the overlay my-cni-node/kustomization.yaml');
  mkdirSync(path.join(work, 'my-cni-node'), { recursive: true });
  return parseYaml(m[1] as string) as Record<string, unknown>;
}

/** Every simple command in the section's ```sh blocks, split into words as a shell would. */
function readmeCommands(): string[][] {
  const out: string[][] = [];
  for (const block of readmeSection().matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of (block[1] as string).split('\n')) {
      const l = line.replace(/(^|\s)#.*$/, '').trim();
      if (l === '') continue;
      out.push(...splitShell(l));
    }
  }
  return out;
}

/** A small shell-words splitter: quotes, and `;`, `|`, `&&`, `&` between commands. */
function splitShell(line: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const j = line.indexOf("'", i + 1);
      word += line.slice(i + 1, j);
      inWord = true;
      i = j;
    } else if (c === '"') {
      const j = line.indexOf('"', i + 1);
      word += line.slice(i + 1, j);
      inWord = true;
      i = j;
    } else if (c === ' ' || c === ';' || c === '|' || c === '&') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      if (c !== ' ') {
        if (words.length > 0) commands.push(words);
        words = [];
      }
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  if (words.length > 0) commands.push(words);
  return commands;
}

/** Does a README command match one the suite ran? The README's placeholders stand for this run's names. */
function matches(readme: string[], ran: readonly string[]): boolean {
  if (readme.length !== ran.length) return false;
  return readme.every((w, i) => {
    const r = ran[i] as string;
    if (w === r) return true;
    const pattern = w
      .replace(/[.*+?^${}()[\]\\]/g, '\\$&')
      .replace(/multus-cni-node-xxxxx/g, 'multus-cni-node-[a-z0-9]+')
      .replace(/node-debugger-<node>-xxxxx/g, 'node-debugger-[a-z0-9.-]+')
      .replace(/<node>/g, escapeRe(node))
      .replace(/<namespace>/g, escapeRe(ns))
      .replace(/<pod>/g, '[a-z0-9.-]+')
      .replace(/registry\\\.example\\\.com\/cni-node:0\\\.1\\\.0/g, escapeRe(image))
      .replace(/busybox:1\\\.35/g, escapeRe(settings.busyboxImage))
      .replace(/^9740:9740$/, '\\d+:9740')
      .replace(/localhost:9740/g, 'localhost:\\d+');
    return new RegExp(`^${pattern}$`).test(r);
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()[\]\\]/g, '\\$&');
}
