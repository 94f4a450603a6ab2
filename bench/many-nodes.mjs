// Many nodes (issue 6, "Scale and load"): N `cni-node run --config-map=…`
// ConfigMap watchers (default 500) against the real test kube-apiserver 1.20.2 +
// etcd, in this one process, each one exactly the watch the daemon starts
// (src/daemon/daemon.ts startConfigMapWatch: listWatch on
// /api/v1/namespaces/kube-system/configmaps with fieldSelector
// metadata.name=multus-cni, its own keep-alive agent and socket), as the
// daemon's service account (RBAC: get/list/watch configmaps in kube-system).
// Each watcher has its own user agent (cni-node/bench-node-NNN) so the API
// server's audit log can count requests per node; each also counts its own
// requests through the onRequest hook. onChange does what the daemon's
// onConfigMap does with the object: parse the desired lists and compare them
// with the last ones (desiredFromConfigMap + mergeDesired + sameDesired), so the
// bench reports both "onChange calls" and "desired state changed" (= a reconcile
// would be triggered).
//
// Phases:
//   0. cluster idle without watchers (background load of apiserver + etcd)
//   1. start N watchers at once, wait until every one listed and has its watch open
//   (a) idle: no request expected from any watcher
//   (b) ONE ConfigMap change (data.plugins): time until all N saw it, and requests
//       it caused (expected 0: it arrives on the open watch)
//   (c) unchanged writes: a PUT of the object as it is and a merge PATCH with the
//       same data (no new resourceVersion: no event, no onChange), then an
//       annotation-only change (new resourceVersion: onChange on every node, but
//       the desired lists are unchanged: no reconcile)
//   (d) API server load: CPU time and RSS of kube-apiserver and etcd per phase, and
//       the open watches (apiserver metrics and ESTABLISHED sockets)
//
//   npm run build && node bench/many-nodes.mjs [--nodes=500] [--idle=30] [--baseline=10]
//
// Exits 1 when a goal is clearly missed (a node listed or watched more than once,
// any request while idle or because of a change, a node that never saw the
// change, a reconcile trigger on an unchanged write, fewer open watches than
// nodes), 2 when the test cluster is not provisioned.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? 'true']));
const NODES = Number(args.get('nodes') ?? 500);
const IDLE_S = Number(args.get('idle') ?? 30);
const BASELINE_S = Number(args.get('baseline') ?? 10);
const NS = 'kube-system';
const CM = 'multus-cni';
const CM_PATH = `/api/v1/namespaces/${NS}/configmaps`;
const UA_PREFIX = 'cni-node/bench-node-';

const build = new URL('../build/', import.meta.url);
const { clusterUnavailableReason, startTestCluster, SERVICE_ACCOUNT_USER } = await import(new URL('test/e2e/support/cluster.js', build).href);
const { listWatch } = await import(new URL('src/kube/watch.js', build).href);
const { createKubeClient } = await import(new URL('src/kube/client.js', build).href);
const { desiredFromConfigMap, mergeDesired, sameDesired } = await import(new URL('src/daemon/desired.js', build).href);

const unavailable = clusterUnavailableReason();
if (unavailable) {
  console.error(`many-nodes: SKIPPED: ${unavailable}`);
  process.exit(2);
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const pct = (xs, q) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};
const ms = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '-');
const mib = (kb) => `${(kb / 1024).toFixed(0)} MiB`;

// ---------------------------------------------------------------------------
// Audit log: one line per stage, requests counted by unique auditID. The
// RequestReceived stage is kept: this kube-apiserver writes a watch's
// ResponseStarted only when the watch ends, so an open watch shows only there.

const work = mkdtempSync(path.join(os.tmpdir(), 'cni-node-many-nodes-'));
const auditLog = path.join(work, 'audit.log');
const auditPolicy = path.join(work, 'audit-policy.yaml');
writeFileSync(auditPolicy, ['apiVersion: audit.k8s.io/v1', 'kind: Policy', 'rules:', '- level: Metadata', ''].join('\n'));

const auditSeen = new Map(); // auditID -> {who, node, verb, resource, name}
function readAudit() {
  let text = '';
  try {
    text = readFileSync(auditLog, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      continue; // a line being written
    }
    const known = auditSeen.get(ev.auditID);
    if (known) {
      if (ev.responseStatus?.code !== undefined) known.code = ev.responseStatus.code;
      continue;
    }
    const ua = ev.userAgent ?? '';
    const user = ev.user?.username ?? '';
    const node = ua.startsWith(UA_PREFIX) ? Number(ua.slice(UA_PREFIX.length)) : undefined;
    const who = node !== undefined ? 'watcher' : user === 'admin' ? 'bench driver' : user === 'system:apiserver' ? 'apiserver itself' : `other (${user})`;
    auditSeen.set(ev.auditID, { who, node, verb: ev.verb, resource: ev.objectRef?.resource ?? ev.requestURI, name: ev.objectRef?.name, code: ev.responseStatus?.code });
  }
}
/** Requests seen in the audit log since the last call, grouped. */
let auditMark = new Set();
function auditSince() {
  readAudit();
  const out = { watcher: { total: 0, byVerb: {}, perNode: new Map() }, others: {} };
  for (const [id, r] of auditSeen) {
    if (auditMark.has(id)) continue;
    if (r.who === 'watcher') {
      out.watcher.total++;
      out.watcher.byVerb[r.verb] = (out.watcher.byVerb[r.verb] ?? 0) + 1;
      out.watcher.perNode.set(r.node, (out.watcher.perNode.get(r.node) ?? 0) + 1);
    } else {
      const k = `${r.who}: ${r.verb} ${r.resource ?? ''}`;
      out.others[k] = (out.others[k] ?? 0) + 1;
    }
  }
  auditMark = new Set(auditSeen.keys());
  return out;
}

// ---------------------------------------------------------------------------
// Server processes: found by the cluster's temp dir in their command line.

function serverPids(dir) {
  const found = {};
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let argv;
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv.some((a) => a.includes(dir))) continue;
    const exe = path.basename(argv[0] ?? '');
    if (exe.startsWith('kube-apiserver')) found.apiserver = Number(p);
    else if (exe === 'etcd') found.etcd = Number(p);
  }
  return found;
}
function procStat(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // utime + stime
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? 0);
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    // gone
  }
  return { cpuMs, rssKb, threads, fds };
}
/** ESTABLISHED TCP connections whose server side is the API server's port. */
function establishedTo(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let server = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '01') continue;
      if (f[1].endsWith(`:${hex}`)) server++;
    }
  }
  return server;
}

// ---------------------------------------------------------------------------

let cluster;
const watchers = [];
const nodes = [];
let failed = [];
const goal = (ok, what) => {
  if (!ok) failed.push(what);
  return ok ? 'ok' : 'MISSED';
};

async function main() {
  const t0 = now();
  cluster = await startTestCluster({ apiServerArgs: [`--audit-policy-file=${auditPolicy}`, `--audit-log-path=${auditLog}`, '--audit-log-maxsize=0'] });
  const apiPort = Number(new URL(cluster.server).port);
  const pids = serverPids(cluster.dir);
  if (!pids.apiserver || !pids.etcd) throw new Error(`cannot find the kube-apiserver and etcd processes (found ${JSON.stringify(pids)})`);
  console.log(`cluster up in ${((now() - t0) / 1000).toFixed(1)} s: ${cluster.server}; kube-apiserver pid ${pids.apiserver}, etcd pid ${pids.etcd}; ${os.cpus().length} CPUs; fd limit ${softFdLimit()}`);

  const must = async (method, p, body, opts) => {
    const res = await cluster.request(method, p, body, opts);
    if (res.status < 200 || res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${res.text.slice(0, 300)}`);
    return res.body;
  };
  // The daemon's RBAC (deploy/): read the ConfigMap in its namespace.
  await must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, {
    metadata: { name: 'cni-node-bench' },
    rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
  });
  await must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
    metadata: { name: 'cni-node-bench' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cni-node-bench' },
    subjects: [{ kind: 'User', name: SERVICE_ACCOUNT_USER }],
  });
  await must('POST', `${CM_PATH}`, { metadata: { name: CM, namespace: NS }, data: { plugins: 'multus,macvlan', configs: '00-multus.conf' } });
  // Unrelated ConfigMaps in the same namespace: the field selector must keep them out.
  for (let i = 0; i < 20; i++) await must('POST', CM_PATH, { metadata: { name: `other-${i}`, namespace: NS }, data: { x: String(i) } });

  const metrics = async () => {
    const res = await cluster.request('GET', '/metrics');
    const get = (re) => {
      let sum = 0;
      for (const line of res.text.split('\n')) if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      return sum;
    };
    const lines = (re) => res.text.split('\n').filter((l) => re.test(l));
    return {
      rejected: lines(/^(apiserver_flowcontrol_rejected_requests_total|apiserver_dropped_requests_total)\{/),
      concurrency: lines(/^apiserver_flowcontrol_request_concurrency_limit\{/),
      longrunningWatches: get(/^apiserver_longrunning_gauge\{.*resource="configmaps".*verb="WATCH"/),
      registeredWatchers: get(/^apiserver_registered_watchers\{.*kind="ConfigMap"/),
    };
  };

  // Phase snapshots.
  const rows = [];
  let snap;
  const take = () => ({ t: now(), api: procStat(pids.apiserver), etcd: procStat(pids.etcd), self: process.cpuUsage(), selfRss: process.memoryUsage().rss, client: clientTotals() });
  const clientTotals = () => {
    let list = 0;
    let watch = 0;
    let failedReq = 0;
    for (const n of nodes) {
      list += n.req.list;
      watch += n.req.watch;
      failedReq += n.req.failed;
    }
    return { list, watch, failed: failedReq, perNode: nodes.map((n) => n.req.list + n.req.watch + n.req.failed) };
  };
  const phase = async (name) => {
    await sleep(1500); // let the audit log catch up
    const s = take();
    const audit = auditSince();
    const dt = (s.t - snap.t) / 1000;
    const clientDelta = s.client.perNode.map((v, i) => v - (snap.client.perNode[i] ?? 0));
    const row = {
      name,
      seconds: dt,
      clientReqs: s.client.list + s.client.watch + s.client.failed - (snap.client.list + snap.client.watch + snap.client.failed),
      clientList: s.client.list - snap.client.list,
      clientWatch: s.client.watch - snap.client.watch,
      clientMaxPerNode: clientDelta.length ? Math.max(...clientDelta) : 0,
      serverReqs: audit.watcher.total,
      serverByVerb: audit.watcher.byVerb,
      serverMaxPerNode: audit.watcher.perNode.size ? Math.max(...audit.watcher.perNode.values()) : 0,
      serverNodes: audit.watcher.perNode.size,
      others: audit.others,
      apiCpuMs: s.api.cpuMs - snap.api.cpuMs,
      etcdCpuMs: s.etcd.cpuMs - snap.etcd.cpuMs,
      selfCpuMs: (s.self.user + s.self.system - snap.self.user - snap.self.system) / 1000,
      api: s.api,
      etcd: s.etcd,
      selfRss: s.selfRss,
    };
    rows.push(row);
    snap = take();
    return row;
  };

  // 0. Background: the cluster with no watcher.
  const m0 = await metrics();
  const established0 = establishedTo(apiPort);
  auditSince();
  snap = take();
  await sleep(BASELINE_S * 1000);
  const base = await phase(`0. no watchers, idle ${BASELINE_S} s`);

  // 1. N watchers, started at once (a DaemonSet after a control-plane restart, or all at once).
  const kubeconfig = cluster.writeKubeconfig(cluster.tokens.serviceAccount);
  const client = await createKubeClient({ kubeconfig, env: {} });
  const tStart = now();
  for (let i = 0; i < NODES; i++) {
    const n = {
      i,
      req: { list: 0, watch: 0, failed: 0 },
      errors: [],
      restarts: [],
      changes: 0,
      desiredChanges: 0,
      desired: undefined,
      rv: undefined,
      seen: new Map(), // resourceVersion -> time first delivered
      syncedAt: undefined,
      watchingAt: undefined,
    };
    nodes.push(n);
    const w = listWatch({
      client,
      path: CM_PATH,
      fieldSelector: `metadata.name=${CM}`,
      userAgent: `${UA_PREFIX}${String(i).padStart(3, '0')}`,
      onChange: (objects) => {
        const t = now();
        n.changes++;
        const cm = objects.find((o) => o.metadata.name === CM);
        if (!cm) return;
        n.rv = cm.metadata.resourceVersion;
        if (!n.seen.has(n.rv)) n.seen.set(n.rv, t);
        const parsed = desiredFromConfigMap(cm.data, `${NS}/${CM}`);
        if (!parsed.ok) return;
        const next = mergeDesired({}, parsed.lists);
        if (sameDesired(n.desired, next)) return;
        n.desired = next;
        n.desiredChanges++;
      },
      onRestart: (reason, detail) => n.restarts.push(`${reason}: ${detail}`),
      onError: (error) => n.errors.push(error.message),
      onRequest: (ev) => {
        if (ev.status === undefined || ev.status >= 400) n.req.failed++;
        else n.req[ev.verb]++;
        if (ev.verb === 'watch' && ev.status === 200 && n.watchingAt === undefined) n.watchingAt = now();
      },
    });
    watchers.push(w);
    w.synced.then((ok) => {
      if (ok) n.syncedAt = now();
    });
  }
  const deadline = now() + 90_000;
  while (now() < deadline && nodes.some((n) => n.watchingAt === undefined)) await sleep(100);
  const syncTimes = nodes.filter((n) => n.syncedAt !== undefined).map((n) => n.syncedAt - tStart);
  const watchTimes = nodes.filter((n) => n.watchingAt !== undefined).map((n) => n.watchingAt - tStart);
  let m = await metrics();
  for (let k = 0; k < 20 && m.registeredWatchers < NODES; k++) {
    await sleep(250);
    m = await metrics();
  }
  const startRejected = (await metrics()).rejected;
  const start = await phase(`1. start ${NODES} watchers (list+watch)`);
  const afterStart = { metrics: m, established: establishedTo(apiPort) };

  // (a) idle.
  await sleep(IDLE_S * 1000);
  const idle = await phase(`a. ${NODES} watchers idle ${IDLE_S} s`);
  const idleMetrics = await metrics();

  // (b) one change.
  const changesBefore = nodes.map((n) => n.changes);
  const desiredBefore = nodes.map((n) => n.desiredChanges);
  const tPatch = now();
  const patched = await must('PATCH', `${CM_PATH}/${CM}`, { data: { plugins: 'multus,macvlan,ipvlan' } });
  const patchMs = now() - tPatch;
  const newRv = patched.metadata.resourceVersion;
  const seenDeadline = now() + 30_000;
  while (now() < seenDeadline && nodes.some((n) => !n.seen.has(newRv))) await sleep(20);
  const lat = nodes.filter((n) => n.seen.has(newRv)).map((n) => n.seen.get(newRv) - tPatch);
  const desiredAfterChange = nodes.filter((n) => n.desired?.plugin?.join(',') === 'multus,macvlan,ipvlan').length;
  const change = await phase('b. one ConfigMap change');
  const changeCalls = nodes.reduce((s, n, i) => s + n.changes - changesBefore[i], 0);
  const changeReconciles = nodes.reduce((s, n, i) => s + n.desiredChanges - desiredBefore[i], 0);

  // (c1) unchanged writes: PUT as is, and a merge PATCH with the same data.
  const c1Before = nodes.map((n) => n.changes);
  const current = await must('GET', `${CM_PATH}/${CM}`);
  const put = await must('PUT', `${CM_PATH}/${CM}`, current);
  const samePatch = await must('PATCH', `${CM_PATH}/${CM}`, { data: current.data });
  const rvKept = put.metadata.resourceVersion === current.metadata.resourceVersion && samePatch.metadata.resourceVersion === current.metadata.resourceVersion;
  await sleep(1500);
  const noop = await phase('c1. unchanged re-apply (PUT + PATCH)');
  const noopCalls = nodes.reduce((s, n, i) => s + n.changes - c1Before[i], 0);

  // (c2) annotation-only change: a new resourceVersion, the same desired lists.
  const c2Before = nodes.map((n) => n.changes);
  const c2DesiredBefore = nodes.map((n) => n.desiredChanges);
  const tAnn = now();
  const annotated = await must('PATCH', `${CM_PATH}/${CM}`, { metadata: { annotations: { 'bench.cni-node/touched': new Date().toISOString() } } });
  const annRv = annotated.metadata.resourceVersion;
  const annDeadline = now() + 30_000;
  while (now() < annDeadline && nodes.some((n) => !n.seen.has(annRv))) await sleep(20);
  const annLat = nodes.filter((n) => n.seen.has(annRv)).map((n) => n.seen.get(annRv) - tAnn);
  const ann = await phase('c2. annotation-only change');
  const annCalls = nodes.reduce((s, n, i) => s + n.changes - c2Before[i], 0);
  const annReconciles = nodes.reduce((s, n, i) => s + n.desiredChanges - c2DesiredBefore[i], 0);
  const endMetrics = await metrics();
  const endEstablished = establishedTo(apiPort);

  // ---------------------------------------------------------------------------
  // Report.
  const restarts = nodes.reduce((s, n) => s + n.restarts.length, 0);
  const errors = nodes.reduce((s, n) => s + n.errors.length, 0);
  const synced = syncTimes.length;
  const perNodeTotal = nodes.map((n) => n.req.list + n.req.watch + n.req.failed);
  const serverPerNode = new Map();
  for (const r of auditSeen.values()) if (r.who === 'watcher') serverPerNode.set(r.node, (serverPerNode.get(r.node) ?? 0) + 1);
  const serverPerNodeVals = nodes.map((n) => serverPerNode.get(n.i) ?? 0);

  console.log('');
  console.log(`${NODES} ConfigMap watchers (listWatch ${CM_PATH}?fieldSelector=metadata.name=${CM}), one process, ${os.cpus().length} CPUs`);
  console.log('');
  const head = ['phase', 's', 'reqs (client)', 'reqs (audit)', 'max/node', 'apiserver CPU', 'etcd CPU', 'bench CPU', 'apiserver RSS', 'etcd RSS'];
  const table = rows.map((r) => [
    r.name,
    r.seconds.toFixed(1),
    r.clientReqs === 0 ? '0' : `${r.clientReqs} (list ${r.clientList}, watch ${r.clientWatch})`,
    r.serverReqs === 0 ? '0' : `${r.serverReqs} (${Object.entries(r.serverByVerb).map(([v, c]) => `${v} ${c}`).join(', ')})`,
    `${r.clientMaxPerNode}/${r.serverMaxPerNode}`,
    `${r.apiCpuMs.toFixed(0)} ms (${((r.apiCpuMs / (r.seconds * 1000)) * 100).toFixed(1)}%)`,
    `${r.etcdCpuMs.toFixed(0)} ms (${((r.etcdCpuMs / (r.seconds * 1000)) * 100).toFixed(1)}%)`,
    `${r.selfCpuMs.toFixed(0)} ms`,
    mib(r.api.rssKb),
    mib(r.etcd.rssKb),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...table.map((row) => row[c].length)));
  const fmt = (row) => row.map((cell, c) => cell.padEnd(widths[c])).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table) console.log(fmt(row));
  console.log('  (max/node = most requests by one node in the phase: client count / audit count; CPU % of one core over the phase)');
  console.log('');
  console.log('Other API traffic (audit log, not from watchers), per phase:');
  for (const r of rows) {
    const o = Object.entries(r.others).filter(([k]) => !k.startsWith('bench driver: get metrics') && !k.includes('/metrics'));
    console.log(`  ${r.name}: ${o.length ? o.map(([k, c]) => `${k} ×${c}`).join('; ') : 'none'}`);
  }
  console.log('');
  console.log(`Start: ${synced}/${NODES} listed (p50 ${ms(pct(syncTimes, 0.5))}, p99 ${ms(pct(syncTimes, 0.99))}, max ${ms(pct(syncTimes, 1))}); ` +
    `${watchTimes.length}/${NODES} watching (max ${ms(pct(watchTimes, 1))}); failed attempts ${errors}, watch restarts ${restarts}`);
  console.log(`Requests per node over the whole run: client min ${Math.min(...perNodeTotal)} / max ${Math.max(...perNodeTotal)}; audit min ${Math.min(...serverPerNodeVals)} / max ${Math.max(...serverPerNodeVals)} (goal: exactly 1 list + 1 watch)`);
  console.log(`Open watches on configmaps: apiserver_registered_watchers ${m0.registeredWatchers} before the watchers, ${afterStart.metrics.registeredWatchers} after start, ${idleMetrics.registeredWatchers} after idle, ${endMetrics.registeredWatchers} at the end; ` +
    `apiserver_longrunning_gauge WATCH ${afterStart.metrics.longrunningWatches} → ${endMetrics.longrunningWatches}; ESTABLISHED sockets to the API server port ${established0} → ${afterStart.established} → ${endEstablished} (includes its own loopback clients)`);
  console.log(`(b) change (PATCH data.plugins, answered in ${ms(patchMs)}): seen by ${lat.length}/${NODES}: p50 ${ms(pct(lat, 0.5))}, p99 ${ms(pct(lat, 0.99))}, max ${ms(pct(lat, 1))} after the PATCH was sent; ` +
    `onChange calls ${changeCalls}, desired state changed on ${changeReconciles} nodes (${desiredAfterChange} now want multus,macvlan,ipvlan); requests caused ${change.clientReqs} (client) / ${change.serverReqs} (audit)`);
  console.log(`(c1) unchanged PUT + same-data PATCH: resourceVersion ${rvKept ? 'unchanged' : 'CHANGED'}; onChange calls ${noopCalls}; requests ${noop.clientReqs}/${noop.serverReqs}`);
  console.log(`(c2) annotation-only PATCH: seen by ${annLat.length}/${NODES} (max ${ms(pct(annLat, 1))}); onChange calls ${annCalls} (the watch layer reports every new resourceVersion); desired state changed on ${annReconciles} nodes (reconciles triggered); requests ${ann.clientReqs}/${ann.serverReqs}`);
  const perWatchKb = (idle.api.rssKb - base.api.rssKb) / NODES;
  console.log(`(d) kube-apiserver RSS ${mib(base.api.rssKb)} without watchers → ${mib(idle.api.rssKb)} with ${NODES} (≈${perWatchKb.toFixed(0)} KiB per watch), fds ${base.api.fds} → ${idle.api.fds}, threads ${base.api.threads} → ${idle.api.threads}; ` +
    `etcd RSS ${mib(base.etcd.rssKb)} → ${mib(idle.etcd.rssKb)}, fds ${base.etcd.fds} → ${idle.etcd.fds}; ` +
    `CPU while idle: apiserver ${((base.apiCpuMs / base.seconds) / 10).toFixed(1)}% → ${((idle.apiCpuMs / idle.seconds) / 10).toFixed(1)}% of a core, etcd ${((base.etcdCpuMs / base.seconds) / 10).toFixed(1)}% → ${((idle.etcdCpuMs / idle.seconds) / 10).toFixed(1)}%; ` +
    `bench process (all ${NODES} watchers) RSS ${mib(idle.selfRss / 1024)}, CPU while idle ${((idle.selfCpuMs / idle.seconds) / 10).toFixed(1)}%`);
  if (startRejected.length) {
    console.log(`Requests the API server refused at start (its metrics):\n  ${startRejected.join('\n  ')}`);
    console.log(`  priority-level concurrency limits: ${m.concurrency.map((l) => l.replace(/^.*priority_level="([^"]+)".*\} (\S+)$/, '$1=$2')).join(', ')}`);
  }
  const startLists = nodes.reduce((s, n) => s + n.req.list, 0);
  const startWatches = nodes.reduce((s, n) => s + n.req.watch, 0);
  const auditStart = [...auditSeen.values()].filter((r) => r.who === 'watcher');
  const auditCodes = {};
  for (const r of auditStart) auditCodes[`${r.verb} ${r.code ?? 'open'}`] = (auditCodes[`${r.verb} ${r.code ?? 'open'}`] ?? 0) + 1;
  console.log(`Watcher requests by verb and answer over the whole run (audit; "open" = still running): ${Object.entries(auditCodes).map(([k, c]) => `${k} ×${c}`).join(', ')}`);
  const refusedOnlyWith429 = auditStart.every((r) => r.code === undefined || r.code === 200 || r.code === 429);
  const distinctErrors = [...new Set(nodes.flatMap((n) => n.errors))].slice(0, 5);
  const distinctRestarts = [...new Set(nodes.flatMap((n) => n.restarts))].slice(0, 5);
  if (distinctErrors.length) console.log(`failed attempts (first distinct): \n  ${distinctErrors.join('\n  ')}`);
  if (distinctRestarts.length) console.log(`watch restarts (first distinct): \n  ${distinctRestarts.join('\n  ')}`);

  console.log('');
  console.log('Goals:');
  console.log(`  every node listed and watching             ${goal(synced === NODES && watchTimes.length === NODES, 'not every node synced')}`);
  console.log(`  start: 1 list + 1 watch per node           ${goal(startLists === NODES && startWatches === NODES && (start.serverByVerb.watch ?? 0) === NODES && (auditCodes['list 200'] ?? 0) === NODES && refusedOnlyWith429, `start: ${JSON.stringify(start.serverByVerb)}, client list ${startLists} watch ${startWatches}`)}`);
  console.log(`    (retries only after 429 from the server: ${start.clientReqs - 2 * NODES} on ${nodes.filter((n) => n.req.failed > 0).length} nodes)`);
  console.log(`  one open watch per node                    ${goal(idleMetrics.registeredWatchers >= NODES && idleMetrics.registeredWatchers <= NODES + 5, `registered watchers ${idleMetrics.registeredWatchers}`)}`);
  console.log(`  idle: 0 requests                           ${goal(idle.clientReqs === 0 && idle.serverReqs === 0, `idle: ${idle.clientReqs}/${idle.serverReqs} requests`)}`);
  console.log(`  change: all nodes see it                   ${goal(lat.length === NODES && changeReconciles === NODES, `change seen by ${lat.length}, reconciles ${changeReconciles}`)}`);
  console.log(`  change: 0 requests                         ${goal(change.clientReqs === 0 && change.serverReqs === 0, `change: ${change.clientReqs}/${change.serverReqs} requests`)}`);
  console.log(`  unchanged write: 0 onChange, 0 requests    ${goal(rvKept && noopCalls === 0 && noop.clientReqs === 0 && noop.serverReqs === 0, `unchanged write: onChange ${noopCalls}, requests ${noop.clientReqs}/${noop.serverReqs}`)}`);
  console.log(`  annotation-only: 0 reconciles, 0 requests  ${goal(annReconciles === 0 && ann.clientReqs === 0 && ann.serverReqs === 0 && annLat.length === NODES, `annotation: reconciles ${annReconciles}, requests ${ann.clientReqs}/${ann.serverReqs}`)}`);
  console.log(`  no watch restarts; no failure but 429      ${goal(restarts === 0 && nodes.every((n) => n.errors.every((e) => e.includes('429'))), `restarts ${restarts}, failed attempts ${errors}`)}`);
  console.log('  writes by watchers: 0 (they only GET)      ' + goal([...auditSeen.values()].every((r) => r.who !== 'watcher' || r.verb === 'list' || r.verb === 'watch' || r.verb === 'get'), 'a watcher wrote'));
  void client;
}

function softFdLimit() {
  try {
    return execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

let code = 0;
const tAll = now();
try {
  await main();
  if (failed.length) {
    console.log(`\nRESULT: goals missed: ${failed.join('; ')}`);
    code = 1;
  } else {
    console.log('\nRESULT: all goals met');
  }
} catch (e) {
  console.error(`many-nodes: ${e instanceof Error ? e.stack : e}`);
  code = 1;
} finally {
  const tStop = now();
  for (const w of watchers) w.stop();
  await Promise.race([Promise.all(watchers.map((w) => w.done)), sleep(10_000)]);
  const stoppedWatchers = now() - tStop;
  await cluster?.stop().catch((e) => console.error(`stopping the cluster: ${e.message}`));
  if (args.get('keep') === 'true') console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
  console.log(`stopped ${watchers.length} watchers in ${ms(stoppedWatchers)} and the cluster; total ${((now() - tAll) / 1000).toFixed(0)} s`);
}
process.exit(code);
