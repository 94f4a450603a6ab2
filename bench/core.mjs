// Core benchmark (issue 2): each case is a whole process, timed over repeated runs,
// side by side with its floors measured in the same run on the same machine:
//   node -e 0        the start-up floor of any Node program
//   cp               copying the same plugin files into an empty dir
// Prints medians and the ratios the goals are stated in. Run: npm run bench
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const cli = path.join(root, 'bin/cni-node');
const PLUGINS = process.env.BENCH_PLUGINS_DIR ?? '/usr/lib/cni';
const RUNS = Number(process.env.BENCH_RUNS ?? 15);

const all = readdirSync(PLUGINS).filter((n) => statSync(path.join(PLUGINS, n)).isFile()).sort();
if (all.length < 16) {
  console.error(`bench: need at least 16 plugins in ${PLUGINS} (apt-get install containernetworking-plugins)`);
  process.exit(1);
}
const totalBytes = all.reduce((s, n) => s + statSync(path.join(PLUGINS, n)).size, 0);
const work = mkdtempSync(path.join(os.tmpdir(), 'cni-node-bench-'));
const env = { ...process.env, CNI_NODE_PLUGINS_DIR: PLUGINS };

function run(cmd, args, extraEnv = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return ms;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

let counter = 0;
function freshDir() {
  const d = path.join(work, `n${counter++}`);
  mkdirSync(d);
  return d;
}

function bench(name, setup, timed) {
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const ctx = setup();
    times.push(timed(ctx));
  }
  const m = median(times);
  console.log(`${name.padEnd(34)} median ${m.toFixed(1).padStart(7)} ms   (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}, n=${RUNS})`);
  return m;
}

const install = (dir, list) => run(cli, ['install', `--plugins=${list.join(',')}`], { CNI_NODE_HOST_PLUGINS_DIR: dir });

console.log(`cni-node core benchmark: ${all.length} plugins, ${(totalBytes / 1048576).toFixed(1)} MiB, ${os.cpus().length} cores, node ${process.version}\n`);
const nodeStart = bench('node -e 0 (start-up floor)', () => null, () => run(process.execPath, ['-e', '0']));
const cp = bench('cp plugins → empty dir (copy floor)', freshDir, (d) => run('cp', [...all.map((n) => path.join(PLUGINS, n)), d]));
// cp does not fsync; cni-node must (a crash must never leave a partial plugin).
// `sync FILE…` (coreutils) fsyncs each copied file: the floor for a durable copy.
const durableCp = bench('cp + fsync each file (durable floor)', freshDir, (d) => run('sh', ['-c', 'cp "$@" "$0" && cd "$0" && sync -- *', d, ...all.map((n) => path.join(PLUGINS, n))]));
const version = bench('cni-node version', () => null, () => run(cli, ['version']));
const full = bench('install all → empty dir', freshDir, (d) => install(d, all));

const noopDir = freshDir();
install(noopDir, all);
const snapshot = () => JSON.stringify([statSync(noopDir).mtimeMs, ...readdirSync(noopDir).sort().map((n) => { const s = statSync(path.join(noopDir, n)); return [n, s.ino, s.mtimeMs]; })]);
const before = snapshot();
const noop = bench('re-install (no-op)', () => noopDir, (d) => install(d, all));
const wroteNothing = snapshot() === before;

const keep = all.slice(0, 8);
const remove = all.slice(8, 12);
const add = all.slice(12, 16);
const apply = bench('apply +4 −4 =8', () => { const d = freshDir(); install(d, [...keep, ...remove]); return d; }, (d) =>
  run(cli, ['apply', `--plugins=${[...keep, ...add].join(',')}`], { CNI_NODE_HOST_PLUGINS_DIR: d }));
const uninstall = bench('uninstall all', () => { const d = freshDir(); install(d, all); return d; }, (d) =>
  run(cli, ['uninstall', `--plugins=${all.join(',')}`], { CNI_NODE_HOST_PLUGINS_DIR: d }));

rmSync(work, { recursive: true, force: true });

const goals = [
  [`(install − node start) / cp = ${((full - nodeStart) / cp).toFixed(2)}`, (full - nodeStart) / cp <= 1.5, '≤ 1.5'],
  [`(install − node start) / (cp + fsync) = ${((full - nodeStart) / durableCp).toFixed(2)}`, true, 'reported: the durable floor'],
  [`no-op − node start = ${(noop - nodeStart).toFixed(1)} ms`, noop - nodeStart <= 30, '≤ 30 ms'],
  [`no-op wrote nothing: ${wroteNothing}`, wroteNothing, 'true'],
  [`version / node start = ${(version / nodeStart).toFixed(2)}`, version / nodeStart <= 1.3, '≤ 1.3'],
  [`apply − node start = ${(apply - nodeStart).toFixed(1)} ms; uninstall − node start = ${(uninstall - nodeStart).toFixed(1)} ms`, true, 'reported'],
];
console.log('\nGoals:');
for (const [text, ok, goal] of goals) console.log(`  ${ok ? 'met ' : 'MISS'}  ${text}  (goal ${goal})`);
