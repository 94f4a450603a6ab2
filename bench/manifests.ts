// Benchmark: Kubernetes objects from manifests against a real kube-apiserver 1.20.2.
//
//   npm run build && node build/bench/manifests.js [--rounds=N]   (or: npm run bench -- manifests)
//
// Starts a test cluster (test/e2e/support/cluster.ts; needs root and
// `scripts/test-cluster.sh provision`), then times, over N rounds:
//   - applying 50 objects (a CRD and objects of its kind, RBAC, service accounts,
//     config maps) into an empty cluster, and re-applying them unchanged,
//     in process (the manifest handler driven as the engine drives it) and as a
//     whole `bin/cni-node` process;
//   - the re-apply without cni-node's record (decided by server-side dry runs);
//   - uninstall.
// Requests are counted at the API server (apiserver_request_total, JSON requests:
// the server's own loopback clients use protobuf) and, in process, by the client.
// The no-op re-apply must write nothing: resourceVersions are checked too.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { parseListSpec } from '../src/core/lists.js';
import { plan, type Mode } from '../src/core/plan.js';
import type { EngineOptions, ItemReport, Reporter } from '../src/core/contracts.js';
import type { RequestEvent } from '../src/kube/client.js';
import { createManifestHandler } from '../src/kube/manifest-handler.js';
import { NodeRecord } from '../src/node/record.js';
import { clusterUnavailableReason, startTestCluster } from '../test/e2e/support/cluster.js';
import { CNI_NODE_ARGS, NODE as NODE_BIN, ROOT, machine, median, round, writeResults } from './lib.js';

const execFileP = promisify(execFile);
const root = ROOT;
const reason = clusterUnavailableReason();
if (reason) {
  console.error(`bench manifests: SKIPPED: ${reason}`);
  process.exit(0);
}
const rounds = Number(process.argv.find((a) => a.startsWith('--rounds='))?.split('=')[1] ?? 5);
const haveCli: boolean = true;

// --- the 50 objects ---------------------------------------------------------
const NODE = 'bench-node';
const files: Record<string, string> = {
  '01-nad-crd.yaml': readFileSync(path.join(root, 'test/fixtures/manifests/nad-crd.yaml'), 'utf8'),
  '02-rbac.yaml': [
    ...range(5).map(
      (i) =>
        `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: bench-role-${i}\nrules:\n- apiGroups: ["k8s.cni.cncf.io"]\n  resources: ["*"]\n  verbs: ["get", "list", "watch"]\n`,
    ),
    ...range(10).map(
      (i) =>
        `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: bench-\${NODE_HOSTNAME}-${i}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: bench-role-${i % 5}\nsubjects:\n- kind: User\n  name: system:node:\${NODE_HOSTNAME}\n  apiGroup: rbac.authorization.k8s.io\n`,
    ),
  ].join('---\n'),
  '03-service-accounts.yaml': range(10)
    .map((i) => `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bench-sa-${i}\n  namespace: kube-system\n`)
    .join('---\n'),
  '04-config-maps.yaml': range(15)
    .map(
      (i) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-cm-${i}\n  labels: {app: bench}\ndata:\n  plugins: multus,macvlan\n  index: "${i}"\n`,
    )
    .join('---\n'),
  '05-nads.yaml': range(9)
    .map(
      (i) =>
        `apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: bench-nad-${i}\nspec:\n  config: '{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "ipam": {"type": "host-local", "subnet": "10.${i}.0.0/16"}}'\n`,
    )
    .join('---\n'),
};
const LIST = Object.keys(files).join(',');
const objectPaths = [
  '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/network-attachment-definitions.k8s.cni.cncf.io',
  ...range(5).map((i) => `/apis/rbac.authorization.k8s.io/v1/clusterroles/bench-role-${i}`),
  ...range(10).map((i) => `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/bench-${NODE}-${i}`),
  ...range(10).map((i) => `/api/v1/namespaces/kube-system/serviceaccounts/bench-sa-${i}`),
  ...range(15).map((i) => `/api/v1/namespaces/default/configmaps/bench-cm-${i}`),
  ...range(9).map((i) => `/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/bench-nad-${i}`),
];
if (objectPaths.length !== 50) throw new Error(`expected 50 objects, have ${objectPaths.length}`);

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

// --- set-up -----------------------------------------------------------------
const cluster = await startTestCluster();
const dir = mkdtempSync(path.join(os.tmpdir(), 'cni-node-bench-manifests-'));
const manifestsDir = path.join(dir, 'manifests');
mkdirSync(manifestsDir);
for (const [name, text] of Object.entries(files)) writeFileSync(path.join(manifestsDir, name), text);
const kubeconfig = cluster.writeKubeconfig(cluster.tokens.admin, path.join(dir, 'kubeconfig'));
const env = { NODE_HOSTNAME: NODE, CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(dir, 'no-service-account') };
const quiet = {
  item() {},
  warn(m: string) {
    console.error(`warning: ${m}`);
  },
  info() {},
  error(m: string) {
    console.error(m);
  },
} as unknown as Reporter;

/** In process: the manifest handler driven as the engine drives it. */
interface Counts {
  requests: number;
  writes: number;
  dryRuns: number;
}

async function inProcess(hostDir: string, mode: Mode, spec: string, { noRecord = false } = {}): Promise<{ counts: Counts; reports: ItemReport[] }> {
  const counts: Counts = { requests: 0, writes: 0, dryRuns: 0 };
  const record = noRecord ? undefined : await NodeRecord.load(hostDir, quiet);
  const options: EngineOptions = {
    dirs: { pluginsDir: '/nonexistent', hostPluginsDir: '/nonexistent', configsDir: '/nonexistent', hostConfigsDir: hostDir, manifestsDir },
    dryRun: false,
    waitMs: 0,
    tolerateMissingPointers: false,
    env,
    kubeconfig,
    reporter: quiet,
  };
  const handler = await createManifestHandler({
    options,
    record,
    clientOptions: {
      onRequest: (e: RequestEvent) => {
        counts.requests++;
        if (e.write) counts.writes++;
        if (e.dryRun) counts.dryRuns++;
      },
    },
  });
  const reports: ItemReport[] = [];
  try {
    const list = parseListSpec(spec, 'manifests');
    const current = list.current ?? (mode === 'apply' ? await handler.recorded() : []);
    const actions = plan(mode, { manifest: { desired: list.desired, current } });
    const { problems } = await handler.prepare(actions);
    if (problems.length > 0) throw new Error(problems.map((p) => p.describe()).join('\n'));
    for (const a of actions) reports.push(await handler.execute(a, false));
    await handler.commit();
  } finally {
    await handler.close();
  }
  return { counts, reports };
}

// In-cluster credentials as a pod has them (what the DaemonSet uses): service host/port and a service account mount.
const serviceAccountDir = path.join(dir, 'serviceaccount');
mkdirSync(serviceAccountDir);
writeFileSync(path.join(serviceAccountDir, 'token'), cluster.tokens.admin);
writeFileSync(path.join(serviceAccountDir, 'ca.crt'), cluster.caData);
writeFileSync(path.join(serviceAccountDir, 'namespace'), 'default');
const apiUrl = new URL(cluster.server);
const inClusterEnv = { KUBERNETES_SERVICE_HOST: apiUrl.hostname, KUBERNETES_SERVICE_PORT: apiUrl.port, CNI_NODE_SERVICE_ACCOUNT_DIR: serviceAccountDir };

async function cniNode(hostDir: string, args: string[], { inCluster = false } = {}): Promise<string> {
  const credentials = inCluster ? inClusterEnv : { KUBECONFIG: kubeconfig };
  const r = await execFileP(NODE_BIN, [...CNI_NODE_ARGS, ...args], {
    env: { PATH: process.env['PATH'], HOME: dir, ...env, ...credentials, CNI_NODE_MANIFESTS_DIR: manifestsDir, CNI_NODE_HOST_CONFIGS_DIR: hostDir },
  });
  return r.stdout;
}

/** apiserver_request_total from JSON clients (ours), by kind of request. */
async function serverCounts(): Promise<Counts> {
  const m = await cluster.request('GET', '/metrics');
  const out: Counts = { requests: 0, writes: 0, dryRuns: 0 };
  for (const line of m.text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{') || !line.includes('contentType="application/json"')) continue;
    if (line.includes('resource="leases"')) continue;
    const n = Number(line.slice(line.lastIndexOf(' ') + 1));
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? '';
    const dry = /dry_run="([^"]*)"/.exec(line)?.[1] ?? '';
    out.requests += n;
    if (dry !== '') out.dryRuns += n;
    else if (!['GET', 'LIST', 'WATCH', 'CONNECT'].includes(verb)) out.writes += n;
  }
  return out;
}

async function resourceVersions(): Promise<string[]> {
  return Promise.all(
    objectPaths.map(async (p) => {
      const r = await cluster.request('GET', p);
      if (r.status !== 200) throw new Error(`${p}: ${r.status} ${r.text}`);
      return (r.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    }),
  );
}

async function allGone(): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const left = (await Promise.all(objectPaths.map((p) => cluster.request('GET', p)))).filter((r) => r.status !== 404).length;
    if (left === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('objects left after uninstall');
}

/** Times fn, with the API server's request counters around it. */
interface Row {
  ms: number[];
  server: Counts[];
  client: Counts | undefined;
}

async function measure<T>(rows: Record<string, Row>, name: string, fn: () => Promise<T>): Promise<T> {
  const before = await serverCounts();
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  const after = await serverCounts();
  // (/metrics, a non-resource URL, is not in apiserver_request_total.)
  const server = { requests: after.requests - before.requests, writes: after.writes - before.writes, dryRuns: after.dryRuns - before.dryRuns };
  const row = (rows[name] ??= { ms: [], server: [], client: undefined });
  row.ms.push(ms);
  row.server.push(server);
  const counts = (result as { counts?: Counts } | undefined)?.counts;
  if (counts) row.client = counts;
  return result;
}

// --- runs -------------------------------------------------------------------
const rows: Record<string, Row> = {};
const rvChecks: { inProcess: number[]; cli: number[] } = { inProcess: [], cli: [] };
try {
  for (let round = 0; round < rounds; round++) {
    const hostDir = mkdtempSync(path.join(dir, 'host-'));
    await measure(rows, 'in process: apply 50 objects (create)', () => inProcess(hostDir, 'install', LIST));
    const rv1 = await resourceVersions();
    await measure(rows, 'in process: re-apply unchanged', () => inProcess(hostDir, 'install', LIST));
    const rv2 = await resourceVersions();
    await measure(rows, 'in process: re-apply unchanged, no record', () => inProcess(hostDir, 'apply', `${LIST}:${LIST}`, { noRecord: true }));
    const rv3 = await resourceVersions();
    rvChecks.inProcess.push(rv1.filter((v, i) => v === rv2[i] && v === rv3[i]).length);
    await measure(rows, 'in process: uninstall 50 objects', () => inProcess(hostDir, 'uninstall', LIST));
    await allGone();

    if (haveCli) {
      const cliHost = mkdtempSync(path.join(dir, 'host-cli-'));
      await measure(rows, 'cni-node process: install 50 objects', () => cniNode(cliHost, ['install', `--manifests=${LIST}`]));
      const c1 = await resourceVersions();
      await measure(rows, 'cni-node process: re-install unchanged', () => cniNode(cliHost, ['install', `--manifests=${LIST}`]));
      const c2 = await resourceVersions();
      await measure(rows, 'cni-node process: re-install unchanged, in-cluster credentials', () =>
        cniNode(cliHost, ['install', `--manifests=${LIST}`], { inCluster: true }),
      );
      const c3 = await resourceVersions();
      rvChecks.cli.push(c1.filter((v, i) => v === c2[i] && v === c3[i]).length);
      await measure(rows, 'cni-node process: uninstall 50 objects', () => cniNode(cliHost, ['uninstall', `--manifests=${LIST}`]));
      await allGone();
      await measure(rows, 'node -e 0 (start-up floor)', () => execFileP(NODE_BIN, ['-e', '0']));
    }
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}

// --- report -----------------------------------------------------------------
const header = ['case', 'median ms', 'min ms', 'requests', 'writes', 'dry runs'];
const table = Object.entries(rows).map(([name, r]) => {
  const s = r.server[r.server.length - 1] as Counts;
  return [name, median(r.ms).toFixed(0), Math.min(...r.ms).toFixed(0), String(s.requests), String(s.writes), String(s.dryRuns)];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
console.log(`manifests against kube-apiserver 1.20.2 on loopback, ${rounds} round(s); requests counted at the API server (last round)`);
console.log(fmt(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of table) console.log(fmt(row));
const ok = (xs: number[]) => xs.every((n) => n === 50);
console.log(
  `resourceVersions unchanged by the no-op re-applies: in process ${rvChecks.inProcess.join(', ')} of 50${haveCli ? `; cni-node process ${rvChecks.cli.join(', ')} of 50` : ' (CLI not built: run `npm run build`)'}`,
);
const noopWrites = [
  rows['in process: re-apply unchanged'],
  rows['in process: re-apply unchanged, no record'],
  rows['cni-node process: re-install unchanged'],
  rows['cni-node process: re-install unchanged, in-cluster credentials'],
]
  .filter((r): r is Row => r !== undefined)
  .flatMap((r) => r.server.map((s) => s.writes));
const file = writeResults('manifests', {
  benchmark: 'manifests',
  date: new Date().toISOString(),
  machine: machine(),
  rounds,
  cases: Object.fromEntries(
    Object.entries(rows).map(([name, r]) => [
      name,
      { medianMs: round(median(r.ms)), minMs: round(Math.min(...r.ms)), lastRoundAtServer: r.server[r.server.length - 1], client: r.client },
    ]),
  ),
  resourceVersionsUnchanged: rvChecks,
});
console.log(`results: ${file}`);
if (!ok(rvChecks.inProcess) || !ok(rvChecks.cli) || noopWrites.some((w) => w !== 0)) {
  console.error('FAIL: a no-op re-apply wrote to the API server');
  process.exit(1);
}
