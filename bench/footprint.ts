// Daemon footprint benchmark (issue 12, goal 2): what an idle `cni-node run` costs
// a node, against a bare-Node floor measured the same way in the same window, and
// what that memory is made of.
//
//  1. Idle. `cni-node run` against the real test kube-apiserver 1.20.2 (in-cluster
//     credentials from a projected service-account dir, as in a DaemonSet), with a
//     ConfigMap watch open (2 plugins, 1 template with a pointer), --kubeconfig-out
//     active and /metrics scraped every 15 s. The floor: `node -e` idling with an
//     http server, scraped the same way. After BENCH_IDLE_SECONDS (60; the goal is
//     stated for 600) each process's RSS (VmRSS, and its anonymous/file parts) and
//     its CPU over the window (/proc/PID/stat utime+stime) are read. Every V8 flag
//     variant (BENCH_FOOTPRINT_FLAGS) runs as its own daemon + floor pair in the same
//     window, so the flags are compared under the same conditions. One more daemon
//     reads a kubeconfig instead of the service account.
//  2. Inside the process: a tiny preload (--require) answers SIGUSR2 with
//     process.memoryUsage() and V8's heap-space and code statistics, so the daemon's
//     RSS is split into V8 heap (by space), code, external/array buffers and the rest.
//  3. Attribution: each module the daemon loads, imported alone into a bare Node,
//     idle 3 s, RSS and heap diffed against the same script importing nothing
//     (median of BENCH_ATTRIBUTION_RUNS, 3).
//
// Run: npm run build && node build/bench/footprint.js   (root, test kube-apiserver)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { clusterUnavailableReason, startTestCluster, type TestCluster } from '../test/e2e/support/cluster.js';
import { grantServiceAccount, nodeTree, putConfigMap, type Cleanups } from '../test/e2e/support/daemon.js';
import { multusSetup, podEnv, runArgs } from './daemon-setup.js';
import { BUNDLE, IMAGE_NODE_FLAGS, NODE, ROOT, machine, median, procStat, round, sleep, smapsRollup, table, writeResults } from './lib.js';

const IDLE_S = Number(process.env['BENCH_IDLE_SECONDS'] ?? 60);
const SCRAPE_S = Number(process.env['BENCH_SCRAPE_SECONDS'] ?? 15);
const ATTRIBUTION_RUNS = Number(process.env['BENCH_ATTRIBUTION_RUNS'] ?? 3);
const CM = 'bench-footprint';
/** The image's flags (Dockerfile ENTRYPOINT): the variant the goal is judged on. */
const IMAGE_FLAGS = IMAGE_NODE_FLAGS.join(' ');
/**
 * Variants, `;`-separated, each a space-separated list of Node/V8 flags and
 * NAME=VALUE environment settings (glibc's MALLOC_ARENA_MAX, …); "" = defaults.
 * The first is the image's; the others show what each flag does alone.
 */
const FLAG_SETS = (
  process.env['BENCH_FOOTPRINT_FLAGS'] ??
  `${IMAGE_FLAGS};;--no-opt --no-maglev;--no-opt --no-maglev --no-sparkplug;--max-semi-space-size=1;--optimize-for-size;--lite-mode;--jitless;MALLOC_ARENA_MAX=1`
)
  .split(';')
  .map((s) =>
    s
      .trim()
      .split(/\s+/)
      .filter((x) => x !== ''),
  );

const PROBE = String.raw`
// Loaded with --require: on SIGUSR2, writes the process's own view of its memory to $CNI_NODE_BENCH_PROBE_OUT.
process.on('SIGUSR2', () => {
  const v8 = require('node:v8');
  const out = {
    memoryUsage: process.memoryUsage(),
    heap: v8.getHeapStatistics(),
    spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }])),
    code: v8.getHeapCodeStatistics(),
  };
  require('node:fs').writeFileSync(process.env.CNI_NODE_BENCH_PROBE_OUT, JSON.stringify(out));
});
`;

const FLOOR = String.raw`
const http = require('node:http');
const s = http.createServer((req, res) => { res.setHeader('content-type', 'text/plain'); res.end('# floor\nup 1\n'); });
s.listen(0, '127.0.0.1', () => console.log('serving /healthz /readyz /metrics on 127.0.0.1:' + s.address().port));
`;

// The least a ConfigMap-watching node agent written in Node must do: the floor's http
// server, plus one TLS watch on the ConfigMap (the service account's token and CA)
// and fs.watch on the two node dirs. Not a goal's floor: it shows how much of the
// daemon's memory any Node client of the API would pay.
const WATCH_FLOOR = String.raw`
const fs = require('node:fs'), https = require('node:https'), http = require('node:http'), path = require('node:path');
const sa = process.env.CNI_NODE_SERVICE_ACCOUNT_DIR;
const s = http.createServer((req, res) => { res.setHeader('content-type', 'text/plain'); res.end('# floor\nup 1\n'); });
s.listen(0, '127.0.0.1', () => console.log('serving /healthz /readyz /metrics on 127.0.0.1:' + s.address().port));
for (const d of process.env.WATCH_DIRS.split(':')) fs.watch(d, () => {});
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: fs.readFileSync(path.join(sa, 'ca.crt')) });
const watch = () => https.get({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT, agent,
  path: '/api/v1/namespaces/' + process.env.POD_NAMESPACE + '/configmaps?watch=1&fieldSelector=metadata.name%3D' + process.env.WATCH_CM + '&timeoutSeconds=600',
  headers: { authorization: 'Bearer ' + fs.readFileSync(path.join(sa, 'token'), 'utf8').trim() } }, (res) => { res.on('data', () => {}); res.on('end', watch); }).on('error', () => setTimeout(watch, 1000));
watch();
`;

interface Subject {
  label: string;
  kind: 'daemon' | 'floor';
  flags: string[];
  child: ChildProcess;
  address: string;
  probeOut: string;
  log: string[];
  scrapes: number;
  scrapeErrors: number;
}

interface IdleResult {
  label: string;
  kind: 'daemon' | 'floor';
  flags: string;
  rssMiB: number;
  rssMaxMiB: number;
  anonMiB: number;
  fileMiB: number;
  pssMiB: number;
  cpuSeconds: number;
  cpuPercent: number;
  scrapes: number;
  inProcess?: Record<string, number>;
}

const mib = (kb: number) => round(kb / 1024, 1);

async function waitLine(child: ChildProcess, log: string[], re: RegExp, ms = 30_000): Promise<string> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const hit = log.find((l) => re.test(l));
    if (hit) return hit;
    if (child.exitCode !== null) break;
    await sleep(20);
  }
  throw new Error(`no line matching ${re} within ${ms} ms:\n${log.join('\n')}`);
}

function spawnSubject(
  label: string,
  kind: 'daemon' | 'floor',
  flags: string[],
  args: string[],
  env: NodeJS.ProcessEnv,
  probeFile: string,
  work: string,
): { child: ChildProcess; log: string[]; probeOut: string } {
  const probeOut = path.join(work, `probe-${label.replace(/[^a-z0-9]+/gi, '_')}.json`);
  const settings = Object.fromEntries(flags.filter((f) => /^[A-Z_]+=/.test(f)).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  const nodeFlags = flags.filter((f) => !/^[A-Z_]+=/.test(f));
  const child = spawn(NODE, [...nodeFlags, '--require', probeFile, ...args], {
    env: { ...env, ...settings, CNI_NODE_BENCH_PROBE_OUT: probeOut },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const onData = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n')) if (l !== '' && log.length < 2000) log.push(l);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return { child, log, probeOut };
}

async function idle(cluster: TestCluster, work: string, cleanups: Cleanups): Promise<{ results: IdleResult[]; windowS: number }> {
  await grantServiceAccount(cluster, 'cni-node-bench-footprint', [
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
  ]);
  await putConfigMap(cluster, CM, { plugins: 'bridge,portmap', configs: '05-multus.conf', manifests: '' });
  const probeFile = path.join(work, 'probe.cjs');
  writeFileSync(probeFile, PROBE);
  const subjects: Subject[] = [];
  const variants: Array<{ label: string; flags: string[]; kubeconfig: boolean }> = FLAG_SETS.map((f) => ({
    label: f.length === 0 ? 'defaults' : f.join(' ') === IMAGE_FLAGS ? `image: ${IMAGE_FLAGS}` : f.join(' '),
    flags: f,
    kubeconfig: false,
  }));
  variants.push({ label: `image: ${IMAGE_FLAGS}, --kubeconfig instead of in-cluster credentials`, flags: [...IMAGE_NODE_FLAGS], kubeconfig: true });
  for (const v of variants) {
    const tree = await nodeTree(cluster, cleanups, 'cni-node-bench-fp-');
    await multusSetup(tree);
    const env = podEnv(cluster, tree, `cni-node-bench-fp-${subjects.length}`);
    const args = runArgs(tree, CM, [
      `--kubeconfig-out=${path.join(tree.netd, 'multus.d/multus.kubeconfig')}`,
      ...(v.kubeconfig ? [`--kubeconfig=${cluster.writeKubeconfig(cluster.tokens.serviceAccount)}`] : []),
    ]);
    const pairs: Array<['daemon' | 'floor', string[], string]> = v.kubeconfig
      ? [['daemon', args, v.label]]
      : [
          ['daemon', args, v.label],
          ['floor', ['-e', FLOOR], v.label],
        ];
    if (v.flags.length === 0 && !v.kubeconfig) pairs.push(['floor', ['-e', WATCH_FLOOR], 'floor + one TLS ConfigMap watch + fs.watch of the node dirs']);
    for (const [kind, a, label] of pairs) {
      const s = spawnSubject(`${kind} ${label}`, kind, v.flags, a, { ...env, WATCH_DIRS: `${tree.bin}:${tree.netd}`, WATCH_CM: CM }, probeFile, work);
      cleanups.push(async () => {
        if (s.child.exitCode === null) s.child.kill('SIGKILL');
      });
      const line = await waitLine(s.child, s.log, /serving \/healthz \/readyz \/metrics on /);
      const address = (/on (127\.0\.0\.1:\d+)/.exec(line) as RegExpExecArray)[1] as string;
      subjects.push({ label, kind, flags: v.flags, child: s.child, address, probeOut: s.probeOut, log: s.log, scrapes: 0, scrapeErrors: 0 });
    }
  }
  // Converged: every daemon ready (plugins and the template on its node).
  for (const s of subjects.filter((x) => x.kind === 'daemon')) {
    for (let i = 0; ; i++) {
      const r = await fetch(`http://${s.address}/readyz`).then(
        (x) => x.status,
        () => 0,
      );
      if (r === 200) break;
      if (i > 1500) throw new Error(`daemon ${s.label} not ready:\n${s.log.join('\n')}`);
      await sleep(20);
    }
  }
  // Let start-up work (JIT, the first GCs) settle before the window opens.
  await sleep(5_000);
  const scrape = async (s: Subject) => {
    try {
      const r = await fetch(`http://${s.address}/metrics`);
      await r.text();
      s.scrapes++;
    } catch {
      s.scrapeErrors++;
    }
  };
  const start = new Map(subjects.map((s) => [s, procStat(s.child.pid as number)]));
  const maxRss = new Map(subjects.map((s) => [s, 0]));
  const t0 = performance.now();
  process.stderr.write(`  idle window: ${IDLE_S} s, ${subjects.length} processes, /metrics every ${SCRAPE_S} s\n`);
  let nextScrape = 0;
  while (performance.now() - t0 < IDLE_S * 1000) {
    const elapsed = (performance.now() - t0) / 1000;
    if (elapsed >= nextScrape) {
      await Promise.all(subjects.map(scrape));
      nextScrape += SCRAPE_S;
    }
    for (const s of subjects) maxRss.set(s, Math.max(maxRss.get(s) as number, procStat(s.child.pid as number).rssKb));
    await sleep(Math.min(1000, Math.max(10, (nextScrape - (performance.now() - t0) / 1000) * 1000)));
  }
  const windowS = (performance.now() - t0) / 1000;
  const results: IdleResult[] = [];
  for (const s of subjects) {
    const end = procStat(s.child.pid as number);
    const smaps = smapsRollup(s.child.pid as number);
    s.child.kill('SIGUSR2');
    let inProcess: Record<string, number> | undefined;
    for (let i = 0; i < 100 && !inProcess; i++) {
      await sleep(20);
      if (existsSync(s.probeOut)) inProcess = flattenProbe(JSON.parse(readFileSync(s.probeOut, 'utf8')));
    }
    const cpu = end.cpuSeconds - (start.get(s) as { cpuSeconds: number }).cpuSeconds;
    results.push({
      label: s.label,
      kind: s.kind,
      flags: s.flags.join(' '),
      rssMiB: mib(end.rssKb),
      rssMaxMiB: mib(Math.max(maxRss.get(s) as number, end.rssKb)),
      anonMiB: mib(end.rssAnonKb),
      fileMiB: mib(end.rssFileKb),
      pssMiB: mib(smaps['Pss'] ?? NaN),
      cpuSeconds: round(cpu, 3),
      cpuPercent: round((cpu / windowS) * 100, 4),
      scrapes: s.scrapes,
      ...(inProcess ? { inProcess } : {}),
    });
    if (s.scrapeErrors) console.log(`  (${s.kind} ${s.label}: ${s.scrapeErrors} scrapes failed)`);
  }
  for (const s of subjects) {
    s.child.kill('SIGTERM');
  }
  return { results, windowS };
}

interface Probe {
  memoryUsage: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
  heap: { total_physical_size: number; malloced_memory: number; external_memory: number };
  spaces: Record<string, { size: number; used: number; physical: number }>;
  code: { code_and_metadata_size: number; bytecode_and_metadata_size: number };
}

function flattenProbe(p: Probe): Record<string, number> {
  const m = (x: number) => round(x / 2 ** 20, 2);
  const out: Record<string, number> = {
    rss: m(p.memoryUsage.rss),
    heapTotal: m(p.memoryUsage.heapTotal),
    heapUsed: m(p.memoryUsage.heapUsed),
    heapPhysical: m(p.heap.total_physical_size),
    external: m(p.memoryUsage.external),
    arrayBuffers: m(p.memoryUsage.arrayBuffers),
    malloced: m(p.heap.malloced_memory),
    bytecode: m(p.code.bytecode_and_metadata_size),
    machineCode: m(p.code.code_and_metadata_size),
  };
  for (const [name, s] of Object.entries(p.spaces)) out[`space:${name}`] = m(s.physical);
  return out;
}

/** Each module alone in a bare Node: RSS and heap after 3 s idle, minus the same with nothing imported. */
function attribution(): Array<{ module: string; rssMiB: number; heapUsedMiB: number; rssDeltaMiB: number; heapDeltaMiB: number; loadMs: number }> {
  const chunks = path.join(ROOT, 'dist/lazy/chunks');
  const kubeChunk = existsSync(chunks)
    ? readdirSync(chunks)
        .filter((n) => /^dist-.*\.mjs$/.test(n))
        .map((n) => path.join(chunks, n))
        // The newest: a build overwrites dist/ without wiping it, so older chunks may linger.
        .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
    : undefined;
  const modules: Array<[string, string | undefined]> = [
    ['(nothing: bare node)', undefined],
    ['node:http server listening', 'node:http'],
    ['yaml (npm)', 'yaml'],
    ['prom-client (npm)', 'prom-client'],
    ['@kubernetes/client-node (npm)', '@kubernetes/client-node'],
    ...(kubeChunk
      ? ([[`@kubernetes/client-node as bundled (${path.basename(kubeChunk)}, ${(sizeOf(kubeChunk) / 2 ** 20).toFixed(1)} MiB)`, kubeChunk]] as Array<
          [string, string]
        >)
      : []),
    ['cni-node CLI bundle (dist/cni-node.mjs, not run)', '__cli__'],
    ['cni-node daemon code (dist/lazy/run.mjs, not run)', path.join(ROOT, 'dist/lazy/run.mjs')],
  ];
  const script = (spec: string | undefined) => {
    const load =
      spec === undefined
        ? ''
        : spec === 'node:http'
          ? "require('node:http').createServer().listen(0, '127.0.0.1');"
          : spec === '__cli__'
            ? `process.argv[2] = 'version'; await import(${JSON.stringify(BUNDLE)});`
            : `await import(${JSON.stringify(spec.startsWith('/') ? `file://${spec}` : spec)});`;
    return `const t0 = performance.now(); ${load} const loadMs = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 3000));
      const st = require('node:fs').readFileSync('/proc/self/status', 'utf8');
      const rss = Number(/VmRSS:\\s+(\\d+)/.exec(st)[1]);
      console.log(JSON.stringify({ rss, heapUsed: process.memoryUsage().heapUsed, loadMs }));
      process.exit(0);`;
  };
  const rows: Array<{ module: string; rss: number[]; heap: number[]; load: number[] }> = modules.map(([m]) => ({ module: m, rss: [], heap: [], load: [] }));
  for (let r = 0; r < ATTRIBUTION_RUNS; r++) {
    modules.forEach(([, spec], i) => {
      const out = spawnSync(NODE, ['--input-type=commonjs', '-e', `(async () => { ${script(spec)} })()`], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') },
      });
      const line = out.stdout.trim().split('\n').pop() ?? '';
      try {
        const j = JSON.parse(line) as { rss: number; heapUsed: number; loadMs: number };
        const row = rows[i] as (typeof rows)[number];
        row.rss.push(j.rss);
        row.heap.push(j.heapUsed);
        row.load.push(j.loadMs);
      } catch {
        throw new Error(`attribution of ${spec}: ${out.stderr || out.stdout}`);
      }
    });
  }
  const base = rows[0] as (typeof rows)[number];
  return rows.map((r) => ({
    module: r.module,
    rssMiB: mib(median(r.rss)),
    heapUsedMiB: round(median(r.heap) / 2 ** 20, 1),
    rssDeltaMiB: mib(median(r.rss) - median(base.rss)),
    heapDeltaMiB: round((median(r.heap) - median(base.heap)) / 2 ** 20, 1),
    loadMs: round(median(r.load), 1),
  }));
}

function sizeOf(file: string): number {
  try {
    return readFileSync(file).length;
  } catch {
    return 0;
  }
}

const unavailable = clusterUnavailableReason();
console.log(
  `cni-node daemon footprint: ${os.cpus().length} cores, load average ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}, ${NODE}`,
);
const attributionRows = attribution();
console.log('\nWhat each module costs, loaded alone into a bare Node (idle 3 s; median of ' + ATTRIBUTION_RUNS + '):\n');
console.log(
  table(
    ['loaded', 'RSS', 'Δ RSS', 'heap used', 'Δ heap', 'load time'],
    attributionRows.map((r) => [
      r.module,
      `${r.rssMiB} MiB`,
      `${r.rssDeltaMiB >= 0 ? '+' : ''}${r.rssDeltaMiB} MiB`,
      `${r.heapUsedMiB} MiB`,
      `${r.heapDeltaMiB >= 0 ? '+' : ''}${r.heapDeltaMiB} MiB`,
      `${r.loadMs} ms`,
    ]),
  ),
);

let idleResults: IdleResult[] = [];
let windowS = 0;
if (unavailable) {
  console.log(`\nidle daemon: SKIPPED: ${unavailable}`);
} else {
  const cluster = await startTestCluster();
  const cleanups: Cleanups = [];
  const work = await mkdtemp(path.join(os.tmpdir(), 'cni-node-bench-fp-'));
  try {
    ({ results: idleResults, windowS } = await idle(cluster, work, cleanups));
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await cluster.stop();
    await rm(work, { recursive: true, force: true });
  }
  console.log(
    `\nIdle for ${windowS.toFixed(0)} s (ConfigMap watch open, --kubeconfig-out, /metrics every ${SCRAPE_S} s); each daemon next to a bare-Node floor with the same flags:\n`,
  );
  const rows: string[][] = [];
  for (const d of idleResults.filter((r) => r.kind === 'daemon')) {
    const f = idleResults.find((r) => r.kind === 'floor' && r.flags === d.flags && r.label === d.label.replace(/, --kubeconfig.*$/, ''));
    rows.push([
      d.label,
      `${d.rssMiB} MiB (max ${d.rssMaxMiB})`,
      f ? `${f.rssMiB} MiB` : '',
      f ? `+${round(d.rssMiB - f.rssMiB, 1)} MiB` : '',
      `${d.anonMiB} / ${d.fileMiB}`,
      f ? `${f.anonMiB} / ${f.fileMiB}` : '',
      `${d.cpuPercent.toFixed(3)} %`,
      f ? `${f.cpuPercent.toFixed(3)} %` : '',
      d.inProcess ? `${d.inProcess['heapUsed']} / ${d.inProcess['heapTotal']}` : '',
    ]);
  }
  for (const w of idleResults.filter((r) => r.kind === 'floor' && r.label.startsWith('floor +'))) {
    rows.push([
      `(${w.label})`,
      '',
      `${w.rssMiB} MiB`,
      '',
      '',
      `${w.anonMiB} / ${w.fileMiB}`,
      '',
      `${w.cpuPercent.toFixed(3)} %`,
      w.inProcess ? `${w.inProcess['heapUsed']} / ${w.inProcess['heapTotal']}` : '',
    ]);
  }
  console.log(
    table(
      [
        'daemon flags',
        'daemon RSS',
        'floor RSS',
        'daemon − floor',
        'daemon anon / file MiB',
        'floor anon / file MiB',
        'daemon CPU',
        'floor CPU',
        'heap used / total MiB',
      ],
      rows,
    ),
  );
  const def = idleResults.find((r) => r.kind === 'daemon' && r.flags === '');
  const defFloor = idleResults.find((r) => r.kind === 'floor' && r.flags === '' && r.label === 'defaults');
  const img = idleResults.find((r) => r.kind === 'daemon' && r.flags === IMAGE_FLAGS && !r.label.includes('--kubeconfig'));
  const imgFloor = idleResults.find((r) => r.kind === 'floor' && r.flags === IMAGE_FLAGS);
  // 10 MB, as the issue states it: 10,000,000 bytes = 9.54 MiB.
  const budgetMiB = 10e6 / 2 ** 20;
  if (img && defFloor) {
    console.log(`\nGoals (the daemon as the image runs it: node ${IMAGE_FLAGS}; the floor: a bare node):`);
    const over = img.rssMiB - defFloor.rssMiB;
    console.log(
      `  ${over <= budgetMiB ? 'met ' : 'MISS'}  idle RSS ≤ floor + 10 MB (${budgetMiB.toFixed(2)} MiB): ${img.rssMiB} MiB = floor ${defFloor.rssMiB} MiB + ${over.toFixed(1)} MiB` +
        (imgFloor ? ` (a node with the same flags: ${imgFloor.rssMiB} MiB, + ${(img.rssMiB - imgFloor.rssMiB).toFixed(1)} MiB)` : ''),
    );
    console.log(
      `  ${img.cpuPercent <= 0.05 ? 'met ' : 'MISS'}  idle CPU ≤ 0.05 % of a core: ${img.cpuPercent.toFixed(3)} % (${img.cpuSeconds} s in ${windowS.toFixed(0)} s)`,
    );
    if (IDLE_S < 600) console.log(`  (window ${IDLE_S} s; the goal is stated for 600 s: BENCH_IDLE_SECONDS=600)`);
  }
  for (const [name, d] of [
    ['the image', img],
    ['the default', def],
  ] as const) {
    if (!d || !defFloor) continue;
    console.log(`\nIn ${name} daemon (MiB, from its own process.memoryUsage and V8 heap statistics):`);
    for (const [k, v] of Object.entries(d.inProcess ?? {}))
      console.log(`  ${k.padEnd(28)} ${v}${defFloor.inProcess?.[k] !== undefined ? `   (bare floor ${defFloor.inProcess[k]})` : ''}`);
  }
}
const file = writeResults('footprint', {
  benchmark: 'footprint',
  date: new Date().toISOString(),
  machine: machine(),
  idleSeconds: IDLE_S,
  windowS: round(windowS, 1),
  scrapeSeconds: SCRAPE_S,
  attribution: attributionRows,
  idle: idleResults,
});
console.log(`\nresults: ${file}`);
