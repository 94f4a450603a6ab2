// Manifests against a real kube-apiserver 1.20.2 + etcd (test/e2e/support/cluster.ts).
//
// Most tests drive the manifest handler the way the engine does (plan → prepare →
// execute → commit → record.save), so each behaviour is checked at the API server
// itself: objects, resourceVersions, RBAC answers. The CLI tests at the end run
// bin/cni-node as a process for exit codes and messages.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { parseListSpec } from '../../src/core/lists.js';
import { plan, type Mode } from '../../src/core/plan.js';
import type { EngineOptions, ItemReport, Reporter } from '../../src/core/contracts.js';
import { createKubeClient, type RequestEvent } from '../../src/kube/client.js';
import { KubeApiError, KubeUnreachableError } from '../../src/kube/errors.js';
import { createManifestHandler, RECORD_KIND } from '../../src/kube/manifest-handler.js';
import type { RetryPolicy } from '../../src/kube/retry.js';
import { listWatch } from '../../src/kube/watch.js';
import { NodeRecord } from '../../src/node/record.js';
import { useTestCluster } from './support/api-suite.js';
import { clusterUnavailableReason, SERVICE_ACCOUNT_USER } from './support/cluster.js';
import { grantServiceAccount } from './support/daemon.js';
import { closedPort } from '../support/process.js';
import { REPO_ROOT } from '../support/repo.js';

const skip = clusterUnavailableReason();
const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/manifests');
const CLI = path.join(REPO_ROOT, 'bin/cni-node');

const api = useTestCluster({ skip });

// ---------------------------------------------------------------------------
// A "node": a manifests dir (the fixtures, plus what a test writes), a node configs
// dir holding cni-node's record, credentials, and the environment.

interface Node {
  root: string;
  manifestsDir: string;
  hostConfigsDir: string;
  env: Record<string, string | undefined>;
  kubeconfig: string;
  write(name: string, text: string): void;
}

function newNode(opts: { token?: string; env?: Record<string, string | undefined> } = {}): Node {
  const root = api.tempDir('cni-node-manifests-');
  const manifestsDir = path.join(root, 'manifests');
  const hostConfigsDir = path.join(root, 'host-net.d');
  cpSync(FIXTURES, manifestsDir, { recursive: true });
  mkdirSync(hostConfigsDir);
  return {
    root,
    manifestsDir,
    hostConfigsDir,
    // No service account mount on the test machine: namespaced objects default to "default".
    env: { NODE_HOSTNAME: 'node-1', CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(root, 'no-service-account'), ...opts.env },
    kubeconfig: api.cluster.writeKubeconfig(opts.token ?? api.cluster.tokens.admin, path.join(root, 'kubeconfig')),
    write(name, text) {
      writeFileSync(path.join(manifestsDir, name), text);
    },
  };
}

interface RunOptions {
  dryRun?: boolean;
  /** Run as if the node configs dir were not mounted (no record). */
  noRecord?: boolean;
  kubeconfig?: string;
  env?: Record<string, string | undefined>;
  retry?: RetryPolicy;
}

interface RunResult {
  reports: ItemReport[];
  problems: CniNodeError[];
  warnings: string[];
  requests: RequestEvent[];
}

/** Drives the manifest handler as the engine does. Problems found by prepare() are returned; execute() errors are thrown. */
async function run(node: Node, mode: Mode, spec: string, o: RunOptions = {}): Promise<RunResult> {
  const dryRun = o.dryRun ?? false;
  const warnings: string[] = [];
  const requests: RequestEvent[] = [];
  const reporter: Reporter = { item: () => undefined, warn: (m) => warnings.push(m), info: () => undefined };
  const options: EngineOptions = {
    dirs: {
      pluginsDir: '/nonexistent',
      hostPluginsDir: '/nonexistent',
      configsDir: '/nonexistent',
      hostConfigsDir: node.hostConfigsDir,
      manifestsDir: node.manifestsDir,
    },
    dryRun,
    waitMs: 0,
    tolerateMissingPointers: false,
    env: { ...node.env, ...o.env },
    kubeconfig: o.kubeconfig ?? node.kubeconfig,
    reporter,
  };
  const record = o.noRecord ? undefined : await NodeRecord.load(node.hostConfigsDir, reporter, { readOnly: dryRun });
  const handler = await createManifestHandler({
    options,
    record,
    clientOptions: { onRequest: (e) => requests.push(e), ...(o.retry ? { retry: o.retry } : {}) },
  });
  const reports: ItemReport[] = [];
  try {
    const list = parseListSpec(spec, 'manifests');
    const current = list.current ?? (mode === 'apply' ? await handler.recorded() : []);
    const actions = plan(mode, { manifest: { desired: list.desired, current } });
    const { problems } = await handler.prepare(actions);
    if (problems.length > 0) return { reports, problems, warnings, requests };
    try {
      for (const a of actions) reports.push(await handler.execute(a, dryRun));
    } finally {
      if (!dryRun) {
        await handler.commit();
        await record?.save();
      }
    }
  } finally {
    await handler.close();
  }
  return { reports, problems: [], warnings, requests };
}

function writes(r: RunResult): RequestEvent[] {
  return r.requests.filter((e) => e.write);
}

function summary(r: RunResult): string[] {
  return r.reports.map((x) => `${x.name}: ${x.result}${x.dryRun ? ' (dry run)' : ''} — ${x.detail ?? ''}`);
}

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion: string; managedFields?: { manager: string }[] };
  [k: string]: unknown;
}

async function get(p: string): Promise<Obj | undefined> {
  const res = await api.cluster.request<Obj>('GET', p);
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, res.text);
  return res.body;
}

async function rv(p: string): Promise<string> {
  const o = await get(p);
  assert.ok(o, `${p} exists`);
  return o.metadata.resourceVersion;
}

const CRB = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings';
const CR = '/apis/rbac.authorization.k8s.io/v1/clusterroles';
const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const NAD_CRD = 'network-attachment-definitions.k8s.cni.cncf.io';
const nads = (ns: string): string => `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`;
const cms = (ns: string): string => `/api/v1/namespaces/${ns}/configmaps`;

function configMaps(names: string[], data: Record<string, string> = { a: '1' }, ns?: string): string {
  return names
    .map((n) =>
      [
        `apiVersion: v1`,
        `kind: ConfigMap`,
        `metadata:`,
        `  name: ${n}`,
        ...(ns ? [`  namespace: ${ns}`] : []),
        `data:`,
        ...Object.entries(data).map(([k, v]) => `  ${k}: "${v}"`),
      ].join('\n'),
    )
    .join('\n---\n');
}

function recordOf(node: Node): { name: string; sha256: string; meta?: { objects?: { kind: string; name: string; namespace?: string }[] } }[] {
  const file = path.join(node.hostConfigsDir, '.cni-node-state');
  if (!existsSync(file)) return [];
  const data = JSON.parse(readFileSync(file, 'utf8')) as { kinds: Record<string, never[]> };
  return data.kinds[RECORD_KIND] ?? [];
}

async function waitGone(p: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if ((await get(p)) === undefined) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${p} still exists after ${ms} ms`);
}

// ---------------------------------------------------------------------------

test("the original's per-node ClusterRoleBinding (${NODE_HOSTNAME}), one per node, and a no-op re-install", { skip, timeout: 60_000 }, async () => {
  const node1 = newNode();
  const node2 = newNode({ env: { NODE_HOSTNAME: 'node-2' } });
  for (const node of [node1, node2]) {
    const r = await run(node, 'install', 'multus-cni-clusterrole.yaml,multus-cni-crd.yaml');
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.reports.map((x) => [x.name, x.result]),
      [
        ['multus-cni-clusterrole.yaml', node === node1 ? 'installed' : 'unchanged'],
        ['multus-cni-crd.yaml', 'installed'],
      ],
    );
  }
  for (const host of ['node-1', 'node-2']) {
    const crb = (await get(`${CRB}/multus-cni-${host}`)) as Obj & { subjects: { kind: string; name: string }[]; roleRef: { name: string } };
    assert.ok(crb, `ClusterRoleBinding multus-cni-${host} exists`);
    assert.deepEqual(
      crb.subjects.map((s) => `${s.kind}:${s.name}`),
      [`User:system:node:${host}`],
    );
    assert.equal(crb.roleRef.name, 'multus-cni-crd');
    assert.equal(crb.metadata.managedFields?.[0]?.manager, 'cni-node');
  }
  assert.deepEqual(
    recordOf(node1).map((e) => [e.name, e.meta?.objects?.map((o) => `${o.kind}/${o.name}`)]),
    [
      ['multus-cni-clusterrole.yaml', ['ClusterRole/multus-cni-crd']],
      ['multus-cni-crd.yaml', ['ClusterRoleBinding/multus-cni-node-1']],
    ],
  );

  const before = await rv(`${CRB}/multus-cni-node-1`);
  const again = await run(node1, 'install', 'multus-cni-clusterrole.yaml,multus-cni-crd.yaml');
  assert.deepEqual(summary(again), [
    'multus-cni-clusterrole.yaml: unchanged — 1 object: 1 unchanged',
    'multus-cni-crd.yaml: unchanged — 1 object: 1 unchanged',
  ]);
  assert.deepEqual(writes(again), []);
  assert.equal(await rv(`${CRB}/multus-cni-node-1`), before);

  await run(node1, 'uninstall', 'multus-cni-crd.yaml');
  await run(node2, 'uninstall', 'multus-cni-clusterrole.yaml,multus-cni-crd.yaml');
  assert.equal(await get(`${CRB}/multus-cni-node-1`), undefined);
  assert.equal(await get(`${CRB}/multus-cni-node-2`), undefined);
  assert.equal(await get(`${CR}/multus-cni-crd`), undefined);
});

test('a missing variable is reported with every missing name, and nothing is sent to the API', { skip, timeout: 30_000 }, async () => {
  const node = newNode({ env: { NODE_HOSTNAME: undefined } });
  node.write('two-vars.yaml', configMaps(['cm-${CLUSTER_NAME}-${NODE_HOSTNAME}'], { price: '$$5 ${CLUSTER_NAME}' }));
  const r = await run(node, 'install', 'multus-cni-crd.yaml,two-vars.yaml');
  assert.equal(r.problems.length, 2, r.problems.map((p) => p.describe()).join('\n'));
  assert.match(r.problems[0]?.message ?? '', /multus-cni-crd\.yaml: environment variable not set: NODE_HOSTNAME/);
  assert.match(r.problems[1]?.message ?? '', /two-vars\.yaml: environment variables not set: CLUSTER_NAME, NODE_HOSTNAME/);
  assert.deepEqual(r.requests, [], 'no request at all');
  assert.equal(await get(`${CRB}/multus-cni-`), undefined);
  assert.deepEqual(recordOf(node), []);

  // $$ is a literal $.
  const ok = await run(node, 'install', 'two-vars.yaml', { env: { CLUSTER_NAME: 'c1', NODE_HOSTNAME: 'n1' } });
  assert.deepEqual(ok.problems, []);
  const cm = (await get(`${cms('default')}/cm-c1-n1`)) as Obj & { data: Record<string, string> };
  assert.deepEqual(cm.data, { price: '$5 c1' });
  await run(node, 'uninstall', 'two-vars.yaml', { env: { CLUSTER_NAME: 'c1', NODE_HOSTNAME: 'n1' } });
});

test('a CRD and an object of its kind in one run: two files, and one file with both', { skip, timeout: 90_000 }, async () => {
  const node = newNode();
  // Dry run first, while the CRD does not exist: nothing is created.
  const dry = await run(node, 'install', 'nad-crd.yaml,macvlan-nad.yaml', { dryRun: true });
  assert.deepEqual(dry.problems, []);
  assert.deepEqual(summary(dry), [
    'nad-crd.yaml: installed (dry run) — 1 object: 1 to create',
    'macvlan-nad.yaml: installed (dry run) — 1 object: 1 to create; 1 not checked by the server (its CustomResourceDefinition or namespace is created by this run)',
  ]);
  assert.deepEqual(writes(dry), []);
  assert.equal(await get(`${CRD}/${NAD_CRD}`), undefined);

  const r = await run(node, 'install', 'nad-crd.yaml,macvlan-nad.yaml');
  assert.deepEqual(r.problems, []);
  assert.deepEqual(summary(r), ['nad-crd.yaml: installed — 1 object: 1 created', 'macvlan-nad.yaml: installed — 1 object: 1 created']);
  const nad = (await get(`${nads('default')}/macvlan-conf`)) as Obj & { spec: { config: string } };
  assert.ok(nad, 'the NetworkAttachmentDefinition exists, in namespace default');
  assert.match(nad.spec.config, /"type": "macvlan"/);

  // A CRD of another group, followed by an object of its kind in the same file.
  node.write(
    'widgets.yaml',
    [
      readFileSync(path.join(FIXTURES, 'nad-crd.yaml'), 'utf8')
        .replaceAll('network-attachment-definitions', 'widgets')
        .replaceAll('network-attachment-definition', 'widget')
        .replaceAll('NetworkAttachmentDefinition', 'Widget')
        .replaceAll('net-attach-def', 'wdg')
        .replaceAll('k8s.cni.cncf.io', 'test.cni-node.io')
        .replace('scope: Namespaced', 'scope: Cluster'),
      'apiVersion: test.cni-node.io/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: ignored-for-cluster-scope\nspec:\n  config: "{}"\n',
    ].join('\n---\n'),
  );
  const w = await run(node, 'install', 'widgets.yaml');
  assert.deepEqual(w.problems, []);
  assert.deepEqual(summary(w), ['widgets.yaml: installed — 2 objects: 2 created']);
  const widget = await get('/apis/test.cni-node.io/v1/widgets/w1');
  assert.ok(widget);
  assert.equal(widget.metadata.namespace, undefined, 'a cluster-scoped object never gets a namespace');

  // Uninstall: object first, then its CRD; a second uninstall finds everything gone.
  const u = await run(node, 'uninstall', 'nad-crd.yaml,macvlan-nad.yaml,widgets.yaml');
  assert.deepEqual(summary(u), [
    'widgets.yaml: removed — 2 objects: 2 deleted',
    'macvlan-nad.yaml: removed — 1 object: 1 deleted',
    'nad-crd.yaml: removed — 1 object: 1 deleted',
  ]);
  await waitGone(`${CRD}/${NAD_CRD}`);
  await waitGone(`${CRD}/widgets.test.cni-node.io`);
  const u2 = await run(node, 'uninstall', 'nad-crd.yaml,macvlan-nad.yaml,widgets.yaml');
  assert.deepEqual(u2.problems, []);
  assert.deepEqual(
    u2.reports.map((x) => x.result),
    ['absent', 'absent', 'absent'],
  );
});

test('install → uninstall leaves nothing behind (objects, CRD, record)', { skip, timeout: 90_000 }, async () => {
  const node = newNode();
  const list = 'multus-rbac.yaml,multus-cni-clusterrole.yaml,multus-cni-crd.yaml,nad-crd.yaml,macvlan-nad.yaml';
  const paths = [
    '/api/v1/namespaces/kube-system/serviceaccounts/multus-cni',
    `${CR}/multus-cni`,
    `${CRB}/multus-cni`,
    `${CR}/multus-cni-crd`,
    `${CRB}/multus-cni-node-1`,
    `${CRD}/${NAD_CRD}`,
    `${nads('default')}/macvlan-conf`,
  ];
  const r = await run(node, 'install', list);
  assert.deepEqual(r.problems, []);
  assert.equal(r.reports[0]?.detail, '3 objects: 3 created', 'the empty document in multus-rbac.yaml is skipped');
  for (const p of paths) assert.ok(await get(p), `${p} exists after install`);
  assert.equal(recordOf(node).length, 5);

  const u = await run(node, 'uninstall', list);
  assert.deepEqual(
    u.reports.map((x) => x.name),
    list.split(',').reverse(),
  );
  for (const p of paths) await waitGone(p);
  assert.deepEqual(recordOf(node), [], 'nothing left on record');
});

test(
  'apply with changed lists: added, removed, kept (re-applied when changed, dropped objects pruned), objects moved between files',
  { skip, timeout: 60_000 },
  async () => {
    const node = newNode();
    node.write('a.yaml', configMaps(['ap-a', 'ap-shared']));
    node.write('b.yaml', configMaps(['ap-b1', 'ap-b2']));
    const first = await run(node, 'install', 'a.yaml,b.yaml');
    assert.deepEqual(first.problems, []);
    for (const n of ['ap-a', 'ap-shared', 'ap-b1', 'ap-b2']) assert.ok(await get(`${cms('default')}/${n}`));
    const b1Before = await rv(`${cms('default')}/ap-b1`);

    // b.yaml changes (ap-b1 new data, ap-b2 dropped); ap-shared moves from a.yaml to c.yaml.
    node.write('b.yaml', configMaps(['ap-b1'], { a: '2' }));
    node.write('c.yaml', configMaps(['ap-c', 'ap-shared']));
    const r = await run(node, 'apply', 'b.yaml,c.yaml'); // current from the record: a.yaml,b.yaml
    assert.deepEqual(r.problems, []);
    assert.deepEqual(summary(r), [
      'b.yaml: updated — 1 object: 1 updated, 1 pruned (no longer in the manifest)',
      'c.yaml: updated — 2 objects: 1 created, 1 unchanged',
      'a.yaml: removed — 2 objects: 1 deleted, 1 kept (still in another manifest)',
    ]);
    const b1 = (await get(`${cms('default')}/ap-b1`)) as Obj & { data: Record<string, string> };
    assert.deepEqual(b1.data, { a: '2' });
    assert.notEqual(b1.metadata.resourceVersion, b1Before);
    assert.equal(await get(`${cms('default')}/ap-b2`), undefined, 'dropped from a kept manifest: pruned');
    assert.equal(await get(`${cms('default')}/ap-a`), undefined);
    assert.ok(await get(`${cms('default')}/ap-shared`), 'moved to c.yaml: kept');
    assert.ok(await get(`${cms('default')}/ap-c`));
    assert.deepEqual(
      recordOf(node).map((e) => e.name),
      ['b.yaml', 'c.yaml'],
    );

    // Explicit Desired:Current, as the original's ConfigMap watchers called it.
    const r2 = await run(node, 'apply', 'c.yaml:b.yaml,c.yaml');
    assert.deepEqual(summary(r2), ['c.yaml: unchanged — 2 objects: 2 unchanged', 'b.yaml: removed — 1 object: 1 deleted']);
    assert.deepEqual(
      writes(r2).map((e) => e.method),
      ['DELETE'],
    );
    assert.equal(await get(`${cms('default')}/ap-b1`), undefined);

    // Without the record (node configs dir not mounted), :Current is required.
    await assert.rejects(run(node, 'apply', 'c.yaml', { noRecord: true }), (e: unknown) => {
      assert.ok(e instanceof CniNodeError);
      assert.match(e.message, /record .* not available.*--manifests=desired\.yaml:current\.yaml/s);
      return true;
    });
    await run(node, 'uninstall', 'c.yaml');
    assert.equal(await get(`${cms('default')}/ap-c`), undefined);
  },
);

test('an invalid object: the server message, file and document number; nothing is changed', { skip, timeout: 30_000 }, async () => {
  const node = newNode();
  node.write('good.yaml', configMaps(['inv-good']));
  node.write(
    'bad.yaml',
    [configMaps(['inv-first']), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: inv-svc\nspec:\n  ports:\n  - port: 99999\n    protocol: TCP\n'].join(
      '\n---\n',
    ),
  );
  const r = await run(node, 'install', 'good.yaml,bad.yaml');
  assert.equal(r.problems.length, 1);
  const p = r.problems[0] as CniNodeError;
  assert.equal(p.kind, 'invalid');
  assert.match(
    p.message,
    /^manifest bad\.yaml document 2 \(Service inv-svc\): the API server refused the object as invalid: .*spec\.ports\[0\]\.port: Invalid value: 99999: must be between 1 and 65535/,
  );
  assert.deepEqual(writes(r), [], 'found by a server-side dry run before any change');
  assert.equal(await get(`${cms('default')}/inv-good`), undefined);
  assert.equal(await get(`${cms('default')}/inv-first`), undefined);

  // Not a Kubernetes object at all, and a kind no server serves: found without writing either.
  node.write('junk.yaml', 'apiVersion: v1\nkind: ConfigMap\ndata: {}\n---\n- a list\n---\nkey: [unclosed\n');
  node.write(
    'unknown.yaml',
    'apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata:\n  name: old\n---\napiVersion: example.com/v1\nkind: Foo\nmetadata:\n  name: foo\n',
  );
  const j = await run(node, 'install', 'junk.yaml,unknown.yaml');
  assert.deepEqual(
    j.problems.map((x) => x.message),
    [
      'manifest junk.yaml document 1: missing metadata.name',
      'manifest junk.yaml document 2: is not a Kubernetes object (a YAML mapping with apiVersion, kind and metadata.name)',
      j.problems[2]?.message,
      `manifest unknown.yaml document 1 (DaemonSet old): unknown kind "DaemonSet": apiVersion extensions/v1beta1 on the API server at ${api.cluster.server} has no such kind`,
      `manifest unknown.yaml document 2 (Foo foo): unknown kind "Foo": the API server at ${api.cluster.server} does not serve apiVersion example.com/v1 (is its CustomResourceDefinition installed? It may come earlier in the same run)`,
    ],
  );
  assert.match(j.problems[2]?.message ?? '', /^manifest junk\.yaml document 3: not valid YAML/);
  assert.deepEqual(writes(j), []);

  // Problems come in document order, whichever check found them.
  node.write(
    'mixed.yaml',
    'apiVersion: v1\nkind: Service\nmetadata:\n  name: mixed\nspec:\n  ports:\n  - port: 0\n    protocol: TCP\n---\napiVersion: example.com/v1\nkind: Foo\nmetadata:\n  name: f\n',
  );
  const m = await run(node, 'install', 'mixed.yaml');
  assert.equal(m.problems.length, 2);
  assert.match(m.problems[0]?.message ?? '', /^manifest mixed\.yaml document 1 \(Service mixed\): the API server refused the object as invalid/);
  assert.match(m.problems[1]?.message ?? '', /^manifest mixed\.yaml document 2 \(Foo f\): unknown kind "Foo"/);
});

test('forbidden: a token RBAC denies everything, and a service account with partial rights', { skip, timeout: 60_000 }, async () => {
  const denied = newNode({ token: api.cluster.tokens.denied });
  const r = await run(denied, 'install', 'multus-cni-crd.yaml');
  assert.equal(r.problems.length, 1);
  const p = r.problems[0] as KubeApiError;
  assert.ok(p instanceof KubeApiError);
  assert.equal(p.status, 403);
  assert.match(
    p.message,
    /^manifest multus-cni-crd\.yaml document 1 \(ClusterRoleBinding multus-cni-node-1\): forbidden: user "denied" may not patch clusterrolebindings\.rbac\.authorization\.k8s\.io "multus-cni-node-1" at the cluster scope; grant it with RBAC/,
  );
  assert.deepEqual(writes(r), []);

  // The service account may manage ServiceAccounts in kube-system, nothing else.
  await grantServiceAccount(api.cluster, 'test-partial', [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'create', 'patch', 'delete'] }]);

  const sa = newNode({ token: api.cluster.tokens.serviceAccount });
  const s = await run(sa, 'install', 'multus-rbac.yaml');
  assert.deepEqual(
    s.problems.map((x) => x.message.replace(/ The server said: .*/, '')),
    [
      'manifest multus-rbac.yaml document 3 (ClusterRole multus-cni): forbidden: service account kube-system/cni-node may not patch clusterroles.rbac.authorization.k8s.io "multus-cni" at the cluster scope; grant it with RBAC (a Role or ClusterRole with verb "patch" on resource "clusterroles" in apiGroup "rbac.authorization.k8s.io", bound to it).',
      'manifest multus-rbac.yaml document 4 (ClusterRoleBinding multus-cni): forbidden: service account kube-system/cni-node may not patch clusterrolebindings.rbac.authorization.k8s.io "multus-cni" at the cluster scope; grant it with RBAC (a Role or ClusterRole with verb "patch" on resource "clusterrolebindings" in apiGroup "rbac.authorization.k8s.io", bound to it).',
    ],
  );
  assert.match(s.problems[0]?.message ?? '', new RegExp(`The server said: .*User "${SERVICE_ACCOUNT_USER}" cannot patch resource "clusterroles"`));
  assert.deepEqual(writes(s), []);
  assert.equal(await get('/api/v1/namespaces/kube-system/serviceaccounts/multus-cni'), undefined, 'nothing created: the run stopped before any change');

  // What it may do, it does.
  sa.write('sa-only.yaml', 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: partial-sa\n  namespace: kube-system\n');
  const ok = await run(sa, 'install', 'sa-only.yaml');
  assert.deepEqual(summary(ok), ['sa-only.yaml: installed — 1 object: 1 created']);
  const del = await run(sa, 'uninstall', 'sa-only.yaml');
  assert.deepEqual(summary(del), ['sa-only.yaml: removed — 1 object: 1 deleted']);
  // Deleting in another namespace is forbidden when it is carried out.
  sa.write('other-ns.yaml', 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: elsewhere\n  namespace: default\n');
  await assert.rejects(
    run(sa, 'uninstall', 'other-ns.yaml'),
    /other-ns\.yaml document 1 \(ServiceAccount elsewhere\): forbidden: service account kube-system\/cni-node may not delete serviceaccounts "elsewhere" in namespace "default"/,
  );
});

test('allowed to apply but not to read: an unchanged manifest is not re-applied; a deleted object is created again', { skip, timeout: 60_000 }, async () => {
  // RBAC cannot scope `get` to a name made at run time (a per-node binding), so a
  // least-privilege role may allow create/patch only.
  await grantServiceAccount(api.cluster, 'test-no-read', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['create', 'patch'] }], 'default');

  const node = newNode({ token: api.cluster.tokens.serviceAccount });
  node.write('no-read.yaml', configMaps(['cni-no-read'], { a: '1' }, 'default'));
  const first = await run(node, 'install', 'no-read.yaml');
  assert.deepEqual(summary(first), ['no-read.yaml: installed — 1 object: 1 created']);
  const before = await rv(`${cms('default')}/cni-no-read`);

  const again = await run(node, 'install', 'no-read.yaml');
  assert.deepEqual(summary(again), ['no-read.yaml: unchanged — 1 object: 1 unchanged']);
  assert.deepEqual(writes(again), [], 'no write for an unchanged manifest');
  assert.equal(await rv(`${cms('default')}/cni-no-read`), before);

  // Deleted by someone else: the dry run answers 201, so it is created again.
  assert.equal((await api.cluster.request('DELETE', `${cms('default')}/cni-no-read`)).status, 200);
  await waitGone(`${cms('default')}/cni-no-read`);
  const recreated = await run(node, 'install', 'no-read.yaml');
  assert.deepEqual(summary(recreated), ['no-read.yaml: installed — 1 object: 1 created']);

  // A changed manifest is applied.
  node.write('no-read.yaml', configMaps(['cni-no-read'], { a: '2' }, 'default'));
  const changed = await run(node, 'install', 'no-read.yaml');
  assert.deepEqual(summary(changed), ['no-read.yaml: updated — 1 object: 1 updated']);
  assert.equal(((await get(`${cms('default')}/cni-no-read`)) as unknown as { data: Record<string, string> }).data['a'], '2');
});

test('the API server unreachable: a closed port fails in bounded time and names the URL', { skip, timeout: 60_000 }, async () => {
  const port = await closedPort();
  const node = newNode();
  const kc = readFileSync(node.kubeconfig, 'utf8').replace(api.cluster.server, `https://127.0.0.1:${port}`);
  writeFileSync(node.kubeconfig, kc);
  const started = Date.now();
  const r = await run(node, 'install', 'multus-cni-crd.yaml');
  const ms = Date.now() - started;
  assert.equal(r.problems.length, 1);
  const p = r.problems[0];
  assert.ok(p instanceof KubeUnreachableError, String(p));
  assert.match(
    p.message,
    new RegExp(
      `^cannot reach the Kubernetes API server at https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\\(6 attempts over [0-9.]+ s\\).*--kubeconfig ${node.kubeconfig.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
    ),
  );
  assert.equal(r.requests.length, 6, 'bounded: 6 attempts');
  assert.ok(ms >= 1_900 && ms < 15_000, `took ${ms} ms (backoff between ~3.9 and ~7.8 s expected)`);
});

test('retries ride out an API server restart', { skip, timeout: 90_000 }, async () => {
  const node = newNode();
  node.write('restart.yaml', configMaps(['restart-cm']));
  await api.cluster.stopApiServer();
  const restarting = (async () => {
    await new Promise((r) => setTimeout(r, 500));
    await api.cluster.startApiServer();
  })();
  const r = await run(node, 'install', 'restart.yaml', { retry: { attempts: 40, baseDelayMs: 200, maxDelayMs: 1_000 } });
  await restarting;
  assert.deepEqual(r.problems, []);
  assert.deepEqual(summary(r), ['restart.yaml: installed — 1 object: 1 created']);
  assert.ok(
    r.requests.some((e) => e.error === 'ECONNREFUSED'),
    'some attempts were refused while the server was down',
  );
  await run(node, 'uninstall', 'restart.yaml');
});

test('a no-op re-apply writes nothing: resourceVersions unchanged, also without the record', { skip, timeout: 60_000 }, async () => {
  const node = newNode();
  node.write(
    'noop.yaml',
    [
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: noop-ns\n',
      configMaps(['noop-cm'], { plugins: 'multus,macvlan' }, 'noop-ns'),
      'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: noop-sa\n  namespace: noop-ns\n',
      // 1000m is stored as "1": Kubernetes 1.20 re-stores such an object on every
      // server-side apply, even an unchanged one (checked below).
      [
        'apiVersion: apps/v1',
        'kind: DaemonSet',
        'metadata:\n  name: noop-ds\n  namespace: noop-ns',
        'spec:',
        '  selector:\n    matchLabels:\n      app: noop',
        '  template:',
        '    metadata:\n      labels:\n        app: noop',
        '    spec:',
        '      containers:',
        '      - name: c\n        image: example.invalid/cni-node:1\n        resources:\n          requests:\n            cpu: 1000m\n            memory: 64Mi',
        '      volumes:\n      - name: cnibin\n        hostPath:\n          path: /opt/cni/bin',
      ].join('\n'),
    ].join('\n---\n'),
  );
  const objects = [
    '/api/v1/namespaces/noop-ns',
    `${cms('noop-ns')}/noop-cm`,
    '/api/v1/namespaces/noop-ns/serviceaccounts/noop-sa',
    '/apis/apps/v1/namespaces/noop-ns/daemonsets/noop-ds',
  ];
  const first = await run(node, 'install', 'noop.yaml,multus-cni-clusterrole.yaml');
  assert.deepEqual(first.problems, []);
  assert.deepEqual(summary(first), ['noop.yaml: installed — 4 objects: 4 created', 'multus-cni-clusterrole.yaml: installed — 1 object: 1 created']);
  const paths = [...objects, `${CR}/multus-cni-crd`];
  const rvs = await Promise.all(paths.map(rv));

  // With the record: one GET per object (the DaemonSet also a dry run), no write.
  const again = await run(node, 'install', 'noop.yaml,multus-cni-clusterrole.yaml');
  assert.deepEqual(summary(again), ['noop.yaml: unchanged — 4 objects: 4 unchanged', 'multus-cni-clusterrole.yaml: unchanged — 1 object: 1 unchanged']);
  assert.deepEqual(writes(again), []);
  assert.deepEqual(await Promise.all(paths.map(rv)), rvs);

  // Without the record (:Current given, node configs dir not mounted): decided by dry runs, still no write.
  const blind = await run(node, 'apply', 'noop.yaml,multus-cni-clusterrole.yaml:noop.yaml,multus-cni-clusterrole.yaml', { noRecord: true });
  assert.deepEqual(summary(blind), ['noop.yaml: unchanged — 4 objects: 4 unchanged', 'multus-cni-clusterrole.yaml: unchanged — 1 object: 1 unchanged']);
  assert.deepEqual(writes(blind), []);
  assert.equal(blind.requests.filter((e) => e.dryRun).length, 5);
  assert.deepEqual(await Promise.all(paths.map(rv)), rvs);

  // Why the comparison is needed: a plain server-side apply of the same DaemonSet re-stores it on this server.
  const ds = objects[3] as string;
  const live = (await get(ds)) as Obj;
  await new Promise((r) => setTimeout(r, 1_100)); // managedFields times have one-second resolution
  const text = readFileSync(path.join(node.manifestsDir, 'noop.yaml'), 'utf8').split('\n---\n')[3] as string;
  const { parse } = await import('yaml');
  const plain = await api.cluster.request<Obj>('PATCH', `${ds}?fieldManager=cni-node&force=true`, parse(text), { contentType: 'application/apply-patch+yaml' });
  assert.equal(plain.status, 200, plain.text);
  assert.notEqual(plain.body.metadata.resourceVersion, live.metadata.resourceVersion, 'Kubernetes 1.20 bumps resourceVersion on this no-op apply');

  // A change made behind cni-node's back is repaired (the fast path does not hide it).
  const patched = await api.cluster.request('PATCH', `${cms('noop-ns')}/noop-cm`, { data: { plugins: 'tampered' } });
  assert.equal(patched.status, 200, patched.text);
  const repair = await run(node, 'install', 'noop.yaml');
  assert.deepEqual(summary(repair), ['noop.yaml: updated — 4 objects: 1 updated, 3 unchanged']);
  const cm = (await get(`${cms('noop-ns')}/noop-cm`)) as Obj & { data: Record<string, string> };
  assert.deepEqual(cm.data, { plugins: 'multus,macvlan' });

  // (The namespace stays: without a controller-manager a deleted namespace never finishes terminating.)
  await run(node, 'uninstall', 'multus-cni-clusterrole.yaml');
});

test('dry run changes nothing: install, apply with changes, uninstall', { skip, timeout: 60_000 }, async () => {
  const node = newNode();
  node.write('dry.yaml', configMaps(['dry-a', 'dry-b']));
  const d1 = await run(node, 'install', 'dry.yaml', { dryRun: true });
  assert.deepEqual(summary(d1), ['dry.yaml: installed (dry run) — 2 objects: 2 to create']);
  assert.deepEqual(writes(d1), []);
  assert.ok(d1.requests.some((e) => e.dryRun));
  assert.equal(await get(`${cms('default')}/dry-a`), undefined);
  assert.deepEqual(recordOf(node), []);

  await run(node, 'install', 'dry.yaml');
  const rvs = await Promise.all(['dry-a', 'dry-b'].map((n) => rv(`${cms('default')}/${n}`)));
  node.write('dry.yaml', configMaps(['dry-a'], { a: 'changed' }));
  const recordBefore = readFileSync(path.join(node.hostConfigsDir, '.cni-node-state'), 'utf8');
  const d2 = await run(node, 'apply', 'dry.yaml', { dryRun: true });
  assert.deepEqual(summary(d2), ['dry.yaml: updated (dry run) — 1 object: 1 to update, 1 to prune (no longer in the manifest)']);
  const d3 = await run(node, 'uninstall', 'dry.yaml', { dryRun: true });
  assert.deepEqual(summary(d3), ['dry.yaml: removed (dry run) — 2 objects: 2 to delete']);
  assert.deepEqual(writes(d2), []);
  assert.deepEqual(writes(d3), []);
  assert.deepEqual(await Promise.all(['dry-a', 'dry-b'].map((n) => rv(`${cms('default')}/${n}`))), rvs);
  assert.equal(readFileSync(path.join(node.hostConfigsDir, '.cni-node-state'), 'utf8'), recordBefore);

  node.write('dry.yaml', configMaps(['dry-a', 'dry-b']));
  await run(node, 'uninstall', 'dry.yaml');
});

test('uninstall of a manifest that is gone or no longer renders removes what the record says it created', { skip, timeout: 30_000 }, async () => {
  const node = newNode();
  node.write('gone.yaml', configMaps(['gone-${SUFFIX}']));
  await run(node, 'install', 'gone.yaml', { env: { SUFFIX: 'x' } });
  assert.ok(await get(`${cms('default')}/gone-x`));
  const r = await run(node, 'uninstall', 'gone.yaml'); // SUFFIX unset now
  assert.deepEqual(r.problems, []);
  assert.deepEqual(summary(r), ['gone.yaml: removed — 1 object: 1 deleted']);
  assert.match(r.warnings.join('\n'), /SUFFIX.*removing the 1 object\(s\) cni-node recorded creating from it instead/s);
  assert.equal(await get(`${cms('default')}/gone-x`), undefined);
  // Without a record, a missing file is an error.
  rmSync(path.join(node.manifestsDir, 'gone.yaml'));
  const missing = await run(node, 'uninstall', 'gone.yaml');
  assert.match(missing.problems[0]?.message ?? '', /manifest gone\.yaml not found in /);
});

test('in-cluster credentials: service account namespace, and a rotated token is used at once', { skip, timeout: 60_000 }, async () => {
  // A service account mount laid out as the kubelet does it: files behind a ..data symlink swapped atomically.
  const node = newNode();
  const sa = path.join(node.root, 'serviceaccount');
  mkdirSync(sa);
  const project = (gen: string, token: string): void => {
    const dir = path.join(sa, `..${gen}`);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'token'), token);
    writeFileSync(path.join(dir, 'ca.crt'), api.cluster.caData);
    writeFileSync(path.join(dir, 'namespace'), 'kube-system');
    symlinkSync(`..${gen}`, path.join(sa, '..data_tmp'));
    renameSync(path.join(sa, '..data_tmp'), path.join(sa, '..data'));
  };
  project('gen1', api.cluster.tokens.denied);
  for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(`..data/${f}`, path.join(sa, f));
  const url = new URL(api.cluster.server);
  const env = {
    KUBERNETES_SERVICE_HOST: url.hostname,
    KUBERNETES_SERVICE_PORT: url.port,
    CNI_NODE_SERVICE_ACCOUNT_DIR: sa,
    HOME: node.root,
    KUBECONFIG: undefined,
  };

  const client = await createKubeClient({ env });
  try {
    assert.equal(client.server, api.cluster.server);
    assert.equal(client.namespace, 'kube-system');
    assert.match(client.config.source, /^in-cluster service account/);
    const denied = await client.request({ method: 'GET', path: '/api/v1/namespaces/kube-system/configmaps', accept: [403] });
    assert.equal(denied.status, 403);
    project('gen2', api.cluster.tokens.admin); // the kubelet rotates the token
    const allowed = await client.request({ method: 'GET', path: '/api/v1/namespaces/kube-system/configmaps' });
    assert.equal(allowed.status, 200, 'the new token is read on the next request');
  } finally {
    client.close();
  }

  // A namespaced object without a namespace goes into the pod's namespace.
  node.write('pod-ns.yaml', configMaps(['in-pod-namespace']));
  const r = await run(node, 'install', 'pod-ns.yaml', { env: { ...env, CNI_NODE_SERVICE_ACCOUNT_DIR: sa }, kubeconfig: '' });
  assert.deepEqual(r.problems, []);
  assert.ok(await get(`${cms('kube-system')}/in-pod-namespace`));
  assert.deepEqual(recordOf(node)[0]?.meta?.objects, [{ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system', name: 'in-pod-namespace' }]);
  await run(node, 'uninstall', 'pod-ns.yaml', { env: { ...env, CNI_NODE_SERVICE_ACCOUNT_DIR: sa }, kubeconfig: '' });
  assert.equal(await get(`${cms('kube-system')}/in-pod-namespace`), undefined);
});

test('watch: the changes of one object, until stopped', { skip, timeout: 30_000 }, async () => {
  const client = await createKubeClient({ kubeconfig: api.cluster.writeKubeconfig(api.cluster.tokens.admin), env: {} });
  const ac = new AbortController();
  const seen: string[] = [];
  const watcher = listWatch({
    client,
    path: cms('default'),
    fieldSelector: 'metadata.name=watched',
    signal: ac.signal,
    onChange: (objects) => seen.push(objects.map((o) => `${o.metadata.name}:${(o as Obj & { data?: Record<string, string> }).data?.['v'] ?? ''}`).join(',')),
  });
  const seenAfter = async (n: number): Promise<void> => {
    for (const deadline = Date.now() + 10_000; seen.length < n && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
  };
  try {
    assert.equal(await watcher.synced, true);
    assert.equal(
      (await api.cluster.request('POST', cms('default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'watched' }, data: { v: '1' } })).status,
      201,
    );
    await seenAfter(2);
    assert.equal((await api.cluster.request('PATCH', `${cms('default')}/watched`, { data: { v: '2' } })).status, 200);
    await seenAfter(3);
    assert.equal((await api.cluster.request('DELETE', `${cms('default')}/watched`)).status, 200);
    await seenAfter(4);
    ac.abort();
    await watcher.done;
    assert.deepEqual(seen, ['', 'watched:1', 'watched:2', '']);
  } finally {
    ac.abort();
    client.close();
  }
});

// ---------------------------------------------------------------------------
// The CLI as a process (bin/cni-node, after `npm run build`).

const cliSkip = skip ?? (existsSync(path.join(REPO_ROOT, 'dist/cni-node.mjs')) ? undefined : 'the CLI is not built: run `npm run build`');

function cni(node: Node, args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const fullEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({
    PATH: process.env['PATH'],
    HOME: node.root,
    ...node.env,
    CNI_NODE_MANIFESTS_DIR: node.manifestsDir,
    CNI_NODE_HOST_CONFIGS_DIR: node.hostConfigsDir,
    KUBECONFIG: node.kubeconfig,
    ...env,
  })) {
    if (v !== undefined) fullEnv[k] = v;
  }
  return new Promise((resolve) => {
    execFile(CLI, args, { env: fullEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('CLI: install, no-op re-install, apply, dry run, uninstall', { skip: cliSkip, timeout: 90_000 }, async () => {
  const node = newNode({ env: { NODE_HOSTNAME: 'cli-1' } });
  node.write('cli.yaml', configMaps(['cli-a', 'cli-b']));
  const i = await cni(node, ['install', '--manifests=multus-cni-crd.yaml,cli.yaml']);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /multus-cni-crd\.yaml.*installed.*1 object: 1 created/);
  assert.match(i.stdout, /cli\.yaml.*installed.*2 objects: 2 created/);
  assert.ok(await get(`${CRB}/multus-cni-cli-1`));
  const rvs = await Promise.all(['cli-a', 'cli-b'].map((n) => rv(`${cms('default')}/${n}`)));

  const again = await cni(node, ['install', '--manifests=multus-cni-crd.yaml,cli.yaml']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /cli\.yaml.*unchanged/);
  assert.deepEqual(await Promise.all(['cli-a', 'cli-b'].map((n) => rv(`${cms('default')}/${n}`))), rvs);

  node.write('cli.yaml', configMaps(['cli-a']));
  const dry = await cni(node, ['apply', '--dry-run', '--manifests=cli.yaml']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /cli\.yaml/);
  assert.match(dry.stdout, /multus-cni-crd\.yaml/);
  assert.ok(await get(`${CRB}/multus-cni-cli-1`), 'dry run: still there');
  assert.ok(await get(`${cms('default')}/cli-b`), 'dry run: still there');

  const apply = await cni(node, ['apply', '--manifests=cli.yaml']);
  assert.equal(apply.code, 0, apply.stderr);
  assert.equal(await get(`${CRB}/multus-cni-cli-1`), undefined, 'removed: no longer desired');
  assert.equal(await get(`${cms('default')}/cli-b`), undefined, 'pruned');

  const u = await cni(node, ['uninstall', '--manifests=cli.yaml']);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(await get(`${cms('default')}/cli-a`), undefined);
});

test('CLI: failures exit 1 with a message for the operator', { skip: cliSkip, timeout: 90_000 }, async () => {
  const node = newNode({ env: { NODE_HOSTNAME: 'cli-2' } });
  const missing = await cni(node, ['install', '--manifests=multus-cni-crd.yaml'], { NODE_HOSTNAME: undefined });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /multus-cni-crd\.yaml: environment variable not set: NODE_HOSTNAME/);

  const denied = await cni(node, ['install', '--manifests=multus-cni-crd.yaml', `--kubeconfig=${api.cluster.writeKubeconfig(api.cluster.tokens.denied)}`]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /forbidden: user "denied" may not patch clusterrolebindings/);

  node.write('bad.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: 0\n    protocol: TCP\n');
  const invalid = await cni(node, ['install', '--manifests=bad.yaml']);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /bad\.yaml document 1 \(Service bad\): the API server refused the object as invalid: .*spec\.ports\[0\]\.port/);

  const port = await closedPort();
  const kc = path.join(node.root, 'closed.kubeconfig');
  writeFileSync(kc, readFileSync(node.kubeconfig, 'utf8').replace(api.cluster.server, `https://127.0.0.1:${port}`));
  const started = Date.now();
  const down = await cni(node, ['install', '--manifests=multus-cni-crd.yaml'], { KUBECONFIG: kc });
  assert.equal(down.code, 1);
  assert.match(down.stderr, new RegExp(`cannot reach the Kubernetes API server at https://127\\.0\\.0\\.1:${port}`));
  assert.ok(Date.now() - started < 20_000);
  assert.equal(await get(`${CRB}/multus-cni-cli-2`), undefined);
});
