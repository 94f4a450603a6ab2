// Scale benchmark (issue 6): a node dir with 1,000 unrelated files, up to 200
// plugins and 100 templates. Times install / no-op re-install / apply of plugins
// and of configs at several sizes, each as a whole ./bin/cni-node process, and
// prints the curve and whether it grows linearly.
//
//   npm run build && node build/bench/scale.js [--reps=5] [--keep]   (or: npm run bench -- scale)
//
// The image's plugins are copies of Debian's (/usr/lib/cni) under distinct names
// (p000…p249: 200 plus the 50 an apply at the largest size adds); templates are
// CNI .conflist files, one in four with a pointer to a node file another installer
// wrote. The node dirs each hold 1,000 unrelated files throughout. Not a test: it
// asserts nothing, but it does check that every no-op run wrote nothing.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CNI_NODE_ARGS, NODE, machine, round, writeResults } from './lib.js';

// As the image runs it: node dist/cni-node.mjs.
const CLI = NODE;
const CLI_ARGS = [...CNI_NODE_ARGS];
const DEBIAN = '/usr/lib/cni';
const args = new Map(
  process.argv
    .slice(2)
    .map((a) => a.replace(/^--/, '').split('='))
    .map(([k, v]) => [k as string, v ?? 'true']),
);
const REPS = Number(args.get('reps') ?? 5);
const PLUGIN_SIZES = [25, 50, 100, 200];
const TEMPLATE_SIZES = [12, 25, 50, 100];
const UNRELATED = 1000;

if (!existsSync(path.join(DEBIAN, 'bridge'))) {
  console.error(`${DEBIAN} is missing: apt-get install -y containernetworking-plugins`);
  process.exit(1);
}

const root = mkdtempSync(path.join(os.tmpdir(), 'cni-node-scale-'));
const image = path.join(root, 'image');
const templates = path.join(root, 'templates');
const bin = path.join(root, 'node-bin');
const netd = path.join(root, 'node-net.d');
const cleanup = () => {
  if (args.get('keep') !== 'true') rmSync(root, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const pad3 = (i: number) => String(i).padStart(3, '0');
const pluginName = (i: number) => `p${pad3(i)}`;
const templateName = (i: number) => `t${pad3(i)}.conflist`;
const range = <T>(from: number, to: number, f: (i: number) => T): T[] => Array.from({ length: to - from }, (_, k) => f(from + k));

// ---------------------------------------------------------------------------
// set-up

const debian = readdirSync(DEBIAN)
  .filter((n) => !n.startsWith('.'))
  .sort();
mkdirSync(image);
let imageBytes = 0;
const maxPlugins = (PLUGIN_SIZES.at(-1) as number) * 1.25;
for (let i = 0; i < maxPlugins; i++) {
  const from = path.join(DEBIAN, debian[i % debian.length] as string);
  copyFileSync(from, path.join(image, pluginName(i)));
  if (i < (PLUGIN_SIZES.at(-1) as number)) imageBytes += statSync(from).size;
}
mkdirSync(templates);
const maxTemplates = (TEMPLATE_SIZES.at(-1) as number) * 1.25;
for (let i = 0; i < maxTemplates; i++) {
  const pointer = i % 4 === 0 ? ',\n  "delegate": __00-primary.conflist__' : '';
  writeFileSync(
    path.join(templates, templateName(i)),
    `{"cniVersion":"0.4.0","name":"net-${i}","plugins":[{"type":"bridge","bridge":"br${i}","ipam":{"type":"host-local","subnet":"10.${i % 250}.0.0/24"}},{"type":"portmap","capabilities":{"portMappings":true}}]${pointer}}\n`,
  );
}
for (const dir of [bin, netd]) {
  mkdirSync(dir);
  for (let i = 0; i < UNRELATED; i++) writeFileSync(path.join(dir, `unrelated-${String(i).padStart(4, '0')}.data`), `unrelated file ${i}\n`.repeat(32));
}
writeFileSync(path.join(netd, '00-primary.conflist'), '{"cniVersion":"0.4.0","name":"primary","plugins":[{"type":"loopback"}]}\n');
const keep = new Set(readdirSync(netd).concat(readdirSync(bin)));

const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CNI_NODE_'))),
  CNI_NODE_PLUGINS_DIR: image,
  CNI_NODE_HOST_PLUGINS_DIR: bin,
  CNI_NODE_CONFIGS_DIR: templates,
  CNI_NODE_HOST_CONFIGS_DIR: netd,
};

// ---------------------------------------------------------------------------
// measuring

function timed(argv: string[]): { ms: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(CLI, [...CLI_ARGS, ...argv], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) {
    console.error(`cni-node ${argv.join(' ').slice(0, 200)} failed (exit ${r.status}):\n${r.stderr}`);
    process.exit(1);
  }
  return { ms, stdout: r.stdout };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

/** Inode + mtime + ctime of every entry, to prove a no-op run wrote nothing. */
function stamps(dir: string): string[] {
  const st = lstatSync(dir);
  const out = [`. ${st.mtimeMs} ${st.ctimeMs}`];
  for (const n of readdirSync(dir).sort()) {
    const s = lstatSync(path.join(dir, n));
    out.push(`${n} ${s.ino} ${s.mtimeMs} ${s.ctimeMs}`);
  }
  return out;
}
function changedEntries(a: string[], b: string[]): number {
  const sa = new Set(a);
  return b.filter((x) => !sa.has(x)).length + Math.max(0, a.length - b.length);
}

/** Back to 1,000 unrelated files (and the foreign primary config) only. */
function resetNode() {
  for (const dir of [bin, netd]) for (const n of readdirSync(dir)) if (!keep.has(n)) rmSync(path.join(dir, n), { force: true });
}

// The start-up floor: the same binary doing nothing with the node.
const floorRuns = range(0, 7, () => timed(['version']).ms);
const floor = median(floorRuns);

let noopWrites = 0;
type Op = 'install' | 'noop' | 'apply' | 'applyNoop';
interface Samples {
  kind: string;
  n: number;
  install: number[];
  noop: number[];
  apply: number[];
  applyNoop: number[];
}
const samples = new Map<string, Samples>();
const sample = (kind: string, n: number, op: Op, ms: number) => {
  const key = `${kind} ${n}`;
  if (!samples.has(key)) samples.set(key, { kind, n, install: [], noop: [], apply: [], applyNoop: [] });
  (samples.get(key) as Samples)[op].push(ms);
};
const KINDS: Array<[string, number[], (i: number) => string, string]> = [
  ['plugins', PLUGIN_SIZES, pluginName, '--plugins'],
  ['configs', TEMPLATE_SIZES, templateName, '--configs'],
];
// Repetitions are interleaved over the sizes, so a burst of load on the machine
// does not land on one size only.
for (let rep = 0; rep < REPS; rep++) {
  for (const [kind, sizes, name, flag] of KINDS) {
    for (const n of sizes) {
      const q = Math.round(n / 4);
      const first = range(0, n, name).join(',');
      // apply: keep n - q, remove q (the first ones, from the record), add q new ones.
      const shifted = range(q, n + q, name).join(',');
      resetNode();
      sample(kind, n, 'install', timed(['install', `${flag}=${first}`]).ms);
      const before = [...stamps(bin), ...stamps(netd)];
      sample(kind, n, 'noop', timed(['install', `${flag}=${first}`]).ms);
      noopWrites += changedEntries(before, [...stamps(bin), ...stamps(netd)]);
      sample(kind, n, 'apply', timed(['apply', `${flag}=${shifted}`]).ms);
      const before2 = [...stamps(bin), ...stamps(netd)];
      sample(kind, n, 'applyNoop', timed(['apply', `${flag}=${shifted}`]).ms);
      noopWrites += changedEntries(before2, [...stamps(bin), ...stamps(netd)]);
    }
  }
  process.stderr.write(`  round ${rep + 1}/${REPS} done\n`);
}
const rows = [...samples.values()].map((s) => ({
  kind: s.kind,
  n: s.n,
  q: Math.round(s.n / 4),
  install: median(s.install),
  noop: median(s.noop),
  apply: median(s.apply),
  applyNoop: median(s.applyNoop),
}));
resetNode();

// ---------------------------------------------------------------------------
// report

const f0 = (x: number) => x.toFixed(0).padStart(7);
const f2 = (x: number) => x.toFixed(2).padStart(7);
console.log(`cni-node scale benchmark: ${REPS} runs each (median), node dirs with ${UNRELATED} unrelated files each`);
console.log(
  `image: ${maxPlugins} plugin copies of Debian's ${debian.length} (first ${PLUGIN_SIZES.at(-1)}: ${(imageBytes / 1048576).toFixed(0)} MiB), ${maxTemplates} templates (1 in 4 with a pointer)`,
);
console.log(`start-up floor (cni-node version): ${floor.toFixed(0)} ms; "per item" below is (time - floor) / items\n`);
console.log('kind      items |  install  per item |   no-op  per item |   apply  per item | apply no-op');
console.log('                |      ms       ms   |      ms       ms   |      ms  ms/changed| ms');
for (const r of rows) {
  const per = (x: number, items: number) => (x - floor) / items;
  console.log(
    `${r.kind.padEnd(8)} ${String(r.n).padStart(6)} | ${f0(r.install)} ${f2(per(r.install, r.n))}   | ${f0(r.noop)} ${f2(per(r.noop, r.n))}   | ${f0(r.apply)} ${f2(per(r.apply, 2 * r.q))}   | ${f0(r.applyNoop)}`,
  );
}

/** Least-squares line t = a + b·n, and R². */
function fit(points: Array<[number, number]>): { a: number; b: number; r2: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  const sxy = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const b = sxy / sxx;
  const a = my - b * mx;
  const ssTot = points.reduce((s, p) => s + (p[1] - my) ** 2, 0);
  const ssRes = points.reduce((s, p) => s + (p[1] - (a + b * p[0])) ** 2, 0);
  return { a, b, r2: ssTot === 0 ? 1 : 1 - ssRes / ssTot };
}

console.log('\ngrowth: t ≈ a + b·items fitted over the sizes; "×2" is (time - floor) at each size over the size before (linear ≈ 2):');
for (const kind of ['plugins', 'configs']) {
  const rs = rows.filter((r) => r.kind === kind);
  for (const op of ['install', 'noop', 'apply'] as const) {
    const { a, b, r2 } = fit(rs.map((r) => [r.n, r[op]]));
    const ratios = rs.slice(1).map((r, i) => (r[op] - floor) / Math.max(1, (rs[i] as (typeof rs)[number])[op] - floor));
    const last = ratios.at(-1) as number;
    const lastRow = rs.at(-1) as (typeof rs)[number];
    const itemsCost = lastRow[op] - floor;
    const verdict =
      itemsCost < 0.25 * floor
        ? `flat: ${lastRow.n} items add ${itemsCost.toFixed(0)} ms to the start-up floor`
        : last > 2.8
          ? `SUPERLINEAR: doubling to ${lastRow.n} items multiplies the time by ${last.toFixed(2)}`
          : last >= 1.4
            ? `linear (${b.toFixed(2)} ms per item)`
            : 'sublinear: fixed costs dominate';
    console.log(
      `  ${kind.padEnd(8)} ${op.padEnd(8)} t ≈ ${a.toFixed(0).padStart(4)} ms + ${b.toFixed(2).padStart(5)} ms/item (R² ${r2.toFixed(3)}); ×2: ${ratios.map((x) => x.toFixed(2)).join(' ')} → ${verdict}`,
    );
  }
}
console.log(
  `\nno-op runs that changed an entry of the node dirs: ${noopWrites === 0 ? 'none (0 writes)' : `${noopWrites} entries changed — a no-op must write nothing`}`,
);

const file = writeResults('scale', {
  benchmark: 'scale',
  date: new Date().toISOString(),
  machine: machine(),
  reps: REPS,
  floorMs: round(floor),
  rows,
  noopWrites,
});
console.log(`results: ${file}`);
