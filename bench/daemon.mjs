// Daemon benchmark (issue 4): `cni-node run` against the real test kube-apiserver
// (scripts/test-cluster.sh provision), with Debian's CNI plugins as the image's
// plugins and temporary node dirs.
//
//   1. event-to-node latency, p50/p99 over BENCH_CHANGES (100) changes:
//        a. ConfigMap change: from just before the PATCH is sent (so API server time
//           is included) until the plugin is on (or gone from) the node dir;
//        b. pointer-target change: from the rename that replaces 10-calico.conflist
//           until 05-multus.conf holds the new content;
//   2. API requests per change: counted by the daemon's own client
//      (cni_node_api_requests_total) and at the API server (apiserver_request_total,
//      the bench's own PATCHes and scrapes taken out), and the open watches
//      (apiserver_longrunning_gauge);
//   3. idle CPU and RSS of the daemon process over BENCH_IDLE_SECONDS (60; the issue
//      asks for 10 minutes: BENCH_IDLE_SECONDS=600), read from /proc, plus the
//      reconciles and API requests made while idle (both should be 0).
//
// Run: npm run build && node bench/daemon.mjs   (needs root and the provisioned test cluster)
/* global fetch */
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const root = new URL('..', import.meta.url).pathname;
const CLI = process.env.CNI_NODE_BENCH_CLI || path.join(root, 'bin/cni-node');
const PLUGINS = process.env.BENCH_PLUGINS_DIR ?? '/usr/lib/cni';
const N = Number(process.env.BENCH_CHANGES ?? 100);
const IDLE_S = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const NS = 'kube-system';
const CM = 'bench-cni';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { clusterUnavailableReason, startTestCluster } = await import(path.join(root, 'build/test/e2e/support/cluster.js'));
const unavailable = clusterUnavailableReason();
if (unavailable) {
  console.log(`bench/daemon: skipped: ${unavailable}`);
  process.exit(0);
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const fmt = (xs) =>
  `p50 ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms, min ${Math.min(...xs).toFixed(1)} ms (n=${xs.length})`;

/** Resolves when check() is true; checked on every event in `dir` and every 20 ms. */
function waitFor(dir, check, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      w.close();
      clearInterval(iv);
      clearTimeout(to);
      if (err) reject(err);
      else resolve(performance.now());
    };
    const probe = () =>
      check().then(
        (ok) => ok && finish(),
        () => undefined,
      );
    const w = watch(dir, () => void probe());
    const iv = setInterval(probe, 20);
    const to = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    void probe();
  });
}

const exists = (p) => stat(p).then(() => true, () => false);

/** Sums a Prometheus metric's samples whose labels include all of `labels`. */
function metricSum(text, name, labels = {}, exclude = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    if (Object.entries(exclude).some(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function procStats(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMb: rssKb / 1024 };
}

const cluster = await startTestCluster();
const work = await mkdtemp(path.join(os.tmpdir(), 'cni-node-bench-run-'));
let daemon;
try {
  const rbac = [
    [`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'cni-node-bench', namespace: NS },
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create'] },
        { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
      ],
    }],
    [`/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'cni-node-bench', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cni-node-bench' },
      subjects: [{ kind: 'ServiceAccount', name: 'cni-node', namespace: NS }],
    }],
  ];
  for (const [p, body] of rbac) {
    const r = await cluster.request('POST', p, body);
    if (r.status !== 201) throw new Error(`RBAC: ${r.text}`);
  }
  const dirs = { bin: path.join(work, 'bin'), netd: path.join(work, 'net.d'), templates: path.join(work, 'templates'), sa: path.join(work, 'sa') };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  await writeFile(path.join(dirs.sa, 'token'), cluster.tokens.serviceAccount);
  await writeFile(path.join(dirs.sa, 'ca.crt'), cluster.caData);
  await writeFile(path.join(dirs.sa, 'namespace'), NS);
  const calico = (name) => JSON.stringify({ cniVersion: '0.4.0', name, plugins: [{ type: 'bridge', bridge: 'cni0' }, { type: 'portmap', capabilities: { portMappings: true } }] });
  await writeFile(path.join(dirs.netd, '10-calico.conflist'), calico('k8s-initial'));
  await writeFile(path.join(dirs.templates, '05-multus.conf'), '{"cniVersion":"0.4.0","name":"multus-cni-network","type":"bridge","delegates":[__10-calico.conflist__]}');
  const cmBody = (plugins) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CM, namespace: NS }, data: { plugins, configs: '05-multus.conf', manifests: '' } });
  const created = await cluster.request('POST', `/api/v1/namespaces/${NS}/configmaps`, cmBody('bridge,portmap'));
  if (created.status !== 201) throw new Error(created.text);

  const watchesBefore = metricSum((await cluster.request('GET', '/metrics')).text, 'apiserver_longrunning_gauge', { resource: 'configmaps', verb: 'WATCH' });
  const { KUBECONFIG: _k, ...env } = process.env;
  const child = spawn(
    CLI,
    ['run', `--config-map=${NS}/${CM}`, `--plugins-dir=${PLUGINS}`, `--host-plugins-dir=${dirs.bin}`, `--configs-dir=${dirs.templates}`, `--host-configs-dir=${dirs.netd}`, '--listen=127.0.0.1:0'],
    {
      env: { ...env, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(cluster.server).port, CNI_NODE_SERVICE_ACCOUNT_DIR: dirs.sa, POD_NAME: 'cni-node-bench', POD_NAMESPACE: NS },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  daemon = child;
  let log = '';
  child.stdout.on('data', (b) => (log += b));
  child.stderr.on('data', (b) => (log += b));
  let address;
  for (let i = 0; i < 500 && !address; i++) {
    address = /metrics on (127\.0\.0\.1:\d+)/.exec(log)?.[1];
    await sleep(20);
  }
  if (!address) throw new Error(`the daemon did not start:\n${log}`);
  const scrape = async () => (await fetch(`http://${address}/metrics`)).text();
  for (let i = 0; ; i++) {
    if ((await fetch(`http://${address}/readyz`)).status === 200) break;
    if (i > 500) throw new Error(`not ready:\n${log}`);
    await sleep(20);
  }
  const serverMetrics = async () => (await cluster.request('GET', '/metrics')).text;

  console.log(`cni-node run benchmark: ${os.cpus().length} cores, node ${process.version}, kube-apiserver 1.20.2 on loopback, ${N} changes each\n`);

  // ---- 1a. ConfigMap change → node ----
  const d0 = await scrape();
  const s0 = await serverMetrics();
  const cmLat = [];
  const cmLatFromAck = [];
  const vlan = path.join(dirs.bin, 'vlan');
  for (let i = 0; i < N; i++) {
    const add = i % 2 === 0;
    const t0 = performance.now();
    const r = await cluster.request('PATCH', `/api/v1/namespaces/${NS}/configmaps/${CM}`, { data: { plugins: add ? 'bridge,portmap,vlan' : 'bridge,portmap' } });
    const tAck = performance.now();
    if (r.status !== 200) throw new Error(r.text);
    const t1 = await waitFor(dirs.bin, async () => (await exists(vlan)) === add);
    cmLat.push(t1 - t0);
    cmLatFromAck.push(Math.max(0, t1 - tAck));
    await sleep(30);
  }
  await sleep(500);
  const d1 = await scrape();
  const s1 = await serverMetrics();

  // ---- 1b. pointer target change → re-rendered config ----
  const ptrLat = [];
  const multus = path.join(dirs.netd, '05-multus.conf');
  for (let i = 0; i < N; i++) {
    const name = `k8s-pod-network-${i}`;
    const tmp = path.join(dirs.netd, '.calico.tmp');
    await writeFile(tmp, calico(name));
    const t0 = performance.now();
    await rename(tmp, path.join(dirs.netd, '10-calico.conflist'));
    const t1 = await waitFor(dirs.netd, async () => (await readFile(multus, 'utf8')).includes(`"${name}"`));
    ptrLat.push(t1 - t0);
    await sleep(30);
  }
  await sleep(500);
  const d2 = await scrape();

  console.log(`ConfigMap change → node (PATCH sent → file)   ${fmt(cmLat)}`);
  console.log(`ConfigMap change → node (PATCH answered → file) ${fmt(cmLatFromAck)}`);
  console.log(`pointer target rename → re-rendered config      ${fmt(ptrLat)}`);
  console.log(`  goal: within 1 s of the event: ${Math.max(...cmLat, ...ptrLat) < 1000 ? 'met for every change' : 'NOT met for every change'}`);

  // ---- 2. API requests per change ----
  const daemonRequests = metricSum(d1, 'cni_node_api_requests_total') - metricSum(d0, 'cni_node_api_requests_total');
  const daemonRequestsPtr = metricSum(d2, 'cni_node_api_requests_total') - metricSum(d1, 'cni_node_api_requests_total');
  const reconciles = metricSum(d1, 'cni_node_reconciles_total') - metricSum(d0, 'cni_node_reconciles_total');
  const reconcilesPtr = metricSum(d2, 'cni_node_reconciles_total') - metricSum(d1, 'cni_node_reconciles_total');
  const serverCm = (t, verb) => metricSum(t, 'apiserver_request_total', { resource: 'configmaps', verb });
  const serverAll = (t) => metricSum(t, 'apiserver_request_total');
  // /metrics scrapes are not counted in apiserver_request_total; the bench's own PATCHes are.
  const benchOwn = serverCm(s1, 'PATCH') - serverCm(s0, 'PATCH');
  const serverDelta = serverAll(s1) - serverAll(s0);
  const watches = metricSum(s1, 'apiserver_longrunning_gauge', { resource: 'configmaps', verb: 'WATCH' }) - watchesBefore;
  console.log(`\nAPI requests, ConfigMap changes: daemon's client sent ${daemonRequests} for ${N} changes (${(daemonRequests / N).toFixed(2)} per change); ${reconciles} reconciles`);
  console.log(`  at the API server: ${serverDelta} requests in that time, ${benchOwn} of them the bench's own PATCHes → ${serverDelta - benchOwn} from anyone else (${((serverDelta - benchOwn) / N).toFixed(2)} per change); configmaps GET/LIST/WATCH: ${serverCm(s1, 'GET') + serverCm(s1, 'LIST') + serverCm(s1, 'WATCH') - serverCm(s0, 'GET') - serverCm(s0, 'LIST') - serverCm(s0, 'WATCH')}`);
  console.log(`  watches the daemon holds open at the server (apiserver_longrunning_gauge, configmaps WATCH): ${watches}`);
  console.log(`API requests, pointer-target changes: ${daemonRequestsPtr} for ${N} changes; ${reconcilesPtr} reconciles`);

  // ---- 3. idle ----
  await sleep(5_000);
  const i0 = await scrape();
  const s2 = await serverMetrics();
  const p0 = await procStats(child.pid);
  const t0 = performance.now();
  let maxRss = p0.rssMb;
  const steps = Math.max(1, Math.round(IDLE_S / 5));
  for (let i = 0; i < steps; i++) {
    await sleep((IDLE_S * 1000) / steps);
    maxRss = Math.max(maxRss, (await procStats(child.pid)).rssMb);
  }
  const p1 = await procStats(child.pid);
  const wall = (performance.now() - t0) / 1000;
  const i1 = await scrape();
  const s3 = await serverMetrics();
  const cpuPct = ((p1.cpuSeconds - p0.cpuSeconds) / wall) * 100;
  console.log(`\nidle for ${wall.toFixed(0)} s (after the ${2 * N} changes): CPU ${(p1.cpuSeconds - p0.cpuSeconds).toFixed(2)} s = ${cpuPct.toFixed(3)} % of one core; RSS ${p1.rssMb.toFixed(1)} MiB at the end (max ${maxRss.toFixed(1)} MiB)`);
  console.log(`  while idle: ${metricSum(i1, 'cni_node_reconciles_total') - metricSum(i0, 'cni_node_reconciles_total')} reconciles, ${metricSum(i1, 'cni_node_api_requests_total') - metricSum(i0, 'cni_node_api_requests_total')} requests from the daemon, ${serverAll(s3) - serverAll(s2)} requests at the API server (all clients)`);
  if (IDLE_S < 600) console.log(`  (shorter than the issue's 10 minutes to keep the run short; BENCH_IDLE_SECONDS=600 runs the full 10 minutes)`);
} finally {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
