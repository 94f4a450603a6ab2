// Daemon reaction benchmark (issues 4 and 12, goal 3): `cni-node run` against the
// real test kube-apiserver 1.20.2 (in-cluster credentials from a projected
// service-account dir, as in a DaemonSet), Debian's CNI plugins as the image's
// plugins, temporary node dirs.
//
//   1. single changes, BENCH_CHANGES (100) of each, one at a time:
//        a. ConfigMap change → file on the node: from just before the PATCH is sent
//           (API server time included) until the plugin is on (or gone from) the node;
//        b. pointer-target change → re-rendered config: from the rename that
//           replaces 10-calico.conflist until 05-multus.conf holds its content;
//   2. bursts, BENCH_BURSTS (20) of BENCH_BURST_SIZE (5) changes sent back to back:
//      from the last change of the burst to the final state on the node, and how many
//      reconciles each burst cost (the queue acts on the first change at once and on
//      the rest together: 2 is the design, the burst size would be no coalescing);
//   3. API requests per change (the daemon's own client, cni_node_api_requests_total);
//   4. container start → node converged: BENCH_STARTS (10) starts of a fresh daemon
//      on an empty node (plugins + the template rendered), and on a node it already
//      converged (a restart), next to `node -e 0` timed in the same rounds.
//
// The daemon runs with the image's Node/V8 flags (Dockerfile ENTRYPOINT), node start
// with the same; BENCH_NODE_FLAGS replaces them ("" for none, or e.g. "--lite-mode");
// CNI_NODE_DEBOUNCE is passed through (default 100ms).
// Run: npm run build && node build/bench/daemon.js   (root, test kube-apiserver)
import { spawn, type ChildProcess } from 'node:child_process';
import { watch } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { clusterUnavailableReason, startTestCluster, type TestCluster } from '../test/e2e/support/cluster.js';
import { NS, grantServiceAccount, nodeTree, putConfigMap, type Cleanups, type Tree } from '../test/e2e/support/daemon.js';
import { calico, multusSetup, podEnv, runArgs } from './daemon-setup.js';
import { IMAGE_NODE_FLAGS, NODE, machine, metricSum, ms, round, sleep, summary, table, timeProcess, writeResults, type Summary } from './lib.js';

const N = Number(process.env['BENCH_CHANGES'] ?? 100);
const BURSTS = Number(process.env['BENCH_BURSTS'] ?? 20);
const BURST_SIZE = Number(process.env['BENCH_BURST_SIZE'] ?? 5);
const STARTS = Number(process.env['BENCH_STARTS'] ?? 10);
const NODE_FLAGS = (process.env['BENCH_NODE_FLAGS'] ?? IMAGE_NODE_FLAGS.join(' ')).split(/\s+/).filter((x) => x !== '');
const CM = 'bench-cni';
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Resolves with performance.now() when check() holds; checked on every event in `dirs` and every 10 ms. */
function waitFor(dirs: string[], check: () => Promise<boolean>, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false;
    const watchers = dirs.map((d) => watch(d, () => void probe()));
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      for (const w of watchers) w.close();
      clearInterval(iv);
      clearTimeout(to);
      if (err) reject(err);
      else resolve(performance.now());
    };
    const probe = () =>
      check().then(
        (ok) => {
          if (ok) finish();
        },
        () => undefined,
      );
    const iv = setInterval(() => void probe(), 10);
    const to = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    void probe();
  });
}

interface RunningDaemon {
  child: ChildProcess;
  address: string;
  log: string[];
  spawnedAt: number;
  scrape(): Promise<string>;
  stop(): Promise<void>;
}

function spawnDaemon(cluster: TestCluster, tree: Tree, pod: string): { child: ChildProcess; log: string[]; spawnedAt: number } {
  const args = [...NODE_FLAGS, ...runArgs(tree, CM)];
  const spawnedAt = performance.now();
  const child = spawn(NODE, args, { env: podEnv(cluster, tree, pod), stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const onData = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n')) if (l !== '' && log.length < 5000) log.push(l);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return { child, log, spawnedAt };
}

async function startDaemon(cluster: TestCluster, tree: Tree, pod: string, cleanups: Cleanups): Promise<RunningDaemon> {
  const { child, log, spawnedAt } = spawnDaemon(cluster, tree, pod);
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let address: string | undefined;
  for (let i = 0; i < 1500 && !address; i++) {
    address = /metrics on (127\.0\.0\.1:\d+)/.exec(log.join('\n'))?.[1];
    if (!address) await sleep(10);
  }
  if (!address) throw new Error(`the daemon did not start:\n${log.join('\n')}`);
  const addr = address;
  return {
    child,
    address: addr,
    log,
    spawnedAt,
    scrape: async () => (await fetch(`http://${addr}/metrics`)).text(),
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function waitReady(d: RunningDaemon): Promise<number> {
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${d.address}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return performance.now();
    if (i > 3000) throw new Error(`not ready:\n${d.log.join('\n')}`);
    await sleep(5);
  }
}

const unavailable = clusterUnavailableReason();
if (unavailable) {
  console.log(`bench daemon: SKIPPED: ${unavailable}`);
  process.exit(0);
}

const cluster = await startTestCluster();
const cleanups: Cleanups = [];
const results: Record<string, unknown> = {};
try {
  await grantServiceAccount(cluster, 'cni-node-bench', [
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
  ]);
  await putConfigMap(cluster, CM, { plugins: 'bridge,portmap', configs: '05-multus.conf', manifests: '' });
  const patch = async (plugins: string) => {
    const r = await cluster.request('PATCH', `/api/v1/namespaces/${NS}/configmaps/${CM}`, { data: { plugins } });
    if (r.status !== 200) throw new Error(r.text);
  };

  console.log(
    `cni-node run reaction benchmark: ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(
        ' ',
      )}, ${NODE} ${NODE_FLAGS.join(' ')}; kube-apiserver 1.20.2 on loopback; CNI_NODE_DEBOUNCE=${process.env['CNI_NODE_DEBOUNCE'] ?? '100ms (default)'}\n`,
  );

  const tree = await nodeTree(cluster, cleanups, 'cni-node-bench-run-');
  await multusSetup(tree);
  const d = await startDaemon(cluster, tree, 'cni-node-bench', cleanups);
  await waitReady(d);
  const vlan = path.join(tree.bin, 'vlan');
  const multus = path.join(tree.netd, '05-multus.conf');

  // ---- 1a. ConfigMap change → node, one at a time ----
  const m0 = await d.scrape();
  const cmLat: number[] = [];
  for (let i = 0; i < N; i++) {
    const add = i % 2 === 0;
    const t0 = performance.now();
    await patch(add ? 'bridge,portmap,vlan' : 'bridge,portmap');
    cmLat.push((await waitFor([tree.bin], async () => (await exists(vlan)) === add)) - t0);
    await sleep(30);
  }
  await sleep(500);
  const m1 = await d.scrape();

  // ---- 1b. pointer target change → re-rendered config, one at a time ----
  const ptrLat: number[] = [];
  let gen = 0;
  const replaceCalico = async () => {
    const name = `k8s-pod-network-${gen++}`;
    const tmp = path.join(tree.netd, '.calico.tmp');
    await writeFile(tmp, calico(name));
    await rename(tmp, path.join(tree.netd, '10-calico.conflist'));
    return name;
  };
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const name = await replaceCalico();
    ptrLat.push((await waitFor([tree.netd], async () => (await readFile(multus, 'utf8')).includes(`"${name}"`))) - t0);
    await sleep(30);
  }
  await sleep(500);
  const m2 = await d.scrape();

  // ---- 2a. ConfigMap bursts ----
  const cmBurstLat: number[] = [];
  const cmBurstReconciles: number[] = [];
  for (let b = 0; b < BURSTS; b++) {
    const before = metricSum(await d.scrape(), 'cni_node_reconciles_total');
    const finalAdd = b % 2 === 0;
    // Every PATCH is a real change, and only the last one reaches the final state (vlan
    // on or off, no macvlan): the first PATCH's reconcile, which starts at once, must
    // not look like the end of the burst. The others toggle macvlan on the state before.
    const previous = finalAdd ? 'bridge,portmap' : 'bridge,portmap,vlan';
    for (let k = 0; k < BURST_SIZE - 1; k++) await patch(k % 2 === 0 ? `${previous},macvlan` : previous);
    await patch(finalAdd ? 'bridge,portmap,vlan' : 'bridge,portmap');
    const tLast = performance.now();
    const macvlan = path.join(tree.bin, 'macvlan');
    cmBurstLat.push((await waitFor([tree.bin], async () => (await exists(vlan)) === finalAdd && !(await exists(macvlan)))) - tLast);
    await sleep(1200); // past the debounce's longest wait: every reconcile of the burst is counted
    cmBurstReconciles.push(metricSum(await d.scrape(), 'cni_node_reconciles_total') - before);
  }

  // ---- 2b. pointer-target bursts ----
  const ptrBurstLat: number[] = [];
  const ptrBurstReconciles: number[] = [];
  for (let b = 0; b < BURSTS; b++) {
    const before = metricSum(await d.scrape(), 'cni_node_reconciles_total');
    let name = '';
    for (let k = 0; k < BURST_SIZE; k++) name = await replaceCalico();
    const tLast = performance.now();
    ptrBurstLat.push((await waitFor([tree.netd], async () => (await readFile(multus, 'utf8')).includes(`"${name}"`))) - tLast);
    await sleep(1200);
    ptrBurstReconciles.push(metricSum(await d.scrape(), 'cni_node_reconciles_total') - before);
  }
  const m3 = await d.scrape();
  await d.stop();

  const requests = (a: string, b: string) => metricSum(b, 'cni_node_api_requests_total') - metricSum(a, 'cni_node_api_requests_total');
  const reconciles = (a: string, b: string) => metricSum(b, 'cni_node_reconciles_total') - metricSum(a, 'cni_node_reconciles_total');
  const s = {
    cm: summary(cmLat),
    ptr: summary(ptrLat),
    cmBurst: summary(cmBurstLat),
    ptrBurst: summary(ptrBurstLat),
  };
  const row = (what: string, x: Summary, extra: string) => [what, ms(x.median), ms(x.p90), ms(x.p99), ms(x.max), extra];
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    table(
      ['event → node', 'p50', 'p90', 'p99', 'max', 'reconciles'],
      [
        row(`ConfigMap PATCH → plugin on/off the node (${N} single changes)`, s.cm, `${reconciles(m0, m1)} for ${N} changes`),
        row(`pointer target renamed → config re-rendered (${N} single changes)`, s.ptr, `${reconciles(m1, m2)} for ${N} changes`),
        row(
          `ConfigMap burst of ${BURST_SIZE} PATCHes: last PATCH → final state (${BURSTS} bursts)`,
          s.cmBurst,
          `${avg(cmBurstReconciles).toFixed(2)} per burst (max ${Math.max(...cmBurstReconciles)})`,
        ),
        row(
          `pointer-target burst of ${BURST_SIZE} renames: last → final config (${BURSTS} bursts)`,
          s.ptrBurst,
          `${avg(ptrBurstReconciles).toFixed(2)} per burst (max ${Math.max(...ptrBurstReconciles)})`,
        ),
      ],
    ),
  );
  console.log(
    `\nAPI requests by the daemon: ${requests(m0, m1)} for ${N} ConfigMap changes, ${requests(m1, m2)} for ${N} pointer changes, ${requests(m2, m3)} during the bursts`,
  );

  // ---- 4. container start → converged ----
  const fresh: Array<{ converged: number; ready: number }> = [];
  const restart: Array<{ ready: number }> = [];
  const nodeStart: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    nodeStart.push(timeProcess(NODE, [...NODE_FLAGS, '-e', '0']));
    const t = await nodeTree(cluster, cleanups, 'cni-node-bench-start-');
    await multusSetup(t);
    const want = ['bridge', 'portmap'].map((p) => path.join(t.bin, p));
    const converged = waitFor(
      [t.bin, t.netd],
      async () =>
        (await Promise.all(want.map(exists))).every(Boolean) &&
        (await readFile(path.join(t.netd, '05-multus.conf'), 'utf8').catch(() => '')).includes('"k8s-initial"'),
      30_000,
    );
    const dd = await startDaemon(cluster, t, `cni-node-bench-start-${i}`, cleanups);
    const [tc, tr] = await Promise.all([converged, waitReady(dd)]);
    fresh.push({ converged: tc - dd.spawnedAt, ready: tr - dd.spawnedAt });
    await dd.stop();
    // The same node again: nothing to write, ready when it has checked.
    const again = await startDaemon(cluster, t, `cni-node-bench-start-${i}`, cleanups);
    restart.push({ ready: (await waitReady(again)) - again.spawnedAt });
    await again.stop();
    await rm(t.root, { recursive: true, force: true });
  }
  const st = {
    nodeStart: summary(nodeStart),
    converged: summary(fresh.map((x) => x.converged)),
    ready: summary(fresh.map((x) => x.ready)),
    restartReady: summary(restart.map((x) => x.ready)),
  };
  console.log(`\nContainer start → node converged (${STARTS} starts; spawn of the process to the last file on the node):\n`);
  console.log(
    table(
      ['', 'median', 'p90', 'max', 'minus node start (median)'],
      [
        ['`node -e 0`', ms(st.nodeStart.median), ms(st.nodeStart.p90), ms(st.nodeStart.max), ''],
        [
          'empty node: plugins + template on the node',
          ms(st.converged.median),
          ms(st.converged.p90),
          ms(st.converged.max),
          ms(st.converged.median - st.nodeStart.median),
        ],
        ['empty node: /readyz 200', ms(st.ready.median), ms(st.ready.p90), ms(st.ready.max), ms(st.ready.median - st.nodeStart.median)],
        [
          'restart on a converged node: /readyz 200',
          ms(st.restartReady.median),
          ms(st.restartReady.p90),
          ms(st.restartReady.max),
          ms(st.restartReady.median - st.nodeStart.median),
        ],
      ],
    ),
  );

  console.log('\nGoals:');
  const goal = (ok: boolean, text: string) => console.log(`  ${ok ? 'met ' : 'MISS'}  ${text}`);
  goal(s.cm.p99 <= 150, `ConfigMap → node p99 ≤ 150 ms: ${ms(s.cm.p99)} (p50 ${ms(s.cm.median)})`);
  goal(s.ptr.p99 <= 150, `pointer target → config p99 ≤ 150 ms: ${ms(s.ptr.p99)} (p50 ${ms(s.ptr.median)})`);
  goal(
    st.converged.median - st.nodeStart.median <= 300,
    `container start → converged ≤ node start + 300 ms: node start + ${ms(st.converged.median - st.nodeStart.median)}`,
  );
  goal(
    Math.max(...cmBurstReconciles, ...ptrBurstReconciles) < BURST_SIZE,
    `bursts coalesce: ${avg(cmBurstReconciles).toFixed(2)} (ConfigMap) and ${avg(ptrBurstReconciles).toFixed(2)} (pointer) reconciles per burst of ${BURST_SIZE}`,
  );
  Object.assign(results, {
    single: {
      configMap: s.cm,
      pointer: s.ptr,
      reconciles: { configMap: reconciles(m0, m1), pointer: reconciles(m1, m2) },
      requests: { configMap: requests(m0, m1), pointer: requests(m1, m2), bursts: requests(m2, m3) },
    },
    bursts: {
      size: BURST_SIZE,
      count: BURSTS,
      configMap: s.cmBurst,
      pointer: s.ptrBurst,
      reconcilesConfigMap: cmBurstReconciles,
      reconcilesPointer: ptrBurstReconciles,
    },
    start: st,
    samples: { cmLat: cmLat.map((x) => round(x)), ptrLat: ptrLat.map((x) => round(x)), fresh, restart, nodeStart: nodeStart.map((x) => round(x)) },
  });
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await cluster.stop();
}
const file = writeResults(
  `daemon${process.env['BENCH_NODE_FLAGS'] !== undefined && NODE_FLAGS.length ? `-${NODE_FLAGS.join('_').replace(/[^a-z0-9_=-]/gi, '')}` : ''}`,
  {
    benchmark: 'daemon',
    date: new Date().toISOString(),
    machine: machine(),
    nodeFlags: NODE_FLAGS,
    debounce: process.env['CNI_NODE_DEBOUNCE'] ?? null,
    ...results,
  },
);
console.log(`\nresults: ${file}`);
