// Core benchmark (issues 2 and 12): cni-node against the ORIGINAL bash cni-node,
// side by side in one run, with the floors measured in the same run.
//
// Every case is a whole process, timed from a spawn to its exit; BENCH_RUNS (20)
// rounds, and each round runs every case once, so a burst of load from other work
// on this shared machine lands on all cases alike. Before each timed run the node
// dirs are reset and the scratch file system is synced (untimed), so no run pays
// for the write-back of an earlier one.
//
//   floors     node -e 0 (start-up of Node 24, the runtime the image ships)
//              cp of the 16 plugins into an empty dir (no fsync)
//              cp + fsync of each copied file (the durable-copy floor: cni-node
//              fsyncs every file before it renames it into place)
//   workloads  install 16 plugins, no-op re-install (and the writes it makes),
//              apply (+4 −4 =8), uninstall 16, 3 templates (one with a pointer),
//              version — each by the original and by cni-node
//
// The original (/work/shared/reference/original/cni-node/cni-node, unmodified, run
// from there) has its directories hard-coded: /opt/cni/bin, /host/opt/cni/bin,
// /etc/cni/net.d, /host/etc/cni/net.d. So the benchmark re-runs itself in a private
// mount namespace, chrooted into a tmpfs root made of bind mounts of this machine's
// own top-level dirs, with scratch dirs bound over those four paths: both tools then
// run with the same command line, the same defaults and the same node dirs, and
// nothing on the machine is touched. cni-node runs as the image runs it:
// `node dist/cni-node.mjs …`.
//
// Run: npm run bench  (or: npm run build && node build/bench/run.js core)
// Environment: BENCH_RUNS (20), BENCH_PLUGINS_DIR (/usr/lib/cni), BENCH_ORIGINAL,
// BENCH_DIR (where the scratch node dirs live; default the OS temp dir — it should
// be the disk a node's /opt/cni/bin is on, not a tmpfs), BENCH_CALLGRIND=0 to skip
// the instruction counts.
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CALICO, TEMPLATES } from './templates.js';
import { CNI_NODE_ARGS, NODE, instructions, machine, maxRssKb, ms, round, run, summary, table, timeProcess, writeResults, type Summary } from './lib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 20);
const PLUGINS_SRC = process.env['BENCH_PLUGINS_DIR'] ?? '/usr/lib/cni';
const ORIGINAL = process.env['BENCH_ORIGINAL'] ?? '/work/shared/reference/original/cni-node/cni-node';
const INSIDE = process.env['CNI_NODE_BENCH_SCRATCH'];
const CALLGRIND = process.env['BENCH_CALLGRIND'] !== '0';

/** The original's hard-coded dirs; cni-node's defaults are the same. */
const DIRS = { plugins: '/opt/cni/bin', hostPlugins: '/host/opt/cni/bin', templates: '/etc/cni/net.d', hostConfigs: '/host/etc/cni/net.d' };

// Makes the private root R: a tmpfs holding bind mounts of every top-level dir of
// this machine except /opt and /host, which it makes itself, plus the four dirs
// bound to scratch dirs in D. Runs in `unshare -m`, so every mount vanishes with
// the namespace and the machine's own mount table is never changed.
const CHROOT_SETUP = String.raw`set -eu
R=$1; D=$2; shift 2
mount -t tmpfs -o size=1m,mode=755 cni-node-bench "$R"
for e in /* /.[!.]*; do
  n=$(basename "$e")
  [ -L "$e" ] && { ln -s "$(readlink "$e")" "$R/$n"; continue; }
  [ -d "$e" ] || continue
  case "$n" in opt|host) continue ;; esac
  mkdir "$R/$n"
  mount --rbind "$e" "$R/$n"
done
mkdir -p "$R/opt/cni/bin" "$R/host/opt/cni/bin" "$R/host/etc/cni/net.d"
[ -d "$R/etc/cni/net.d" ] || { mkdir -p "$D/etc-upper" "$D/etc-work"; mount -t overlay overlay -o "lowerdir=/etc,upperdir=$D/etc-upper,workdir=$D/etc-work" "$R/etc"; mkdir -p "$R/etc/cni/net.d"; }
mount --bind -o ro "$D/image-plugins" "$R/opt/cni/bin"
mount --bind "$D/templates" "$R/etc/cni/net.d"
mount --bind "$D/host-plugins" "$R/host/opt/cni/bin"
mount --bind "$D/host-configs" "$R/host/etc/cni/net.d"
echo "original 66f62f5a (unmodified)" > "$R/cni-node-version"
exec chroot "$R" "$@"
`;

const SMALL_FILE_BYTES = 300;

/** The latency of one fsync of a small new file, and of its directory after a rename, on the scratch file system. */
function measureFsync(dir: string, n = 20): { file: Summary; dir: Summary } {
  const file: number[] = [];
  const dirs: number[] = [];
  const d = path.join(dir, 'fsync-probe');
  mkdirSync(d, { recursive: true });
  for (let i = 0; i < n; i++) {
    const tmp = path.join(d, `.tmp${i}`);
    const fd = openSync(tmp, 'w');
    writeSync(fd, 'x'.repeat(SMALL_FILE_BYTES));
    let t0 = performance.now();
    fsyncSync(fd);
    file.push(performance.now() - t0);
    closeSync(fd);
    renameSync(tmp, path.join(d, `f${i}`));
    const dfd = openSync(d, 'r');
    t0 = performance.now();
    fsyncSync(dfd);
    dirs.push(performance.now() - t0);
    closeSync(dfd);
  }
  rmSync(d, { recursive: true, force: true });
  return { file: summary(file), dir: summary(dirs) };
}

function listPlugins(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && statSync(path.join(dir, n)).isFile())
    .sort();
}

if (INSIDE === undefined) outside();
else inside(INSIDE, true);

/** Prepares the scratch dirs and re-runs this script chrooted (as root), or runs without the original. */
function outside(): void {
  const plugins = listPlugins(PLUGINS_SRC).slice(0, 16);
  if (plugins.length < 16) {
    console.error(`bench: need 16 plugins in ${PLUGINS_SRC} (apt-get install containernetworking-plugins)`);
    process.exit(1);
  }
  const scratch = mkdtempSync(path.join(process.env['BENCH_DIR'] || os.tmpdir(), 'cni-node-bench-core-'));
  try {
    for (const d of ['root', 'image-plugins', 'templates', 'host-plugins', 'host-configs']) mkdirSync(path.join(scratch, d));
    // The image's plugins: the 16 chosen, as one dir (bind-mounted read-only for the original).
    for (const p of plugins) run('cp', ['--reflink=never', path.join(PLUGINS_SRC, p), path.join(scratch, 'image-plugins', p)]);
    for (const [name, text] of Object.entries(TEMPLATES)) writeFileSync(path.join(scratch, 'templates', name), text);
    const canChroot = process.getuid?.() === 0 && existsSync('/usr/bin/unshare') && existsSync(ORIGINAL);
    if (!canChroot) {
      console.error(
        `\n*** bench core: the ORIGINAL will NOT run (${process.getuid?.() !== 0 ? 'not root: it needs a private mount namespace' : `${existsSync(ORIGINAL) ? 'unshare missing' : `${ORIGINAL} missing`}`}); cni-node and the floors only.\n`,
      );
      inside(scratch, false);
      return;
    }
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', CHROOT_SETUP, 'sh', path.join(scratch, 'root'), scratch, NODE, self, ...process.argv.slice(2)],
      {
        stdio: 'inherit',
        env: { ...process.env, CNI_NODE_BENCH_SCRATCH: scratch },
      },
    );
    if (r.status !== 0) {
      console.error(`bench core: the chrooted run failed (exit ${r.status ?? r.signal})`);
      process.exitCode = 1;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

interface Case {
  id: string;
  workload: string;
  tool: 'floor' | 'original' | 'cni-node';
  /** Untimed: puts the node dirs into the state this case starts from. */
  setup?: () => void;
  cmd: string;
  args: string[];
  /** Untimed, after the run: checks the outcome, counts writes. */
  after?: () => void;
}

function inside(scratch: string, chrooted: boolean): void {
  const dirs = chrooted
    ? DIRS
    : {
        plugins: path.join(scratch, 'image-plugins'),
        templates: path.join(scratch, 'templates'),
        hostPlugins: path.join(scratch, 'host-plugins'),
        hostConfigs: path.join(scratch, 'host-configs'),
      };
  const plugins = listPlugins(dirs.plugins);
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CNI_NODE_') && k !== 'KUBECONFIG'));
  if (!chrooted)
    Object.assign(env, {
      CNI_NODE_PLUGINS_DIR: dirs.plugins,
      CNI_NODE_HOST_PLUGINS_DIR: dirs.hostPlugins,
      CNI_NODE_CONFIGS_DIR: dirs.templates,
      CNI_NODE_HOST_CONFIGS_DIR: dirs.hostConfigs,
    });
  const fsType = run('stat', ['-f', '-c', '%T', scratch]).trim();
  const bytes = plugins.reduce((s, p) => s + statSync(path.join(dirs.plugins, p)).size, 0);

  const all = plugins.join(',');
  const keep = plugins.slice(0, 8);
  const removed = plugins.slice(8, 12);
  const added = plugins.slice(12, 16);
  const applyArg = `--plugins=${[...keep, ...added].join(',')}:${[...keep, ...removed].join(',')}`;
  const configsArg = `--configs=${Object.keys(TEMPLATES).join(',')}`;

  const empty = (dir: string) => {
    for (const n of readdirSync(dir)) rmSync(path.join(dir, n), { recursive: true, force: true });
  };
  const syncFs = () => run('sync', ['-f', scratch]);
  const tool = (t: 'original' | 'cni-node'): [string, string[]] => (t === 'original' ? [ORIGINAL, []] : [NODE, [...CNI_NODE_ARGS]]);
  const exec = (t: 'original' | 'cni-node', args: string[]) => {
    const [cmd, pre] = tool(t);
    run(cmd, [...pre, ...args], { env });
  };
  /** Inode, size, mtime and ctime of the dir and each entry: what a write changes. */
  const stamps = (dir: string): Map<string, string> => {
    const m = new Map<string, string>();
    const d = lstatSync(dir);
    m.set('.', `${d.mtimeMs}/${d.ctimeMs}`);
    for (const n of readdirSync(dir)) {
      const s = lstatSync(path.join(dir, n));
      m.set(n, `${s.ino}/${s.size}/${s.mtimeMs}/${s.ctimeMs}`);
    }
    return m;
  };
  const changed = (a: Map<string, string>, b: Map<string, string>): string[] =>
    [...new Set([...a.keys(), ...b.keys()])].filter((k) => k !== '.' && a.get(k) !== b.get(k));
  const visible = (dir: string) =>
    readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort();

  const writes: Record<string, number[]> = { original: [], 'cni-node': [] };
  const problems = new Set<string>();
  const cases: Case[] = [
    { id: 'node-e0', workload: 'node -e 0', tool: 'floor', cmd: NODE, args: ['-e', '0'] },
    {
      id: 'cp',
      workload: 'cp 16 plugins',
      tool: 'floor',
      setup: () => empty(dirs.hostPlugins),
      cmd: 'cp',
      args: [...plugins.map((p) => path.join(dirs.plugins, p)), dirs.hostPlugins],
    },
    {
      id: 'cp-fsync',
      workload: 'cp + fsync each',
      tool: 'floor',
      setup: () => empty(dirs.hostPlugins),
      cmd: 'sh',
      args: ['-c', 'cp "$@" "$0" && cd "$0" && sync -- *', dirs.hostPlugins, ...plugins.map((p) => path.join(dirs.plugins, p))],
    },
  ];
  for (const t of ['original', 'cni-node'] as const) {
    const [cmd, pre] = tool(t);
    const c = (workload: string, args: string[], setup?: () => void, after?: () => void) =>
      cases.push({ id: `${t}:${workload}`, workload, tool: t, cmd, args: [...pre, ...args], ...(setup ? { setup } : {}), ...(after ? { after } : {}) });
    const expectPlugins = (want: string[]) => () => {
      const got = visible(dirs.hostPlugins).join(',');
      if (got !== [...want].sort().join(',')) problems.add(`${t}: the node's plugins after the run are [${got}], expected [${[...want].sort().join(',')}]`);
    };
    if (chrooted || t === 'cni-node') c('version', ['version']);
    c('install 16 plugins', ['install', `--plugins=${all}`], () => empty(dirs.hostPlugins), expectPlugins(plugins));
    let before = new Map<string, string>();
    c(
      'no-op re-install',
      ['install', `--plugins=${all}`],
      () => {
        empty(dirs.hostPlugins);
        exec(t, ['install', `--plugins=${all}`]);
        syncFs();
        before = stamps(dirs.hostPlugins);
      },
      () => writes[t]?.push(changed(before, stamps(dirs.hostPlugins)).length),
    );
    c(
      'apply +4 −4 =8',
      ['apply', applyArg],
      () => {
        empty(dirs.hostPlugins);
        exec(t, ['install', `--plugins=${[...keep, ...removed].join(',')}`]);
      },
      expectPlugins([...keep, ...added]),
    );
    c(
      'uninstall 16',
      ['uninstall', `--plugins=${all}`],
      () => {
        empty(dirs.hostPlugins);
        exec(t, ['install', `--plugins=${all}`]);
      },
      expectPlugins([]),
    );
    c(
      '3 templates',
      ['install', configsArg],
      () => {
        empty(dirs.hostConfigs);
        writeFileSync(path.join(dirs.hostConfigs, '10-calico.conflist'), CALICO);
      },
      () => {
        for (const name of Object.keys(TEMPLATES)) {
          const file = path.join(dirs.hostConfigs, name);
          try {
            const doc = JSON.parse(readFileSync(file, 'utf8')) as { delegates?: Array<{ name?: string }> };
            if (name === '05-multus.conf' && doc.delegates?.[0]?.name !== 'k8s-pod-network')
              problems.add(`${t}: ${name} does not delegate to the calico config`);
          } catch (e) {
            problems.add(`${t}: ${name} on the node is not valid JSON: ${String(e)}`);
          }
        }
      },
    );
  }

  console.log(`cni-node core benchmark: ${plugins.length} plugins (${(bytes / 2 ** 20).toFixed(1)} MiB), ${RUNS} rounds, node dirs on ${fsType} (${scratch})`);
  console.log(
    `machine: ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}; ${NODE} ${process.version}${chrooted ? `; original: ${ORIGINAL}` : '; ORIGINAL NOT RUN'}\n`,
  );
  const loadBefore = os.loadavg();
  const samples = new Map<string, number[]>(cases.map((c) => [c.id, []]));
  const t0 = Date.now();
  for (let round = 0; round < RUNS; round++) {
    // Rotate the order each round, so no case always follows the same one.
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + round) % cases.length] as Case;
      c.setup?.();
      syncFs();
      (samples.get(c.id) as number[]).push(timeProcess(c.cmd, c.args, { env }));
      c.after?.();
    }
    process.stderr.write(`\r  round ${round + 1}/${RUNS} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  process.stderr.write('\n');
  const loadAfter = os.loadavg();
  const fsyncLatency = measureFsync(scratch);

  // Repeatable measures next to the wall times: instructions (callgrind) and peak RSS of one run each.
  const repeatable: Record<string, { instructions?: number; maxRssKb?: number }> = {};
  if (CALLGRIND) {
    process.stderr.write('  instruction counts (callgrind)…\n');
    empty(dirs.hostPlugins);
    exec('cni-node', ['install', `--plugins=${all}`]);
    repeatable['node -e 0'] = { instructions: instructions(['-e', '0'], { env }) as number, maxRssKb: maxRssKb(NODE, ['-e', '0']) as number };
    repeatable['cni-node version'] = {
      instructions: instructions([...CNI_NODE_ARGS, 'version'], { env }) as number,
      maxRssKb: maxRssKb(NODE, [...CNI_NODE_ARGS, 'version'], { env }) as number,
    };
    repeatable['cni-node no-op re-install'] = {
      instructions: instructions([...CNI_NODE_ARGS, 'install', `--plugins=${all}`], { env }) as number,
      maxRssKb: maxRssKb(NODE, [...CNI_NODE_ARGS, 'install', `--plugins=${all}`], { env }) as number,
    };
  }

  const s = (id: string): Summary | undefined => (samples.get(id)?.length ? summary(samples.get(id) as number[]) : undefined);
  const nodeStart = s('node-e0') as Summary;
  const cp = s('cp') as Summary;
  const durable = s('cp-fsync') as Summary;
  const workloads = ['version', 'install 16 plugins', 'no-op re-install', 'apply +4 −4 =8', 'uninstall 16', '3 templates'];
  const rows: string[][] = [];
  rows.push(['`node -e 0` (start-up floor)', '', ms(nodeStart.median), `p90 ${ms(nodeStart.p90)}`, '']);
  rows.push(['`cp` 16 plugins (copy floor)', '', ms(cp.median), `p90 ${ms(cp.p90)}`, '']);
  rows.push(['`cp` + fsync each (durable floor)', '', ms(durable.median), `p90 ${ms(durable.p90)}`, '']);
  const perWorkload: Record<string, { original?: Summary; cniNode?: Summary }> = {};
  for (const w of workloads) {
    const o = s(`original:${w}`);
    const c = s(`cni-node:${w}`) as Summary;
    perWorkload[w] = { ...(o ? { original: o } : {}), cniNode: c };
    const ratio = o ? `${(c.median / o.median).toFixed(2)} ×` : '';
    rows.push([w, o ? `${ms(o.median)} (p90 ${ms(o.p90)})` : 'n/a', ms(c.median), `p90 ${ms(c.p90)}`, ratio]);
  }
  console.log(table(['workload', 'original', 'cni-node', 'cni-node p90', 'cni-node / original'], rows));

  const median = (w: string, t: 'original' | 'cniNode') => perWorkload[w]?.[t]?.median ?? NaN;
  const mw = (xs: number[]) => (xs.length ? (xs.slice().sort((a, b) => a - b)[xs.length >> 1] as number) : NaN);
  const goals: Array<{ goal: string; value: string; met: boolean | 'n/a' }> = [];
  for (const w of workloads.filter((x) => x !== 'version')) {
    const o = median(w, 'original');
    const c = median(w, 'cniNode');
    goals.push({
      goal: `${w}: no slower than the original`,
      value: Number.isNaN(o) ? 'original not run' : `${ms(c)} vs ${ms(o)} (${(c / o).toFixed(2)} ×)`,
      met: Number.isNaN(o) ? 'n/a' : c <= o,
    });
  }
  const noop = median('no-op re-install', 'cniNode');
  goals.push({ goal: 'no-op ≤ node start + 10 ms', value: `node start + ${ms(noop - nodeStart.median)}`, met: noop - nodeStart.median <= 10 });
  goals.push({
    goal: 'no-op writes nothing',
    value: `cni-node changed ${mw(writes['cni-node'] ?? [])} node files per run (max ${Math.max(...(writes['cni-node'] ?? [0]))}); the original ${Number.isNaN(mw(writes['original'] ?? [])) ? 'n/a' : mw(writes['original'] ?? [])}`,
    met: Math.max(...(writes['cni-node'] ?? [1])) === 0,
  });
  const version = median('version', 'cniNode');
  goals.push({ goal: '`version` ≤ 1.15 × node start', value: `${(version / nodeStart.median).toFixed(2)} ×`, met: version / nodeStart.median <= 1.15 });
  const install = median('install 16 plugins', 'cniNode');
  const oInstall = median('install 16 plugins', 'original');
  console.log('\nGoals:');
  for (const g of goals) console.log(`  ${g.met === true ? 'met ' : g.met === false ? 'MISS' : 'n/a '}  ${g.goal}: ${g.value}`);
  console.log('\nThe install floor:');
  console.log(
    `  install − node start = ${ms(install - nodeStart.median)}; cp = ${ms(cp.median)}; cp + fsync each = ${ms(durable.median)} (the fsyncs alone: ${ms(durable.median - cp.median)})`,
  );
  console.log(
    `  node start + durable floor = ${ms(nodeStart.median + durable.median)}${Number.isNaN(oInstall) ? '' : ` vs the original's install ${ms(oInstall)} (which fsyncs nothing)`}`,
  );
  console.log(`  cni-node install / (node start + durable floor) = ${(install / (nodeStart.median + durable.median)).toFixed(2)}`);
  console.log(
    `\nOne fsync on this disk (in process, median of ${fsyncLatency.file.n}): a new ${SMALL_FILE_BYTES}-byte file ${ms(fsyncLatency.file.median)} (p90 ${ms(fsyncLatency.file.p90)}), its directory after a rename ${ms(fsyncLatency.dir.median)} (p90 ${ms(fsyncLatency.dir.p90)})`,
  );
  const templates = median('3 templates', 'cniNode');
  console.log(
    `  3 templates − node start = ${ms(templates - nodeStart.median)} = ${((templates - nodeStart.median) / fsyncLatency.file.median).toFixed(1)} × one small-file fsync`,
  );
  if (Object.keys(repeatable).length) {
    const base = repeatable['node -e 0']?.instructions ?? NaN;
    console.log('\nRepeatable (one run each; instructions under callgrind with deterministic V8 flags, peak RSS by GNU time):');
    for (const [k, v] of Object.entries(repeatable))
      console.log(
        `  ${k.padEnd(28)} ${((v.instructions ?? NaN) / 1e6).toFixed(1).padStart(7)} M instructions (${((v.instructions ?? NaN) / base).toFixed(2)} × node -e 0)   max RSS ${((v.maxRssKb ?? NaN) / 1024).toFixed(1)} MiB`,
      );
  }
  if (problems.size) {
    console.log("\nOutcome problems (each tool's node dirs checked after each run):");
    for (const p of problems) console.log(`  - ${p}`);
  }
  console.log(
    `\nload average: ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after; ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  const file = writeResults('core', {
    benchmark: 'core',
    date: new Date().toISOString(),
    machine: { ...machine(), loadavgBefore: loadBefore.map((x) => round(x)), loadavgAfter: loadAfter.map((x) => round(x)), fsType, scratch },
    runs: RUNS,
    original: chrooted ? ORIGINAL : null,
    plugins: { count: plugins.length, bytes, names: plugins },
    floors: { nodeStart, cp, cpFsync: durable },
    workloads: perWorkload,
    noopWrites: writes,
    goals,
    fsyncLatency,
    repeatable,
    problems: [...problems],
    samples: Object.fromEntries(samples),
  });
  console.log(`results: ${file}`);
}
