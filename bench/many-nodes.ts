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
// The cost curve: --steps=250,500,750,1000 (default) adds watchers in steps; at each
// step the new ones start at once (the herd), then the whole set idles and one
// ConfigMap change fans out, and the API server's, etcd's and this process's memory
// and CPU are read. The unchanged-write checks (c) run at the last step.
//
//   npm run build && node build/bench/many-nodes.js [--steps=250,500,750,1000] [--idle=20] [--baseline=10]
//   (--nodes=N is --steps=N)
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
import { desiredFromConfigMap, mergeDesired, sameDesired, type DesiredLists } from '../src/daemon/desired.js';
import { createKubeClient } from '../src/kube/client.js';
import { listWatch, type ListWatcher, type WatchedObject } from '../src/kube/watch.js';
import { SERVICE_ACCOUNT_USER, clusterUnavailableReason, startTestCluster, type TestCluster } from '../test/e2e/support/cluster.js';
import { machine, round, writeResults } from './lib.js';

const args = new Map(
  process.argv
    .slice(2)
    .map((a) => a.replace(/^--/, '').split('='))
    .map(([k, v]) => [k as string, v ?? 'true']),
);
const STEPS = (args.get('steps') ?? args.get('nodes') ?? '250,500,750,1000').split(',').map(Number);
const NODES = Math.max(...STEPS);
const IDLE_S = Number(args.get('idle') ?? 20);
const BASELINE_S = Number(args.get('baseline') ?? 10);
const NS = 'kube-system';
const CM = 'multus-cni';
const CM_PATH = `/api/v1/namespaces/${NS}/configmaps`;
const UA_PREFIX = 'cni-node/bench-node-';

const unavailable = clusterUnavailableReason();
if (unavailable) {
  console.error(`many-nodes: SKIPPED: ${unavailable}`);
  process.exit(0);
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const pct = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
};
const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '-');
const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;

// ---------------------------------------------------------------------------
// Audit log: one line per stage, requests counted by unique auditID. The
// RequestReceived stage is kept: this kube-apiserver writes a watch's
// ResponseStarted only when the watch ends, so an open watch shows only there.

const work = mkdtempSync(path.join(os.tmpdir(), 'cni-node-many-nodes-'));
const auditLog = path.join(work, 'audit.log');
const auditPolicy = path.join(work, 'audit-policy.yaml');
writeFileSync(auditPolicy, ['apiVersion: audit.k8s.io/v1', 'kind: Policy', 'rules:', '- level: Metadata', ''].join('\n'));

interface AuditRecord {
  who: string;
  node: number | undefined;
  verb: string;
  resource: string | undefined;
  name: string | undefined;
  code: number | undefined;
}
interface AuditEvent {
  auditID: string;
  userAgent?: string;
  user?: { username?: string };
  verb: string;
  requestURI?: string;
  objectRef?: { resource?: string; name?: string };
  responseStatus?: { code?: number };
}
const auditSeen = new Map<string, AuditRecord>();
function readAudit() {
  let text = '';
  try {
    text = readFileSync(auditLog, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let ev: AuditEvent;
    try {
      ev = JSON.parse(line) as AuditEvent;
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
    auditSeen.set(ev.auditID, {
      who,
      node,
      verb: ev.verb,
      resource: ev.objectRef?.resource ?? ev.requestURI,
      name: ev.objectRef?.name,
      code: ev.responseStatus?.code,
    });
  }
}
/** Requests seen in the audit log since the last call, grouped. */
let auditMark = new Set<string>();
interface AuditSince {
  watcher: { total: number; byVerb: Record<string, number>; perNode: Map<number | undefined, number> };
  others: Record<string, number>;
}
function auditSince(): AuditSince {
  readAudit();
  const out: AuditSince = { watcher: { total: 0, byVerb: {}, perNode: new Map() }, others: {} };
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

function serverPids(dir: string): { apiserver?: number; etcd?: number } {
  const found: { apiserver?: number; etcd?: number } = {};
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
interface Proc {
  cpuMs: number;
  rssKb: number;
  threads: number;
  fds: number;
}
function procStat(pid: number): Proc {
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
function establishedTo(port: number): number {
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
      if (f[1]?.endsWith(`:${hex}`)) server++;
    }
  }
  return server;
}

// ---------------------------------------------------------------------------

let cluster: TestCluster | undefined;
const watchers: ListWatcher[] = [];
interface Node {
  i: number;
  req: { list: number; watch: number; failed: number };
  errors: string[];
  restarts: string[];
  changes: number;
  desiredChanges: number;
  desired: DesiredLists | undefined;
  rv: string | undefined;
  /** resourceVersion → when it was first delivered. */
  seen: Map<string, number>;
  syncedAt: number | undefined;
  watchingAt: number | undefined;
}
const nodes: Node[] = [];
const failed: string[] = [];
const goal = (ok: boolean, what: string) => {
  if (!ok) failed.push(what);
  return ok ? 'ok' : 'MISSED';
};

interface Snapshot {
  t: number;
  api: Proc;
  etcd: Proc;
  self: NodeJS.CpuUsage;
  selfRss: number;
  client: { list: number; watch: number; failed: number; perNode: number[] };
}
interface PhaseRow {
  name: string;
  seconds: number;
  clientReqs: number;
  clientList: number;
  clientWatch: number;
  clientMaxPerNode: number;
  serverReqs: number;
  serverByVerb: Record<string, number>;
  serverMaxPerNode: number;
  serverNodes: number;
  others: Record<string, number>;
  apiCpuMs: number;
  etcdCpuMs: number;
  selfCpuMs: number;
  api: Proc;
  etcd: Proc;
  selfRss: number;
}
interface CurveRow {
  nodes: number;
  startedAtOnce: number;
  syncMaxMs: number;
  throttled: number;
  registeredWatchers: number;
  apiRssMiB: number;
  apiFds: number;
  apiIdleCpuPct: number;
  etcdRssMiB: number;
  etcdIdleCpuPct: number;
  selfRssMiB: number;
  selfIdleCpuPct: number;
  idleRequests: number;
  changeSeen: number;
  changeP50: number;
  changeP99: number;
  changeMax: number;
  changeRequests: number;
  changeApiCpuMs: number;
}

async function main(): Promise<{ curve: CurveRow[]; rows: PhaseRow[] }> {
  const t0 = now();
  cluster = await startTestCluster({ apiServerArgs: [`--audit-policy-file=${auditPolicy}`, `--audit-log-path=${auditLog}`, '--audit-log-maxsize=0'] });
  const c = cluster;
  const apiPort = Number(new URL(c.server).port);
  const pids = serverPids(c.dir);
  if (!pids.apiserver || !pids.etcd) throw new Error(`cannot find the kube-apiserver and etcd processes (found ${JSON.stringify(pids)})`);
  const apiPid = pids.apiserver;
  const etcdPid = pids.etcd;
  console.log(
    `cluster up in ${((now() - t0) / 1000).toFixed(1)} s: ${c.server}; kube-apiserver pid ${apiPid}, etcd pid ${etcdPid}; ${os.cpus().length} CPUs; fd limit ${softFdLimit()}; steps ${STEPS.join(', ')}`,
  );

  const must = async <T = Record<string, unknown>>(method: string, p: string, body?: unknown): Promise<T> => {
    const res = await c.request<T>(method, p, body);
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
    const res = await c.request('GET', '/metrics');
    const get = (re: RegExp) => {
      let sum = 0;
      for (const line of res.text.split('\n')) if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      return sum;
    };
    const lines = (re: RegExp) => res.text.split('\n').filter((l) => re.test(l));
    return {
      rejected: lines(/^(apiserver_flowcontrol_rejected_requests_total|apiserver_dropped_requests_total)\{/),
      concurrency: lines(/^apiserver_flowcontrol_request_concurrency_limit\{/),
      longrunningWatches: get(/^apiserver_longrunning_gauge\{.*resource="configmaps".*verb="WATCH"/),
      registeredWatchers: get(/^apiserver_registered_watchers\{.*kind="ConfigMap"/),
    };
  };

  // Phase snapshots.
  const rows: PhaseRow[] = [];
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
  const take = (): Snapshot => ({
    t: now(),
    api: procStat(apiPid),
    etcd: procStat(etcdPid),
    self: process.cpuUsage(),
    selfRss: process.memoryUsage().rss,
    client: clientTotals(),
  });
  let snap = take();
  const phase = async (name: string): Promise<PhaseRow> => {
    await sleep(1500); // let the audit log catch up
    const s = take();
    const audit = auditSince();
    const dt = (s.t - snap.t) / 1000;
    const clientDelta = s.client.perNode.map((v, i) => v - (snap.client.perNode[i] ?? 0));
    const row: PhaseRow = {
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

  const kubeconfig = c.writeKubeconfig(c.tokens.serviceAccount);
  const client = await createKubeClient({ kubeconfig, env: {} });
  const startNode = (i: number) => {
    const n: Node = {
      i,
      req: { list: 0, watch: 0, failed: 0 },
      errors: [],
      restarts: [],
      changes: 0,
      desiredChanges: 0,
      desired: undefined,
      rv: undefined,
      seen: new Map(),
      syncedAt: undefined,
      watchingAt: undefined,
    };
    nodes.push(n);
    const w = listWatch({
      client,
      path: CM_PATH,
      fieldSelector: `metadata.name=${CM}`,
      userAgent: `${UA_PREFIX}${String(i).padStart(4, '0')}`,
      onChange: (objects: WatchedObject[]) => {
        const t = now();
        n.changes++;
        const cm = objects.find((o) => o.metadata.name === CM);
        if (!cm) return;
        const rv = cm.metadata.resourceVersion as string;
        n.rv = rv;
        if (!n.seen.has(rv)) n.seen.set(rv, t);
        const parsed = desiredFromConfigMap(cm['data'] as Record<string, string> | undefined, `${NS}/${CM}`);
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
    void w.synced.then((ok) => {
      if (ok) n.syncedAt = now();
    });
  };

  const curve: CurveRow[] = [];
  let startRejected: string[] = [];
  let lastStart: PhaseRow | undefined;
  let lastIdle: PhaseRow | undefined;
  let lastChange: { row: PhaseRow; lat: number[]; reconciles: number; calls: number } | undefined;
  let idleMetrics = m0;
  let afterStart = { metrics: m0, established: established0 };
  let syncTimes: number[] = [];
  let watchTimes: number[] = [];
  let changeNo = 0;
  for (const target of STEPS) {
    // 1. Start the next watchers, all at once (a DaemonSet after a control-plane restart, or all at once).
    const from = nodes.length;
    const tStart = now();
    for (let i = from; i < target; i++) startNode(i);
    const fresh = nodes.slice(from);
    const deadline = now() + 120_000;
    while (now() < deadline && fresh.some((n) => n.watchingAt === undefined)) await sleep(100);
    syncTimes = fresh.filter((n) => n.syncedAt !== undefined).map((n) => (n.syncedAt as number) - tStart);
    watchTimes = fresh.filter((n) => n.watchingAt !== undefined).map((n) => (n.watchingAt as number) - tStart);
    let m = await metrics();
    for (let k = 0; k < 20 && m.registeredWatchers < target; k++) {
      await sleep(250);
      m = await metrics();
    }
    startRejected = (await metrics()).rejected;
    lastStart = await phase(`1. start ${target - from} more watchers (list+watch) → ${target}`);
    afterStart = { metrics: m, established: establishedTo(apiPort) };

    // (a) idle.
    await sleep(IDLE_S * 1000);
    lastIdle = await phase(`a. ${target} watchers idle ${IDLE_S} s`);
    idleMetrics = await metrics();

    // (b) one change.
    const changesBefore = nodes.map((n) => n.changes);
    const desiredBefore = nodes.map((n) => n.desiredChanges);
    const plugins = `multus,macvlan,ipvlan-${++changeNo}`;
    const tPatch = now();
    const patched = await must<{ metadata: { resourceVersion: string } }>('PATCH', `${CM_PATH}/${CM}`, { data: { plugins } });
    const newRv = patched.metadata.resourceVersion;
    const seenDeadline = now() + 30_000;
    while (now() < seenDeadline && nodes.some((n) => !n.seen.has(newRv))) await sleep(20);
    const lat = nodes.filter((n) => n.seen.has(newRv)).map((n) => (n.seen.get(newRv) as number) - tPatch);
    const row = await phase(`b. one ConfigMap change seen by ${target}`);
    lastChange = {
      row,
      lat,
      calls: nodes.reduce((s, n, i) => s + n.changes - (changesBefore[i] ?? 0), 0),
      reconciles: nodes.reduce((s, n, i) => s + n.desiredChanges - (desiredBefore[i] ?? 0), 0),
    };
    const throttled = fresh.reduce((s, n) => s + n.req.failed, 0);
    curve.push({
      nodes: target,
      startedAtOnce: target - from,
      syncMaxMs: round(pct(syncTimes, 1), 0),
      throttled,
      registeredWatchers: idleMetrics.registeredWatchers,
      apiRssMiB: round(lastIdle.api.rssKb / 1024, 0),
      apiFds: lastIdle.api.fds,
      apiIdleCpuPct: round(lastIdle.apiCpuMs / lastIdle.seconds / 10, 2),
      etcdRssMiB: round(lastIdle.etcd.rssKb / 1024, 0),
      etcdIdleCpuPct: round(lastIdle.etcdCpuMs / lastIdle.seconds / 10, 2),
      selfRssMiB: round(lastIdle.selfRss / 2 ** 20, 0),
      selfIdleCpuPct: round(lastIdle.selfCpuMs / lastIdle.seconds / 10, 2),
      idleRequests: lastIdle.clientReqs + lastIdle.serverReqs,
      changeSeen: lat.length,
      changeP50: round(pct(lat, 0.5), 0),
      changeP99: round(pct(lat, 0.99), 0),
      changeMax: round(pct(lat, 1), 0),
      changeRequests: row.clientReqs + row.serverReqs,
      changeApiCpuMs: round(row.apiCpuMs, 0),
    });
    process.stderr.write(
      `  step ${target}: all watching after ${ms(pct(watchTimes, 1))}, change seen by ${lat.length}/${target} (p99 ${ms(pct(lat, 0.99))})\n`,
    );
  }
  const idle = lastIdle as PhaseRow;
  const start = lastStart as PhaseRow;
  const change = (lastChange as NonNullable<typeof lastChange>).row;
  const lat = (lastChange as NonNullable<typeof lastChange>).lat;
  const changeCalls = (lastChange as NonNullable<typeof lastChange>).calls;
  const changeReconciles = (lastChange as NonNullable<typeof lastChange>).reconciles;
  const finalPlugins = `multus,macvlan,ipvlan-${changeNo}`;
  const desiredAfterChange = nodes.filter((n) => n.desired?.plugin?.join(',') === finalPlugins).length;

  // (c1) unchanged writes: PUT as is, and a merge PATCH with the same data.
  const c1Before = nodes.map((n) => n.changes);
  const current = await must<{ metadata: { resourceVersion: string }; data: Record<string, string> }>('GET', `${CM_PATH}/${CM}`);
  const put = await must<{ metadata: { resourceVersion: string } }>('PUT', `${CM_PATH}/${CM}`, current);
  const samePatch = await must<{ metadata: { resourceVersion: string } }>('PATCH', `${CM_PATH}/${CM}`, { data: current.data });
  const rvKept = put.metadata.resourceVersion === current.metadata.resourceVersion && samePatch.metadata.resourceVersion === current.metadata.resourceVersion;
  await sleep(1500);
  const noop = await phase('c1. unchanged re-apply (PUT + PATCH)');
  const noopCalls = nodes.reduce((s, n, i) => s + n.changes - (c1Before[i] ?? 0), 0);

  // (c2) annotation-only change: a new resourceVersion, the same desired lists.
  const c2Before = nodes.map((n) => n.changes);
  const c2DesiredBefore = nodes.map((n) => n.desiredChanges);
  const tAnn = now();
  const annotated = await must<{ metadata: { resourceVersion: string } }>('PATCH', `${CM_PATH}/${CM}`, {
    metadata: { annotations: { 'bench.cni-node/touched': new Date().toISOString() } },
  });
  const annRv = annotated.metadata.resourceVersion;
  const annDeadline = now() + 30_000;
  while (now() < annDeadline && nodes.some((n) => !n.seen.has(annRv))) await sleep(20);
  const annLat = nodes.filter((n) => n.seen.has(annRv)).map((n) => (n.seen.get(annRv) as number) - tAnn);
  const ann = await phase('c2. annotation-only change');
  const annCalls = nodes.reduce((s, n, i) => s + n.changes - (c2Before[i] ?? 0), 0);
  const annReconciles = nodes.reduce((s, n, i) => s + n.desiredChanges - (c2DesiredBefore[i] ?? 0), 0);
  const endMetrics = await metrics();
  const endEstablished = establishedTo(apiPort);

  // ---------------------------------------------------------------------------
  // Report.
  const restarts = nodes.reduce((s, n) => s + n.restarts.length, 0);
  const errors = nodes.reduce((s, n) => s + n.errors.length, 0);
  const perNodeTotal = nodes.map((n) => n.req.list + n.req.watch + n.req.failed);
  const serverPerNode = new Map<number | undefined, number>();
  for (const r of auditSeen.values()) if (r.who === 'watcher') serverPerNode.set(r.node, (serverPerNode.get(r.node) ?? 0) + 1);
  const serverPerNodeVals = nodes.map((n) => serverPerNode.get(n.i) ?? 0);
  const synced = nodes.filter((n) => n.syncedAt !== undefined).length;
  const watching = nodes.filter((n) => n.watchingAt !== undefined).length;

  console.log('');
  console.log(`Cost curve: ConfigMap watchers (listWatch ${CM_PATH}?fieldSelector=metadata.name=${CM}) in one process, ${os.cpus().length} CPUs`);
  console.log('');
  const curveHead = [
    'nodes',
    'started at once',
    'all synced after',
    '429s',
    'registered watchers',
    'apiserver RSS',
    'apiserver fds',
    'apiserver idle CPU',
    'etcd RSS',
    'etcd idle CPU',
    'watchers RSS',
    'watchers idle CPU',
    'idle reqs',
    'change seen',
    'change p50/p99/max',
    'change reqs',
    'apiserver CPU for the change',
  ];
  const curveTable = curve.map((r) => [
    String(r.nodes),
    String(r.startedAtOnce),
    `${r.syncMaxMs} ms`,
    String(r.throttled),
    String(r.registeredWatchers),
    `${r.apiRssMiB} MiB`,
    String(r.apiFds),
    `${r.apiIdleCpuPct} %`,
    `${r.etcdRssMiB} MiB`,
    `${r.etcdIdleCpuPct} %`,
    `${r.selfRssMiB} MiB`,
    `${r.selfIdleCpuPct} %`,
    String(r.idleRequests),
    `${r.changeSeen}/${r.nodes}`,
    `${r.changeP50}/${r.changeP99}/${r.changeMax} ms`,
    String(r.changeRequests),
    `${r.changeApiCpuMs} ms`,
  ]);
  console.log(`| ${curveHead.join(' | ')} |\n| ${curveHead.map(() => '---').join(' | ')} |\n${curveTable.map((r) => `| ${r.join(' | ')} |`).join('\n')}`);
  if (curve.length >= 2) {
    const a = curve[0] as CurveRow;
    const b = curve[curve.length - 1] as CurveRow;
    console.log(
      `  per added watch: kube-apiserver ${(((b.apiRssMiB - a.apiRssMiB) * 1024) / (b.nodes - a.nodes)).toFixed(0)} KiB RSS; watchers ${(((b.selfRssMiB - a.selfRssMiB) * 1024) / (b.nodes - a.nodes)).toFixed(0)} KiB RSS in this process`,
    );
  }
  console.log('');
  const head = ['phase', 's', 'reqs (client)', 'reqs (audit)', 'max/node', 'apiserver CPU', 'etcd CPU', 'bench CPU', 'apiserver RSS', 'etcd RSS'];
  const table = rows.map((r) => [
    r.name,
    r.seconds.toFixed(1),
    r.clientReqs === 0 ? '0' : `${r.clientReqs} (list ${r.clientList}, watch ${r.clientWatch})`,
    r.serverReqs === 0
      ? '0'
      : `${r.serverReqs} (${Object.entries(r.serverByVerb)
          .map(([v, n]) => `${v} ${n}`)
          .join(', ')})`,
    `${r.clientMaxPerNode}/${r.serverMaxPerNode}`,
    `${r.apiCpuMs.toFixed(0)} ms (${((r.apiCpuMs / (r.seconds * 1000)) * 100).toFixed(1)}%)`,
    `${r.etcdCpuMs.toFixed(0)} ms (${((r.etcdCpuMs / (r.seconds * 1000)) * 100).toFixed(1)}%)`,
    `${r.selfCpuMs.toFixed(0)} ms`,
    mib(r.api.rssKb),
    mib(r.etcd.rssKb),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
  const fmt = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table) console.log(fmt(row));
  console.log('  (max/node = most requests by one node in the phase: client count / audit count; CPU % of one core over the phase)');
  console.log('');
  console.log('Other API traffic (audit log, not from watchers), per phase:');
  for (const r of rows) {
    const o = Object.entries(r.others).filter(([k]) => !k.startsWith('bench driver: get metrics') && !k.includes('/metrics'));
    console.log(`  ${r.name}: ${o.length ? o.map(([k, n]) => `${k} ×${n}`).join('; ') : 'none'}`);
  }
  console.log('');
  console.log(
    `Last step's start: ${syncTimes.length} listed (p50 ${ms(pct(syncTimes, 0.5))}, p99 ${ms(pct(syncTimes, 0.99))}, max ${ms(pct(syncTimes, 1))}); ${watchTimes.length} watching (max ${ms(pct(watchTimes, 1))}); over the run: failed attempts ${errors}, watch restarts ${restarts}`,
  );
  console.log(
    `Requests per node over the whole run: client min ${Math.min(...perNodeTotal)} / max ${Math.max(...perNodeTotal)}; audit min ${Math.min(...serverPerNodeVals)} / max ${Math.max(...serverPerNodeVals)} (goal: exactly 1 list + 1 watch)`,
  );
  console.log(
    `Open watches on configmaps: apiserver_registered_watchers ${m0.registeredWatchers} before the watchers, ${afterStart.metrics.registeredWatchers} after the last start, ${idleMetrics.registeredWatchers} after idle, ${endMetrics.registeredWatchers} at the end; ` +
      `apiserver_longrunning_gauge WATCH ${afterStart.metrics.longrunningWatches} → ${endMetrics.longrunningWatches}; ESTABLISHED sockets to the API server port ${established0} → ${afterStart.established} → ${endEstablished} (includes its own loopback clients)`,
  );
  console.log(
    `(b) last change: seen by ${lat.length}/${NODES}: p50 ${ms(pct(lat, 0.5))}, p99 ${ms(pct(lat, 0.99))}, max ${ms(pct(lat, 1))} after the PATCH was sent; ` +
      `onChange calls ${changeCalls}, desired state changed on ${changeReconciles} nodes (${desiredAfterChange} now want ${finalPlugins}); requests caused ${change.clientReqs} (client) / ${change.serverReqs} (audit)`,
  );
  console.log(
    `(c1) unchanged PUT + same-data PATCH: resourceVersion ${rvKept ? 'unchanged' : 'CHANGED'}; onChange calls ${noopCalls}; requests ${noop.clientReqs}/${noop.serverReqs}`,
  );
  console.log(
    `(c2) annotation-only PATCH: seen by ${annLat.length}/${NODES} (max ${ms(pct(annLat, 1))}); onChange calls ${annCalls} (the watch layer reports every new resourceVersion); desired state changed on ${annReconciles} nodes (reconciles triggered); requests ${ann.clientReqs}/${ann.serverReqs}`,
  );
  const perWatchKb = (idle.api.rssKb - base.api.rssKb) / NODES;
  console.log(
    `(d) kube-apiserver RSS ${mib(base.api.rssKb)} without watchers → ${mib(idle.api.rssKb)} with ${NODES} (≈${perWatchKb.toFixed(0)} KiB per watch), fds ${base.api.fds} → ${idle.api.fds}, threads ${base.api.threads} → ${idle.api.threads}; ` +
      `etcd RSS ${mib(base.etcd.rssKb)} → ${mib(idle.etcd.rssKb)}, fds ${base.etcd.fds} → ${idle.etcd.fds}; ` +
      `CPU while idle: apiserver ${(base.apiCpuMs / base.seconds / 10).toFixed(1)}% → ${(idle.apiCpuMs / idle.seconds / 10).toFixed(1)}% of a core, etcd ${(base.etcdCpuMs / base.seconds / 10).toFixed(1)}% → ${(idle.etcdCpuMs / idle.seconds / 10).toFixed(1)}%; ` +
      `bench process (all ${NODES} watchers) RSS ${mib(idle.selfRss / 1024)}, CPU while idle ${(idle.selfCpuMs / idle.seconds / 10).toFixed(1)}%`,
  );
  if (startRejected.length) console.log(`Requests the API server refused (its metrics, cumulative):\n  ${startRejected.join('\n  ')}`);
  const auditStart = [...auditSeen.values()].filter((r) => r.who === 'watcher');
  const auditCodes: Record<string, number> = {};
  for (const r of auditStart) auditCodes[`${r.verb} ${r.code ?? 'open'}`] = (auditCodes[`${r.verb} ${r.code ?? 'open'}`] ?? 0) + 1;
  console.log(
    `Watcher requests by verb and answer over the whole run (audit; "open" = still running): ${Object.entries(auditCodes)
      .map(([k, n]) => `${k} ×${n}`)
      .join(', ')}`,
  );
  const refusedOnlyWith429 = auditStart.every((r) => r.code === undefined || r.code === 200 || r.code === 429);
  const distinctErrors = [...new Set(nodes.flatMap((n) => n.errors))].slice(0, 5);
  const distinctRestarts = [...new Set(nodes.flatMap((n) => n.restarts))].slice(0, 5);
  if (distinctErrors.length) console.log(`failed attempts (first distinct): \n  ${distinctErrors.join('\n  ')}`);
  if (distinctRestarts.length) console.log(`watch restarts (first distinct): \n  ${distinctRestarts.join('\n  ')}`);
  const lists = nodes.reduce((s, n) => s + n.req.list, 0);
  const watches = nodes.reduce((s, n) => s + n.req.watch, 0);

  console.log('');
  console.log(`Goals (at ${NODES} nodes):`);
  console.log(`  every node listed and watching             ${goal(synced === NODES && watching === NODES, 'not every node synced')}`);
  console.log(
    `  start: 1 list + 1 watch per node           ${goal(lists === NODES && watches === NODES && (auditCodes['list 200'] ?? 0) === NODES && refusedOnlyWith429, `start: ${JSON.stringify(start.serverByVerb)}, client list ${lists} watch ${watches}`)}`,
  );
  console.log(
    `    (retries only after 429 from the server: ${nodes.reduce((s, n) => s + n.req.failed, 0)} on ${nodes.filter((n) => n.req.failed > 0).length} nodes)`,
  );
  console.log(
    `  one open watch per node                    ${goal(idleMetrics.registeredWatchers >= NODES && idleMetrics.registeredWatchers <= NODES + 5, `registered watchers ${idleMetrics.registeredWatchers}`)}`,
  );
  console.log(
    `  idle: 0 requests                           ${goal(
      curve.every((r) => r.idleRequests === 0),
      `idle: ${curve.map((r) => r.idleRequests).join('/')} requests`,
    )}`,
  );
  console.log(
    `  change: all nodes see it                   ${goal(lat.length === NODES && changeReconciles === NODES, `change seen by ${lat.length}, reconciles ${changeReconciles}`)}`,
  );
  console.log(
    `  change: 0 requests                         ${goal(
      curve.every((r) => r.changeRequests === 0),
      `change: ${curve.map((r) => r.changeRequests).join('/')} requests`,
    )}`,
  );
  console.log(
    `  unchanged write: 0 onChange, 0 requests    ${goal(rvKept && noopCalls === 0 && noop.clientReqs === 0 && noop.serverReqs === 0, `unchanged write: onChange ${noopCalls}, requests ${noop.clientReqs}/${noop.serverReqs}`)}`,
  );
  console.log(
    `  annotation-only: 0 reconciles, 0 requests  ${goal(annReconciles === 0 && ann.clientReqs === 0 && ann.serverReqs === 0 && annLat.length === NODES, `annotation: reconciles ${annReconciles}, requests ${ann.clientReqs}/${ann.serverReqs}`)}`,
  );
  console.log(
    `  no watch restarts; no failure but 429      ${goal(restarts === 0 && nodes.every((n) => n.errors.every((e) => e.includes('429'))), `restarts ${restarts}, failed attempts ${errors}`)}`,
  );
  console.log(
    '  writes by watchers: 0 (they only GET)      ' +
      goal(
        [...auditSeen.values()].every((r) => r.who !== 'watcher' || r.verb === 'list' || r.verb === 'watch' || r.verb === 'get'),
        'a watcher wrote',
      ),
  );
  return { curve, rows };
}

function softFdLimit(): string {
  try {
    return execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

let code = 0;
const tAll = now();
let result: Awaited<ReturnType<typeof main>> | undefined;
try {
  result = await main();
  if (failed.length) {
    console.log(`\nRESULT: goals missed: ${failed.join('; ')}`);
    code = 1;
  } else {
    console.log('\nRESULT: all goals met');
  }
} catch (e) {
  console.error(`many-nodes: ${e instanceof Error ? e.stack : String(e)}`);
  code = 1;
} finally {
  const tStop = now();
  for (const w of watchers) w.stop();
  await Promise.race([Promise.all(watchers.map((w) => w.done)), sleep(10_000)]);
  const stoppedWatchers = now() - tStop;
  await cluster?.stop().catch((e: unknown) => console.error(`stopping the cluster: ${e instanceof Error ? e.message : String(e)}`));
  if (args.get('keep') === 'true') console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
  console.log(`stopped ${watchers.length} watchers in ${ms(stoppedWatchers)} and the cluster; total ${((now() - tAll) / 1000).toFixed(0)} s`);
}
const file = writeResults('many-nodes', {
  benchmark: 'many-nodes',
  date: new Date().toISOString(),
  machine: machine(),
  steps: STEPS,
  idleSeconds: IDLE_S,
  failed,
  curve: result?.curve,
  phases: result?.rows,
});
console.log(`results: ${file}`);
process.exit(code);
