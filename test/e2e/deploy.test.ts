// The deployment manifests in deploy/, checked for real:
//  - their shape (the properties the README, "Deploying on a cluster" promises), without a cluster;
//  - the example Multus templates rendered by the real CLI against a sample Calico
//    conflist, and the simple example's install/preStop commands run as written;
//  - every document accepted by a real kube-apiserver (server-side dry-run), and
//    the pods the DaemonSets would create accepted too;
//  - the RBAC least-privilege for real: requests made with the token of the
//    DaemonSet's service account (system:serviceaccount:kube-system:cni-node),
//    including the real CLI creating the per-node ClusterRoleBinding with it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { substituteEnv } from '../../src/core/envsubst.js';
import { cleanEnv, runCli as runCliProcess, show, type CliResult } from '../support/cli.js';
import { REPO_ROOT } from '../support/repo.js';
import { clusterUnavailableReason, SERVICE_ACCOUNT_USER, startTestCluster, type ClusterResponse, type TestCluster } from './support/cluster.js';

// ---------------------------------------------------------------------------
// The repository and its manifests

const ROOT = REPO_ROOT;
const DEPLOY = path.join(ROOT, 'deploy');
const CLI = path.join(ROOT, 'bin', 'cni-node');
const CALICO = path.join(ROOT, 'test', 'fixtures', 'calico', '10-calico.conflist');
const FIELD_MANAGER = 'cni-node-deploy-test';
const SA_NAMESPACE = 'kube-system';
const SA_NAME = 'cni-node';
const NODE = 'node-1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
}

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  [key: string]: unknown;
}

interface Doc {
  file: string;
  /** 1-based, counting non-empty documents. */
  index: number;
  object: KubeObject;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath?: string } };
}

interface Probe {
  httpGet?: { host?: string; path?: string; port?: number | string };
}

interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsUser?: number;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] } } };
  volumeMounts?: VolumeMount[];
}

interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string; items?: unknown[] };
  emptyDir?: Record<string, unknown>;
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  priorityClassName?: string;
  tolerations?: Array<{ key?: string; operator?: string; effect?: string }>;
  securityContext?: { runAsUser?: number; seccompProfile?: { type?: string } };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  nodeName?: string;
}

interface DaemonSet extends KubeObject {
  spec: { template: { metadata?: Meta; spec: PodSpec } };
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

interface Status {
  kind?: string;
  reason?: string;
  message?: string;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
}

function loadDocs(file: string): Doc[] {
  const text = readFileSync(path.join(DEPLOY, file), 'utf8');
  const docs: Doc[] = [];
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = d.toJS();
    if (value === null || value === undefined) continue;
    docs.push({ file, index: docs.length + 1, object: value as KubeObject });
  }
  return docs;
}

// kustomization.yaml is kustomize's file, not a manifest (checked on its own below).
const KUSTOMIZATION = 'kustomization.yaml';
const DEPLOY_FILES = existsSync(DEPLOY)
  ? readdirSync(DEPLOY)
      .filter((f) => /\.ya?ml$/.test(f) && f !== KUSTOMIZATION)
      .sort()
  : [];
const EXPECTED_FILES = ['multus-cni-config.yaml', 'multus-cni-rbac.yaml', 'multus-cni-simple.yaml', 'multus-cni.yaml'];
// The order the README, "Deploying on a cluster" gives for the watch-based example.
const WATCH_FILES = ['multus-cni-config.yaml', 'multus-cni-rbac.yaml', 'multus-cni.yaml'];

function all(): Doc[] {
  return DEPLOY_FILES.flatMap(loadDocs);
}

function one<T extends KubeObject>(file: string, kind: string, name?: string): T {
  const found = loadDocs(file).filter((d) => d.object.kind === kind && (name === undefined || d.object.metadata.name === name));
  assert.equal(found.length, 1, `${file}: expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return (found[0] as Doc).object as T;
}

function describeDoc(d: Doc): string {
  return `${d.file} document ${d.index} (${d.object.kind} ${d.object.metadata.namespace ? `${d.object.metadata.namespace}/` : ''}${d.object.metadata.name ?? '?'})`;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function flag(args: readonly string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  const hit = args.find((a) => a.startsWith(prefix));
  return hit?.slice(prefix.length);
}

function container(ds: DaemonSet): Container {
  assert.equal(ds.spec.template.spec.containers.length, 1, `${ds.metadata.name}: one container per node`);
  return ds.spec.template.spec.containers[0] as Container;
}

function fieldRefEnv(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
}

// ---------------------------------------------------------------------------
// The real CLI

/** Runs the repository's CLI under this Node with only what the test sets: no CNI_NODE_*, KUBECONFIG or NODE_HOSTNAME from the caller's shell. */
function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return runCliProcess(args, { cli: CLI, prefix: [process.execPath], env: { ...cleanEnv(['KUBECONFIG', 'NODE_HOSTNAME']), ...env } });
}

/** The node-looking tree one cni-node container sees: image dirs and host mounts. */
interface Tree {
  root: string;
  plugins: string;
  hostPlugins: string;
  configs: string;
  hostConfigs: string;
  manifests: string;
  env: Record<string, string>;
}

async function makeTree(): Promise<Tree> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'cni-node-deploy-'));
  const t = {
    root,
    plugins: path.join(root, 'image/opt/cni/bin'),
    hostPlugins: path.join(root, 'host/opt/cni/bin'),
    configs: path.join(root, 'image/etc/cni/net.d'),
    hostConfigs: path.join(root, 'host/etc/cni/net.d'),
    manifests: path.join(root, 'image/etc/kubernetes/manifests'),
  };
  for (const d of [t.plugins, t.hostPlugins, t.configs, t.hostConfigs, t.manifests]) await mkdir(d, { recursive: true });
  return {
    ...t,
    env: {
      CNI_NODE_PLUGINS_DIR: t.plugins,
      CNI_NODE_HOST_PLUGINS_DIR: t.hostPlugins,
      CNI_NODE_CONFIGS_DIR: t.configs,
      CNI_NODE_HOST_CONFIGS_DIR: t.hostConfigs,
      CNI_NODE_MANIFESTS_DIR: t.manifests,
    },
  };
}

/** Files of a ConfigMap as the kubelet would mount them (only the keys asked for). */
async function mountKeys(cm: ConfigMap, dir: string, keys: readonly string[]): Promise<void> {
  for (const k of keys) {
    const v = cm.data?.[k];
    assert.ok(v !== undefined, `ConfigMap ${cm.metadata.name} has no key ${k}`);
    await writeFile(path.join(dir, k), v);
  }
}

interface MultusConf {
  cniVersion?: string;
  name?: string;
  type?: string;
  kubeconfig?: string;
  delegates?: Json[];
}

// ---------------------------------------------------------------------------
// Tests without a cluster

describe('deploy/ manifests (static checks)', () => {
  test('the four manifests exist and use only current API versions', () => {
    for (const f of EXPECTED_FILES) assert.ok(DEPLOY_FILES.includes(f), `deploy/${f}`);
    const allowed = new Set(['v1', 'apps/v1', 'rbac.authorization.k8s.io/v1', 'apiextensions.k8s.io/v1']);
    for (const d of all()) {
      assert.ok(allowed.has(d.object.apiVersion), `${describeDoc(d)}: apiVersion ${d.object.apiVersion}`);
      assert.ok(d.object.metadata?.name, `${describeDoc(d)}: no metadata.name`);
    }
  });

  test('kustomization.yaml makes the watch-based example a kustomize base: its three files, nothing else', () => {
    const k = parseAllDocuments(readFileSync(path.join(DEPLOY, KUSTOMIZATION), 'utf8'))
      .map((d) => d.toJS() as { resources?: string[] } | null)
      .filter((d) => d !== null);
    assert.equal(k.length, 1);
    assert.deepEqual(k[0]?.resources, WATCH_FILES);
    assert.deepEqual(Object.keys(k[0] ?? {}), ['resources'], "no image, namespace or name changes of its own: those are the overlay's");
  });

  test('both DaemonSets: every node, node-critical, requests/limits, no privileges beyond writing the two host paths', () => {
    for (const file of ['multus-cni-simple.yaml', 'multus-cni.yaml']) {
      const ds = one<DaemonSet>(file, 'DaemonSet');
      const pod = ds.spec.template.spec;
      const c = container(ds);
      const where = `${file}: `;
      assert.ok(
        pod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined),
        `${where}tolerate every taint (not-ready nodes)`,
      );
      assert.equal(pod.priorityClassName, 'system-node-critical', where);
      assert.equal(pod.hostNetwork, true, `${where}must start where pod networking is not up yet`);
      assert.notEqual(pod.hostPID, true, where);
      assert.notEqual(pod.hostIPC, true, where);
      assert.equal(pod.initContainers, undefined, where);
      assert.equal(pod.securityContext?.runAsUser, 0, where);
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', where);
      for (const k of ['cpu', 'memory']) {
        assert.ok(c.resources?.requests?.[k], `${where}requests.${k}`);
        assert.ok(c.resources?.limits?.[k], `${where}limits.${k}`);
      }
      const sc = c.securityContext;
      assert.equal(sc?.privileged, false, where);
      assert.equal(sc?.allowPrivilegeEscalation, false, where);
      assert.equal(sc?.readOnlyRootFilesystem, true, where);
      assert.deepEqual(sc?.capabilities?.drop, ['ALL'], where);
      assert.equal(sc?.capabilities?.add, undefined, `${where}root owns the node's CNI dirs: no capability is needed to write there`);
      assert.equal(c.image, 'cni-node:0.1.0', `${where}the placeholder image that the README, "Deploying on a cluster" tells how to replace`);

      // Exactly the node's two CNI dirs from the host: no kubectl, nothing else.
      const hostPaths = new Map((pod.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath?.path]));
      assert.deepEqual([...hostPaths.values()].sort(), ['/etc/cni/net.d', '/opt/cni/bin'], where);
      const mountOf = (hostPath: string) => c.volumeMounts?.find((m) => hostPaths.get(m.name) === hostPath)?.mountPath;
      assert.equal(mountOf('/opt/cni/bin'), '/host/opt/cni/bin', where);
      assert.equal(mountOf('/etc/cni/net.d'), '/host/etc/cni/net.d', where);
      assert.ok(!JSON.stringify(ds).includes('kubectl'), `${where}no kubectl`);
      // A writable /tmp despite the read-only root filesystem.
      const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
      assert.ok(tmp && pod.volumes?.find((v) => v.name === tmp.name)?.emptyDir, `${where}/tmp is an emptyDir`);
    }
  });

  test('simple DaemonSet: install … --pause, preStop uninstall of the same items, no API access', () => {
    const ds = one<DaemonSet>('multus-cni-simple.yaml', 'DaemonSet');
    const c = container(ds);
    const args = c.args ?? [];
    assert.equal(args[0], 'install');
    assert.ok(args.includes('--pause'));
    assert.deepEqual(list(flag(args, 'plugins')), ['multus', 'macvlan']);
    assert.deepEqual(list(flag(args, 'configs')), ['05-multus.conf']);
    assert.ok(flag(args, 'wait'), 'waits for the Calico config instead of failing at once');
    const preStop = c.lifecycle?.preStop?.exec?.command ?? [];
    const i = preStop.indexOf('uninstall');
    assert.ok(i > 0, `preStop runs cni-node uninstall: ${preStop.join(' ')}`);
    assert.deepEqual(list(flag(preStop, 'plugins')), list(flag(args, 'plugins')));
    assert.deepEqual(list(flag(preStop, 'configs')), list(flag(args, 'configs')));
    // The image has no shell and no cni-node on PATH: the hook starts cni-node the
    // way the image's ENTRYPOINT does.
    const dockerfile = path.join(ROOT, 'Dockerfile');
    if (existsSync(dockerfile)) {
      const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(dockerfile, 'utf8'));
      assert.ok(m, 'the Dockerfile has an exec-form ENTRYPOINT');
      const entrypoint = JSON.parse(m[1] as string) as string[];
      assert.deepEqual(preStop.slice(0, i), entrypoint, 'preStop starts cni-node as the ENTRYPOINT does');
    }
    assert.equal(ds.spec.template.spec.automountServiceAccountToken, false, 'no manifests: no token');
    const cmName = ds.spec.template.spec.volumes?.find((v) => v.name === c.volumeMounts?.find((m) => m.mountPath === '/etc/cni/net.d')?.name)?.configMap?.name;
    assert.equal(cmName, 'multus-cni-simple');
    const cm = one<ConfigMap>('multus-cni-simple.yaml', 'ConfigMap', cmName);
    assert.ok(cm.data?.['05-multus.conf']?.includes('__10-calico.conflist__'));
    // The documented trade-off sits next to the hook.
    assert.match(readFileSync(path.join(DEPLOY, 'multus-cni-simple.yaml'), 'utf8'), /rolling update/i);
  });

  test('watch-based DaemonSet: one `cni-node run` container, probes on --listen, no uninstall on restart', () => {
    const ds = one<DaemonSet>('multus-cni.yaml', 'DaemonSet');
    const pod = ds.spec.template.spec;
    const c = container(ds);
    const args = c.args ?? [];
    assert.equal(args[0], 'run');
    assert.equal(flag(args, 'config-map'), 'kube-system/multus-cni');
    assert.ok(!args.includes('--uninstall-on-exit'), 'a plain restart must not uninstall');
    assert.equal(c.lifecycle, undefined, 'no preStop uninstall');
    assert.equal(c.command, undefined, 'the image ENTRYPOINT is cni-node');

    const listen = flag(args, 'listen');
    assert.ok(listen, '--listen');
    const m = /^(.*):(\d+)$/.exec(listen);
    assert.ok(m, listen);
    const [, host, port] = m;
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
    for (const p of [c.readinessProbe, c.livenessProbe]) {
      assert.equal(String(p?.httpGet?.port), port);
      if (host === '127.0.0.1' || host === 'localhost') assert.equal(p?.httpGet?.host, '127.0.0.1', 'a loopback listener is probed on loopback');
    }

    assert.equal(fieldRefEnv(c, 'NODE_HOSTNAME'), 'spec.nodeName');
    assert.equal(fieldRefEnv(c, 'POD_NAME'), 'metadata.name');
    assert.equal(fieldRefEnv(c, 'POD_NAMESPACE'), 'metadata.namespace');

    // The ConfigMap is the one it watches, mounted as templates and as manifests.
    const cmVolume = pod.volumes?.find((v) => v.configMap?.name === 'multus-cni');
    assert.ok(cmVolume);
    const mounts = (c.volumeMounts ?? [])
      .filter((v) => v.name === cmVolume.name)
      .map((v) => v.mountPath)
      .sort();
    assert.deepEqual(mounts, ['/etc/cni/net.d', '/etc/kubernetes/manifests']);

    assert.equal(pod.serviceAccountName, SA_NAME);
    const sa = one<KubeObject>('multus-cni-rbac.yaml', 'ServiceAccount', SA_NAME);
    assert.equal(sa.metadata.namespace, SA_NAMESPACE);
    assert.equal(`system:serviceaccount:${SA_NAMESPACE}:${SA_NAME}`, SERVICE_ACCOUNT_USER);
    assert.equal(ds.metadata.namespace, SA_NAMESPACE);

    // --kubeconfig-out writes in the container what Multus reads on the node.
    const out = flag(args, 'kubeconfig-out');
    assert.ok(out !== undefined && out.startsWith('/host/etc/cni/net.d/'), `--kubeconfig-out under the node's /etc/cni/net.d mount: ${out}`);
    const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
    const template = cm.data?.['05-multus.conf'] ?? '';
    const kubeconfig = /"kubeconfig"\s*:\s*"([^"]+)"/.exec(template)?.[1];
    assert.equal(kubeconfig, out.slice('/host'.length), '05-multus.conf names, as a node path, the file --kubeconfig-out writes');
  });

  test('the multus-cni ConfigMap: keys plugins/configs/manifests naming its own templates and manifests', () => {
    const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
    assert.equal(cm.metadata.namespace, 'kube-system');
    const data = cm.data ?? {};
    assert.deepEqual(list(data['plugins']), ['multus', 'macvlan']);
    const configs = list(data['configs']);
    const manifests = list(data['manifests']);
    assert.deepEqual(configs, ['05-multus.conf']);
    assert.ok(manifests.length > 0);
    for (const k of [...configs, ...manifests]) assert.ok(data[k] !== undefined, `the ConfigMap holds ${k}`);
    assert.ok(data['05-multus.conf']?.includes('__10-calico.conflist__'));
    const crb = data[manifests[0] as string] ?? '';
    assert.match(crb, /name: multus-cni-\$\{NODE_HOSTNAME\}/);
  });

  test('RBAC: bind only multus-cni, read only the multus-cni ConfigMap, never delete bindings or read secrets', () => {
    const rules = (kind: string, name: string) => (one<KubeObject>('multus-cni-rbac.yaml', kind, name)['rules'] as PolicyRule[] | undefined) ?? [];
    const cluster = rules('ClusterRole', 'cni-node');
    const ns = rules('Role', 'cni-node');
    const every = [...cluster, ...ns];
    for (const r of every) {
      assert.ok(!r.verbs?.includes('*') && !r.resources?.includes('*') && !r.apiGroups?.includes('*'), `no wildcards: ${JSON.stringify(r)}`);
      assert.ok(!r.resources?.some((x) => x === 'secrets'), `no secrets: ${JSON.stringify(r)}`);
      assert.ok(!r.verbs?.some((v) => v === 'escalate' || v === 'impersonate' || v === 'deletecollection'), JSON.stringify(r));
    }
    const bind = cluster.filter((r) => r.verbs?.includes('bind'));
    assert.deepEqual(
      bind.map((r) => r.resourceNames),
      [['multus-cni']],
    );
    const crb = cluster.filter((r) => r.resources?.includes('clusterrolebindings'));
    assert.ok(
      crb.every((r) => !r.verbs?.includes('delete')),
      'no delete of ClusterRoleBindings',
    );
    const cms = ns.filter((r) => r.resources?.includes('configmaps'));
    assert.deepEqual(
      cms.map((r) => r.resourceNames),
      [['multus-cni']],
    );
    const tokens = every.filter((r) => r.resources?.some((x) => x.startsWith('serviceaccounts')));
    assert.deepEqual(
      tokens,
      [{ apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'], resourceNames: ['cni-node'] }],
      'tokens of its own service account only',
    );
    // The per-node binding hands out exactly the role the daemon may bind.
    const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
    const manifest = cm.data?.[list(cm.data['manifests'])[0] as string] ?? '';
    assert.match(manifest, /kind: ClusterRole\s+name: multus-cni\b/);
  });
});

describe('example Multus templates rendered by the real CLI', () => {
  let calico: Json;
  before(async () => {
    assert.ok(existsSync(path.join(ROOT, 'dist', 'cni-node.mjs')), 'run `npm run build` first');
    calico = JSON.parse(await readFile(CALICO, 'utf8')) as Json;
  });

  for (const [file, cmName, wantsKubeconfig] of [
    ['multus-cni-config.yaml', 'multus-cni', true],
    ['multus-cni-simple.yaml', 'multus-cni-simple', false],
  ] as const) {
    test(`${file}: 05-multus.conf against a sample 10-calico.conflist is valid CNI JSON delegating to Calico`, async () => {
      const tree = await makeTree();
      try {
        const cm = one<ConfigMap>(file, 'ConfigMap', cmName);
        await mountKeys(cm, tree.configs, ['05-multus.conf']);
        const calicoText = await readFile(CALICO, 'utf8');
        await writeFile(path.join(tree.hostConfigs, '10-calico.conflist'), calicoText);

        const r = await runCli(['install', '--configs=05-multus.conf'], tree.env);
        assert.equal(r.code, 0, show(r));
        const rendered = await readFile(path.join(tree.hostConfigs, '05-multus.conf'), 'utf8');
        const conf = JSON.parse(rendered) as MultusConf;
        assert.equal(conf.type, 'multus');
        assert.equal(conf.name, 'multus-cni-network');
        assert.ok(conf.cniVersion);
        assert.equal(conf.delegates?.length, 1);
        assert.deepEqual(conf.delegates?.[0], calico, 'the delegate is the node’s Calico conflist, as it is');
        const delegate = conf.delegates?.[0] as { cniVersion?: string };
        assert.equal(conf.cniVersion, delegate.cniVersion, 'Multus and its delegate speak the same CNI version');
        if (wantsKubeconfig) assert.equal(conf.kubeconfig, '/etc/cni/net.d/multus.d/multus.kubeconfig');
        else assert.equal(conf.kubeconfig, undefined, 'the simple example has no API access to give Multus');
        // Untouched: the primary CNI's own file.
        assert.equal(await readFile(path.join(tree.hostConfigs, '10-calico.conflist'), 'utf8'), calicoText);
        // The runtime picks the lexically first config: Multus.
        const confs = (await readdir(tree.hostConfigs)).filter((f) => /\.(conf|conflist|json)$/.test(f)).sort();
        assert.equal(confs[0], '05-multus.conf');
      } finally {
        await rm(tree.root, { recursive: true, force: true });
      }
    });
  }

  test('multus-cni-simple.yaml: the container args install and the preStop command removes exactly that', async () => {
    const tree = await makeTree();
    try {
      const ds = one<DaemonSet>('multus-cni-simple.yaml', 'DaemonSet');
      const c = container(ds);
      const cm = one<ConfigMap>('multus-cni-simple.yaml', 'ConfigMap', 'multus-cni-simple');
      await mountKeys(cm, tree.configs, Object.keys(cm.data ?? {}));
      // Stand-ins for the image's plugins: only their names and bytes matter here.
      for (const p of ['multus', 'multus-cni', 'macvlan', 'ipvlan', 'bridge']) {
        await writeFile(path.join(tree.plugins, p), `#!/bin/sh\necho ${p}\n`);
        await chmod(path.join(tree.plugins, p), 0o755);
      }
      await writeFile(path.join(tree.hostConfigs, '10-calico.conflist'), await readFile(CALICO));
      await writeFile(path.join(tree.hostPlugins, 'calico'), 'calico');

      // The container's args, without --pause (the test is the signal).
      const args = (c.args ?? []).filter((a) => a !== '--pause');
      const install = await runCli(args, tree.env);
      assert.equal(install.code, 0, show(install));
      const visible = async (dir: string) => (await readdir(dir)).filter((f) => !f.startsWith('.')).sort();
      assert.deepEqual(await visible(tree.hostPlugins), ['calico', 'macvlan', 'multus']);
      assert.deepEqual(await visible(tree.hostConfigs), ['05-multus.conf', '10-calico.conflist']);

      const preStop = c.lifecycle?.preStop?.exec?.command ?? [];
      const uninstall = await runCli(preStop.slice(preStop.indexOf('uninstall')), tree.env);
      assert.equal(uninstall.code, 0, show(uninstall));
      assert.deepEqual(await visible(tree.hostPlugins), ['calico'], 'only what it installed is removed');
      assert.deepEqual(await visible(tree.hostConfigs), ['10-calico.conflist']);
    } finally {
      await rm(tree.root, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------
// Against a real kube-apiserver

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

async function ok<T>(res: Promise<ClusterResponse<T>>, what: string, ...statuses: number[]): Promise<ClusterResponse<T>> {
  const r = await res;
  assert.ok((statuses.length > 0 ? statuses : [200, 201]).includes(r.status), `${what}: HTTP ${r.status}: ${r.text.slice(0, 2000)}`);
  return r;
}

class Api {
  private readonly resources = new Map<string, ApiResource[]>();
  constructor(readonly cluster: TestCluster) {}

  async resource(apiVersion: string, kind: string): Promise<ApiResource> {
    let list = this.resources.get(apiVersion);
    if (!list) {
      const base = apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`;
      const res = await ok(this.cluster.request<{ resources: ApiResource[] }>('GET', base), `discovery of ${apiVersion}`);
      list = res.body.resources.filter((r) => !r.name.includes('/'));
      this.resources.set(apiVersion, list);
    }
    const found = list.find((r) => r.kind === kind);
    assert.ok(found, `the API server serves no ${kind} in ${apiVersion}`);
    return found;
  }

  /** The collection's path (for POST). */
  async collection(o: KubeObject): Promise<string> {
    const r = await this.resource(o.apiVersion, o.kind);
    const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
    const ns = r.namespaced ? `/namespaces/${encodeURIComponent(o.metadata.namespace ?? 'default')}` : '';
    return `${base}${ns}/${r.name}`;
  }

  /** The object's path. */
  async path(o: KubeObject): Promise<string> {
    return `${await this.collection(o)}/${encodeURIComponent(o.metadata.name ?? '')}`;
  }

  /** Server-side apply; dryRun sends dryRun=All (validated and admitted, not stored). */
  async apply(o: KubeObject, opts: { dryRun: boolean; token?: string }): Promise<ClusterResponse<KubeObject & Status>> {
    const q = `fieldManager=${FIELD_MANAGER}&force=true${opts.dryRun ? '&dryRun=All' : ''}`;
    return this.cluster.request<KubeObject & Status>('PATCH', `${await this.path(o)}?${q}`, o, {
      contentType: 'application/apply-patch+yaml',
      ...(opts.token !== undefined ? { token: opts.token } : {}),
    });
  }
}

async function waitForCrd(cluster: TestCluster, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (true) {
    const res = await cluster.request<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
      'GET',
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
    );
    if (res.status === 200 && res.body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    assert.ok(Date.now() < deadline, `CRD ${name} not Established: ${res.text.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not true after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function podFrom(ds: DaemonSet, nodeName: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${ds.metadata.name}-test`, namespace: ds.metadata.namespace, labels: ds.spec.template.metadata?.labels ?? {} },
    spec: { ...ds.spec.template.spec, nodeName },
  };
}

function perNodeBinding(node: string): KubeObject {
  const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
  const key = list(cm.data?.['manifests'])[0] as string;
  // The same substitution cni-node applies to manifests.
  const text = substituteEnv(cm.data?.[key] ?? '', { NODE_HOSTNAME: node }, key);
  const docs = parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((d): d is KubeObject => d !== null);
  assert.equal(docs.length, 1);
  return docs[0] as KubeObject;
}

const clusterSkip = clusterUnavailableReason();

describe('deploy/ against a real kube-apiserver', { skip: clusterSkip, timeout: 300_000 }, () => {
  let cluster: TestCluster;
  let api: Api;

  before(async () => {
    // Without a controller-manager no token Secrets exist, and the ServiceAccount
    // admission plugin of 1.20 refuses pods that mount a token; everything else
    // about the pods (validation, Priority admission) is checked.
    cluster = await startTestCluster({ apiServerArgs: ['--disable-admission-plugins=ServiceAccount'] });
    api = new Api(cluster);
    const ns = await cluster.request('GET', '/api/v1/namespaces/kube-system');
    if (ns.status === 404) {
      await ok(cluster.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } }), 'create kube-system');
    } else {
      assert.equal(ns.status, 200, ns.text);
    }
  });

  after(async () => {
    await cluster?.stop();
  });

  test('every document of every deploy/*.yaml is accepted (server-side dry-run)', async () => {
    // The CRD for real first, so a NetworkAttachmentDefinition can be validated against it.
    const crd = one<KubeObject>('multus-cni-rbac.yaml', 'CustomResourceDefinition');
    await ok(api.apply(crd, { dryRun: false }), 'apply the CRD');
    await waitForCrd(cluster, crd.metadata.name as string);

    const docs = all();
    assert.ok(docs.length >= 10, `${docs.length} documents`);
    const failures: string[] = [];
    for (const d of docs) {
      const res = await api.apply(d.object, { dryRun: true });
      if (res.status !== 200 && res.status !== 201) failures.push(`${describeDoc(d)}: HTTP ${res.status}: ${res.body.message ?? res.text}`);
    }
    // Plain POST too (create validation, not just apply), of the ones not already stored.
    for (const d of docs.filter((x) => x.object.kind !== 'CustomResourceDefinition')) {
      const res = await cluster.request<Status>('POST', `${await api.collection(d.object)}?dryRun=All&fieldManager=${FIELD_MANAGER}`, d.object);
      if (res.status !== 201) failures.push(`${describeDoc(d)} (POST): HTTP ${res.status}: ${res.body.message ?? res.text}`);
    }
    // The per-node binding inside the ConfigMap, as cni-node will create it.
    const crb = perNodeBinding(NODE);
    assert.equal(crb.metadata.name, `multus-cni-${NODE}`);
    const res = await api.apply(crb, { dryRun: true });
    if (res.status !== 201) failures.push(`per-node ClusterRoleBinding: HTTP ${res.status}: ${res.body.message ?? res.text}`);
    assert.deepEqual(failures, []);

    // What the pods reference exists on a stock API server.
    await ok(cluster.request('GET', '/apis/scheduling.k8s.io/v1/priorityclasses/system-node-critical'), 'priority class system-node-critical');
  });

  test('the pods the DaemonSets create are accepted (validation and Priority admission)', async () => {
    for (const file of ['multus-cni-simple.yaml', 'multus-cni.yaml']) {
      const pod = podFrom(one<DaemonSet>(file, 'DaemonSet'), NODE);
      const res = await ok(cluster.request<{ spec?: { priority?: number } }>('POST', `${await api.collection(pod)}?dryRun=All`, pod), `${file}: pod`, 201);
      assert.equal(res.body.spec?.priority, 2000001000, `${file}: system-node-critical resolved`);
    }
  });

  test('the CRD: a NetworkAttachmentDefinition validates; a non-string config does not', async () => {
    const crd = one<KubeObject>('multus-cni-rbac.yaml', 'CustomResourceDefinition');
    await ok(api.apply(crd, { dryRun: false }), 'apply the CRD');
    await waitForCrd(cluster, crd.metadata.name as string);
    const nad = {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: 'macvlan-conf', namespace: 'default' },
      spec: {
        config: JSON.stringify({
          cniVersion: '0.3.1',
          type: 'macvlan',
          master: 'eth0',
          mode: 'bridge',
          ipam: { type: 'host-local', subnet: '192.168.1.0/24', rangeStart: '192.168.1.200', rangeEnd: '192.168.1.216', gateway: '192.168.1.1' },
        }),
      },
    };
    const accepted = await ok(api.apply(nad, { dryRun: false }), 'a macvlan NetworkAttachmentDefinition');
    assert.equal((accepted.body['spec'] as { config?: string }).config, nad.spec.config);
    // POST: server-side apply of a mistyped field answers 500 in 1.20, not the schema's 422.
    const badNad = { ...nad, metadata: { name: 'bad', namespace: 'default' }, spec: { config: { type: 'macvlan' } } };
    const bad = await cluster.request('POST', `${await api.collection(badNad)}?dryRun=All`, badNad);
    assert.equal(bad.status, 422, bad.text);
    assert.match(bad.text, /spec\.config/);
  });

  describe('least privilege of the cni-node service account, with its real token', () => {
    let sa: string;
    const nsCm = `/api/v1/namespaces/${SA_NAMESPACE}/configmaps`;
    const crbs = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings';

    const as = <T = Status>(method: string, p: string, body?: unknown, contentType?: string): Promise<ClusterResponse<T>> =>
      cluster.request<T>(method, p, body, { token: sa, ...(contentType ? { contentType } : {}) });
    const allowed = async (what: string, res: Promise<ClusterResponse<unknown>>, ...statuses: number[]) => {
      const r = await res;
      assert.ok((statuses.length ? statuses : [200, 201]).includes(r.status), `${what} should be allowed: HTTP ${r.status}: ${r.text.slice(0, 500)}`);
    };
    const forbidden = async (what: string, res: Promise<ClusterResponse<unknown>>) => {
      const r = await res;
      assert.equal(r.status, 403, `${what} should be forbidden: HTTP ${r.status}: ${r.text.slice(0, 500)}`);
      assert.ok(r.text.includes(SERVICE_ACCOUNT_USER), r.text);
    };
    const binding = (name: string, role: string) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ kind: 'ServiceAccount', name: SA_NAME, namespace: SA_NAMESPACE }],
    });

    before(async () => {
      sa = cluster.tokens.serviceAccount;
      // The watch-based example, applied for real in the documented order.
      for (const file of WATCH_FILES) for (const d of loadDocs(file)) await ok(api.apply(d.object, { dryRun: false }), describeDoc(d));
      await waitForCrd(cluster, 'network-attachment-definitions.k8s.cni.cncf.io');
      // Things it must not see or touch.
      await ok(
        cluster.request('POST', nsCm, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kubeadm-config' }, data: { a: 'b' } }),
        'other ConfigMap',
      );
      await ok(
        cluster.request('POST', `/api/v1/namespaces/${SA_NAMESPACE}/secrets`, {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'bootstrap-token-x' },
          stringData: { t: 'x' },
        }),
        'a Secret',
      );
    });

    test('reads and watches the multus-cni ConfigMap, and nothing else', async () => {
      await allowed('get multus-cni', as('GET', `${nsCm}/multus-cni`));
      const byName = `fieldSelector=${encodeURIComponent('metadata.name=multus-cni')}`;
      const listed = await as<{ items: unknown[] }>('GET', `${nsCm}?${byName}`);
      assert.equal(listed.status, 200, listed.text);
      assert.equal(listed.body.items.length, 1);
      // A watch as cni-node opens it (ends after 1 s).
      await allowed('watch multus-cni', as('GET', `${nsCm}?${byName}&watch=1&timeoutSeconds=1`));

      await forbidden('get another ConfigMap', as('GET', `${nsCm}/kubeadm-config`));
      await forbidden('list all ConfigMaps', as('GET', nsCm));
      await forbidden('watch all ConfigMaps', as('GET', `${nsCm}?watch=1&timeoutSeconds=1`));
      await forbidden('list ConfigMaps in default', as('GET', '/api/v1/namespaces/default/configmaps'));
      await forbidden('change multus-cni', as('PATCH', `${nsCm}/multus-cni?dryRun=All`, { data: { plugins: 'bridge' } }, 'application/merge-patch+json'));
      await forbidden('get a Secret', as('GET', `/api/v1/namespaces/${SA_NAMESPACE}/secrets/bootstrap-token-x`));
      await forbidden('list Secrets', as('GET', `/api/v1/namespaces/${SA_NAMESPACE}/secrets`));
      await forbidden('list Secrets cluster-wide', as('GET', '/api/v1/secrets'));
      await forbidden('get pods', as('GET', `/api/v1/namespaces/${SA_NAMESPACE}/pods`));
      const tokenRequest = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } };
      const issued = await as<{ status?: { token?: string } }>('POST', `/api/v1/namespaces/${SA_NAMESPACE}/serviceaccounts/${SA_NAME}/token`, tokenRequest);
      assert.equal(
        issued.status,
        201,
        `request a token of its own service account (for Multus' kubeconfig): HTTP ${issued.status}: ${issued.text.slice(0, 300)}`,
      );
      assert.ok(issued.body.status?.token, 'a token is issued');
      await forbidden(
        'request a token of another service account',
        as('POST', `/api/v1/namespaces/${SA_NAMESPACE}/serviceaccounts/default/token`, tokenRequest),
      );
      await forbidden(
        'request a token of cni-node in another namespace',
        as('POST', `/api/v1/namespaces/default/serviceaccounts/${SA_NAME}/token`, tokenRequest),
      );
      await forbidden('read service accounts', as('GET', `/api/v1/namespaces/${SA_NAMESPACE}/serviceaccounts/${SA_NAME}`));
    });

    test('records Events in its own namespace only', async () => {
      const event = (ns: string) => ({
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `multus-cni-node-abcde.${Date.now()}`, namespace: ns },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'multus-cni-node-abcde', namespace: ns },
        reason: 'Waiting',
        message: 'waiting for 10-calico.conflist',
        type: 'Normal',
      });
      await allowed('create an Event in kube-system', as('POST', `/api/v1/namespaces/${SA_NAMESPACE}/events?dryRun=All`, event(SA_NAMESPACE)), 201);
      await forbidden('create an Event in default', as('POST', '/api/v1/namespaces/default/events?dryRun=All', event('default')));
    });

    test('binds only multus-cni: the per-node binding works, cluster-admin and other roles do not', async () => {
      // Before its binding exists the service account holds none of Multus' rights.
      await forbidden('get a pod (Multus right) before the per-node binding', as('GET', '/api/v1/namespaces/default/pods/p'));

      const mine = perNodeBinding(NODE);
      const applyPath = `${crbs}/${mine.metadata.name}?fieldManager=cni-node&force=true`;
      const created = await as('PATCH', applyPath, mine, 'application/apply-patch+yaml');
      assert.equal(created.status, 201, `create the per-node binding with server-side apply: ${created.text}`);
      const again = await as('PATCH', applyPath, mine, 'application/apply-patch+yaml');
      assert.equal(again.status, 200, `re-apply it unchanged: ${again.text}`);
      await allowed('create (POST) another node’s binding', as('POST', `${crbs}?dryRun=All`, perNodeBinding('node-2')), 201);

      // Now Multus (which uses this account's token through --kubeconfig-out) may do its job.
      // The authorizer sees new bindings through an informer: allow it a moment.
      await eventually('get a pod (404: allowed, absent)', async () => (await as('GET', '/api/v1/namespaces/default/pods/p')).status === 404);
      await allowed('list NetworkAttachmentDefinitions', as('GET', '/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions'));
      await forbidden(
        'create a NetworkAttachmentDefinition',
        as('POST', '/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions?dryRun=All', {
          apiVersion: 'k8s.cni.cncf.io/v1',
          kind: 'NetworkAttachmentDefinition',
          metadata: { name: 'x' },
          spec: { config: '{}' },
        }),
      );
      await forbidden('delete pods', as('DELETE', '/api/v1/namespaces/default/pods/p?dryRun=All'));

      // Roles with rules of their own. (Not admin/edit/view: they are aggregated by
      // the controller-manager, which this test cluster does not run, so here they
      // are empty, and binding an empty role escalates nothing: the server allows it.)
      for (const role of ['cluster-admin', 'system:node', 'system:kube-scheduler', 'system:controller:clusterrole-aggregation-controller']) {
        await forbidden(`create a binding to ${role} (POST)`, as('POST', `${crbs}?dryRun=All`, binding(`evil-${role.replace(/:/g, '-')}`, role)));
        await forbidden(
          `create a binding to ${role} (apply)`,
          as('PATCH', `${crbs}/evil?fieldManager=cni-node&dryRun=All`, binding('evil', role), 'application/apply-patch+yaml'),
        );
      }
      // Changing someone else's binding: the escalation check covers updates too.
      await forbidden(
        'add itself to the cluster-admin binding',
        as(
          'PATCH',
          `${crbs}/cluster-admin?dryRun=All`,
          { subjects: [{ kind: 'ServiceAccount', name: SA_NAME, namespace: SA_NAMESPACE }] },
          'application/merge-patch+json',
        ),
      );
      await forbidden('delete the cluster-admin binding', as('DELETE', `${crbs}/cluster-admin?dryRun=All`));
      await forbidden('delete a system binding', as('DELETE', `${crbs}/system:basic-user?dryRun=All`));
      await forbidden('delete even its own per-node binding (the operator removes them)', as('DELETE', `${crbs}/${mine.metadata.name}?dryRun=All`));
      await forbidden('list ClusterRoleBindings', as('GET', crbs));
      // Nor may it widen the role it binds, or make new roles or APIs.
      await forbidden(
        'change the multus-cni ClusterRole',
        as(
          'PATCH',
          '/apis/rbac.authorization.k8s.io/v1/clusterroles/multus-cni?dryRun=All',
          { rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] },
          'application/merge-patch+json',
        ),
      );
      await forbidden(
        'create a ClusterRole',
        as('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles?dryRun=All', {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRole',
          metadata: { name: 'x' },
          rules: [],
        }),
      );
      await forbidden(
        'create a RoleBinding',
        as('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${SA_NAMESPACE}/rolebindings?dryRun=All`, {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: 'x' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'multus-cni' },
          subjects: [{ kind: 'User', name: 'x' }],
        }),
      );
      await forbidden(
        'create a CRD',
        as('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All', one<KubeObject>('multus-cni-rbac.yaml', 'CustomResourceDefinition')),
      );
    });

    test('the real CLI creates the per-node binding with this account, and may not delete it', async () => {
      const tree = await makeTree();
      try {
        const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
        const key = list(cm.data?.['manifests'])[0] as string;
        await mountKeys(cm, tree.manifests, [key]);
        const kubeconfig = cluster.writeKubeconfig(sa, path.join(tree.root, 'kubeconfig'));
        const env = { ...tree.env, NODE_HOSTNAME: 'node-3' };

        const install = await runCli(['install', `--manifests=${key}`, `--kubeconfig=${kubeconfig}`], env);
        assert.equal(install.code, 0, show(install));
        const got = await ok(cluster.request<KubeObject & { roleRef: { name: string } }>('GET', `${crbs}/multus-cni-node-3`), 'the binding cni-node made');
        assert.equal(got.body.roleRef.name, 'multus-cni');
        assert.equal(got.body.metadata.labels?.['app.kubernetes.io/managed-by'], 'cni-node');

        const missing = await runCli(['install', `--manifests=${key}`, `--kubeconfig=${kubeconfig}`], tree.env);
        assert.equal(missing.code, 1, `without NODE_HOSTNAME: ${show(missing)}`);
        assert.match(missing.stderr, /NODE_HOSTNAME/);

        const uninstall = await runCli(['uninstall', `--manifests=${key}`, `--kubeconfig=${kubeconfig}`], env);
        assert.equal(uninstall.code, 1, show(uninstall));
        assert.match(uninstall.stderr, /delete|forbidden/i);
        await ok(cluster.request('GET', `${crbs}/multus-cni-node-3`), 'still there');
      } finally {
        await rm(tree.root, { recursive: true, force: true });
      }
    });

    test(
      '`cni-node run` as the DaemonSet runs it: converges with these rights, follows edits, uninstalls for good via the ConfigMap',
      { timeout: 120_000 },
      async () => {
        const ds = one<DaemonSet>('multus-cni.yaml', 'DaemonSet');
        const c = container(ds);
        const tree = await makeTree();
        let daemon: ReturnType<typeof spawn> | undefined;
        let output = '';
        try {
          // The pod as the kubelet would set it up: the ConfigMap mounted whole as
          // templates and manifests, the image's plugins, the node's Calico config,
          // the service account (token, CA, namespace) and the downward API env.
          const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
          await mountKeys(cm, tree.configs, Object.keys(cm.data ?? {}));
          await mountKeys(cm, tree.manifests, Object.keys(cm.data ?? {}));
          for (const p of ['multus', 'multus-cni', 'macvlan', 'ipvlan', 'bridge']) {
            await writeFile(path.join(tree.plugins, p), `#!/bin/sh\necho ${p}\n`);
            await chmod(path.join(tree.plugins, p), 0o755);
          }
          const calicoText = await readFile(CALICO, 'utf8');
          await writeFile(path.join(tree.hostConfigs, '10-calico.conflist'), calicoText);
          const saDir = path.join(tree.root, 'serviceaccount');
          await mkdir(saDir);
          // A real service account token (a JWT, as the kubelet projects one).
          const projected = await cluster.request<{ status?: { token?: string } }>(
            'POST',
            `/api/v1/namespaces/${SA_NAMESPACE}/serviceaccounts/${SA_NAME}/token`,
            {
              apiVersion: 'authentication.k8s.io/v1',
              kind: 'TokenRequest',
              spec: { expirationSeconds: 3600 },
            },
          );
          const projectedToken = projected.body.status?.token;
          assert.ok(projectedToken, `a token for the pod: ${projected.text.slice(0, 300)}`);
          await writeFile(path.join(saDir, 'token'), projectedToken);
          await writeFile(path.join(saDir, 'ca.crt'), cluster.caData);
          await writeFile(path.join(saDir, 'namespace'), SA_NAMESPACE);
          const fieldValues: Record<string, string> = {
            'spec.nodeName': 'node-5',
            'metadata.name': 'multus-cni-node-x7k2p',
            'metadata.namespace': SA_NAMESPACE,
            'metadata.uid': '6c1f3f1e-2b1a-4c8e-9d7e-0a1b2c3d4e5f',
          };
          const podEnv: Record<string, string> = {};
          for (const e of c.env ?? []) {
            const v = e.value ?? fieldValues[e.valueFrom?.fieldRef?.fieldPath ?? ''];
            assert.ok(v !== undefined, `env ${e.name}`);
            podEnv[e.name] = v;
          }
          const server = new URL(cluster.server);
          const port = await freePort();
          const kubeconfigOut = path.join(tree.hostConfigs, 'multus.d', 'multus.kubeconfig');
          // The DaemonSet's args, with the pod's paths mapped into the temp tree and a free port.
          const args = (c.args ?? []).map((a) =>
            a.startsWith('--listen=')
              ? `--listen=127.0.0.1:${port}`
              : a.startsWith('--kubeconfig-out=/host/etc/cni/net.d/')
                ? `--kubeconfig-out=${path.join(tree.hostConfigs, a.slice('--kubeconfig-out=/host/etc/cni/net.d/'.length))}`
                : a,
          );
          const childEnv: NodeJS.ProcessEnv = {};
          for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_NODE_') && k !== 'KUBECONFIG') childEnv[k] = v;
          Object.assign(childEnv, tree.env, podEnv, {
            KUBERNETES_SERVICE_HOST: server.hostname,
            KUBERNETES_SERVICE_PORT: server.port,
            CNI_NODE_SERVICE_ACCOUNT_DIR: saDir,
          });
          daemon = spawn(process.execPath, [CLI, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
          daemon.stdout?.on('data', (b: Buffer) => (output += b.toString()));
          daemon.stderr?.on('data', (b: Buffer) => (output += b.toString()));
          const status = async (p: string) => {
            try {
              const r = await fetch(`http://127.0.0.1:${port}${p}`);
              return r.status;
            } catch {
              return 0;
            }
          };
          const visible = async (dir: string) => (await readdir(dir)).filter((f) => !f.startsWith('.')).sort();
          const until = (what: string, check: () => Promise<boolean>) => eventually(`${what}\n--- cni-node output:\n${output}`, check, 20_000);

          await until('ready', async () => (await status('/readyz')) === 200);
          assert.equal(await status('/healthz'), 200);
          assert.deepEqual(await visible(tree.hostPlugins), ['macvlan', 'multus']);
          const conf = JSON.parse(await readFile(path.join(tree.hostConfigs, '05-multus.conf'), 'utf8')) as MultusConf;
          assert.deepEqual(conf.delegates?.[0], JSON.parse(calicoText) as Json);
          await ok(cluster.request('GET', `${crbs}/multus-cni-node-5`), 'the per-node binding');

          // The kubeconfig Multus reads: private, and it works with Multus' rights.
          const kc = await readFile(kubeconfigOut, 'utf8');
          assert.equal(statSync(kubeconfigOut).mode & 0o777, 0o600);
          assert.ok(kc.includes(JSON.stringify(cluster.server)), kc);
          const token = (parseAllDocuments(kc)[0]?.toJS() as { users?: Array<{ user?: { token?: string } }> }).users?.[0]?.user?.token;
          // Not the pod's own token (that one dies with the pod: rolling updates would
          // leave Multus without credentials), but one cni-node requested for its account.
          assert.ok(token && token !== projectedToken, 'a token cni-node requested, not the projected one');
          assert.match(output, /kubeconfig for plugins at .*\(embed; a requested token, renewed before it expires\)/);
          const review = await cluster.request<{ status?: { authenticated?: boolean; user?: { username?: string } } }>(
            'POST',
            '/apis/authentication.k8s.io/v1/tokenreviews',
            {
              apiVersion: 'authentication.k8s.io/v1',
              kind: 'TokenReview',
              spec: { token },
            },
          );
          assert.equal(review.body.status?.authenticated, true, review.text);
          assert.equal(review.body.status?.user?.username, SERVICE_ACCOUNT_USER);
          await eventually(
            'Multus, with this kubeconfig, may read pods',
            async () => (await cluster.request('GET', '/api/v1/namespaces/default/pods/p', undefined, { token })).status === 404,
          );

          // Updating the ConfigMap: a plugin added.
          await ok(cluster.request('PATCH', `${nsCm}/multus-cni`, { data: { plugins: 'multus,macvlan,ipvlan' } }), 'edit plugins');
          await until('ipvlan installed', async () => (await visible(tree.hostPlugins)).includes('ipvlan'));

          // Uninstalling for good, as the README, "Deploying on a cluster" says: empty plugins and configs, keep manifests.
          await ok(cluster.request('PATCH', `${nsCm}/multus-cni`, { data: { plugins: '', configs: '' } }), 'empty the lists');
          await until(
            'plugins and configs removed',
            async () => (await visible(tree.hostPlugins)).length === 0 && !(await visible(tree.hostConfigs)).includes('05-multus.conf'),
          );
          assert.equal(await readFile(path.join(tree.hostConfigs, '10-calico.conflist'), 'utf8'), calicoText, 'Calico untouched');
          await until('still ready (nothing it may not do was asked)', async () => (await status('/readyz')) === 200);
          assert.doesNotMatch(output, /forbidden|cannot/i, 'the RBAC of multus-cni-rbac.yaml is enough for everything it did');

          // A plain stop (a restart, a rolling update) removes nothing more and is quick.
          const started = Date.now();
          const exited = new Promise<number | null>((resolve) => daemon?.once('exit', (code) => resolve(code)));
          daemon.kill('SIGTERM');
          assert.equal(await exited, 0, output);
          assert.ok(Date.now() - started < 2_500, `stopped in ${Date.now() - started} ms`);
          daemon = undefined;
          assert.ok(existsSync(kubeconfigOut), 'a restart keeps the kubeconfig for Multus');
        } finally {
          daemon?.kill('SIGKILL');
          await rm(tree.root, { recursive: true, force: true });
          // Back to the example's lists for anything after this test.
          const cm = one<ConfigMap>('multus-cni-config.yaml', 'ConfigMap', 'multus-cni');
          await cluster.request('PATCH', `${nsCm}/multus-cni`, { data: cm.data });
        }
      },
    );

    test('the documented clean-up command removes the per-node bindings and only them', async () => {
      const selector = 'app.kubernetes.io/part-of=multus-cni,app.kubernetes.io/managed-by=cni-node';
      const found = await ok(cluster.request<{ items: KubeObject[] }>('GET', `${crbs}?labelSelector=${encodeURIComponent(selector)}`), 'list');
      assert.ok(found.body.items.length >= 1);
      assert.ok(found.body.items.every((o) => o.metadata.name?.startsWith('multus-cni-')));
      await ok(cluster.request('DELETE', `${crbs}?labelSelector=${encodeURIComponent(selector)}`), 'delete by label');
      const left = await ok(
        cluster.request<{ items: KubeObject[] }>('GET', `${crbs}?labelSelector=${encodeURIComponent('app.kubernetes.io/part-of=multus-cni')}`),
        'list',
      );
      assert.deepEqual(
        left.body.items.map((o) => o.metadata.name),
        ['cni-node'],
      );
      await ok(cluster.request('GET', `${crbs}/cluster-admin`), 'cluster-admin binding untouched');
    });
  });
});
