// Where the CLI's start-up goes (issue 12: the profile behind a missed goal).
//
//  1. CPU profiles (--cpu-prof, 100 µs sampling) of BENCH_PROFILE_RUNS (30) runs each
//     of `cni-node version`, a no-op re-install of 16 plugins, and the core
//     benchmark's 3 templates (written, and as a --dry-run), summed: self time
//     by function and by where the code comes from (the bundle, Node's own modules
//     being loaded, compiling the bundle, fs calls, GC, idle).
//  2. The Node built-in modules each run loads beyond what `node -e 0` has loaded
//     (process.moduleLoadList): each is code Node compiles at start-up.
//  3. Instructions (callgrind, deterministic V8 flags) of one-line programs that each
//     do one thing the CLI does, against an empty ES module: what each costs alone.
//
// Run: npm run build && node build/bench/cli-profile.js   (or npm run bench -- cli-profile)
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CALICO, TEMPLATES } from './templates.js';
import { CNI_NODE_ARGS, NODE, instructions, machine, round, run, table, writeResults } from './lib.js';

const RUNS = Number(process.env['BENCH_PROFILE_RUNS'] ?? 30);
const PLUGINS = process.env['BENCH_PLUGINS_DIR'] ?? '/usr/lib/cni';
const work = mkdtempSync(path.join(os.tmpdir(), 'cni-node-bench-profile-'));
const hostBin = path.join(work, 'host-bin');
mkdirSync(hostBin);
const plugins = readdirSync(PLUGINS)
  .filter((n) => statSync(path.join(PLUGINS, n)).isFile())
  .sort()
  .slice(0, 16);
const templates = path.join(work, 'templates');
const hostConfigs = path.join(work, 'host-configs');
mkdirSync(templates);
for (const [name, text] of Object.entries(TEMPLATES)) writeFileSync(path.join(templates, name), text);
/** The node's configs dir as the 3-templates workload finds it: only the primary CNI's config. */
function resetHostConfigs(): void {
  rmSync(hostConfigs, { recursive: true, force: true });
  mkdirSync(hostConfigs);
  writeFileSync(path.join(hostConfigs, '10-calico.conflist'), CALICO);
}
const env = {
  ...process.env,
  CNI_NODE_PLUGINS_DIR: PLUGINS,
  CNI_NODE_HOST_PLUGINS_DIR: hostBin,
  CNI_NODE_CONFIGS_DIR: templates,
  CNI_NODE_HOST_CONFIGS_DIR: hostConfigs,
};
const noop = [...CNI_NODE_ARGS, 'install', `--plugins=${plugins.join(',')}`];
run(NODE, noop, { env });
const threeTemplates = [...CNI_NODE_ARGS, 'install', `--configs=${Object.keys(TEMPLATES).join(',')}`];

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a sample's code comes from. */
function category(fn: string, url: string): string {
  if (/\/dist\/.*\.mjs$/.test(url)) return 'cni-node bundle (its own code)';
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(idle)') return 'idle (waiting for the thread pool / I/O)';
  if (fn === '(program)') return 'native, outside JS (V8/Node start-up, syscalls)';
  if (fn === 'compileSourceTextModule' || url.includes('esm/')) return 'ES module loader (compiling the bundle)';
  if (fn === 'compileForInternalLoader' || url.includes('bootstrap/realm')) return "loading Node's own modules";
  if (url.includes('parse_args')) return 'util.parseArgs';
  if (url.includes('streams/') || url.includes('net') || url.includes('tty') || url.includes('sync_write_stream')) return 'stdout/stderr streams';
  if (/^(stat|lstat|open|close|read|readdir|fstat|realpath)/.test(fn) || url.startsWith('node:fs') || url.includes('fs/')) return 'fs';
  return url === '' ? `native: ${fn}` : `node internals (${url.replace(/^node:internal\//, '').split('/')[0]})`;
}

function profile(
  name: string,
  args: string[],
  before: () => void = () => undefined,
): { perRunMs: number; byCategory: Array<[string, number]>; top: Array<[string, number]> } {
  const dir = path.join(work, `prof-${name}`);
  mkdirSync(dir);
  for (let i = 0; i < RUNS; i++) {
    before();
    run(NODE, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=100', ...args], { env });
  }
  const self = new Map<string, number>();
  const byCat = new Map<string, number>();
  let total = 0;
  for (const f of readdirSync(dir)) {
    const p = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const n = byId.get(id) as ProfileNode;
      const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
      const { functionName, url, lineNumber } = n.callFrame;
      const key = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}${url ? `:${lineNumber}` : ''}`;
      self.set(key, (self.get(key) ?? 0) + dt);
      const c = category(functionName, url);
      byCat.set(c, (byCat.get(c) ?? 0) + dt);
      total += dt;
    });
  }
  const sorted = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]): [string, number] => [k, round(v / RUNS)]);
  return { perRunMs: round(total / RUNS), byCategory: sorted(byCat, 20), top: sorted(self, 15) };
}

function loadedModules(args: string[]): string[] {
  const hook = path.join(work, 'module-list.cjs');
  writeFileSync(
    hook,
    "const base = new Set(process.moduleLoadList); process.on('exit', () => require('node:fs').writeSync(2, '\\nMODULES ' + JSON.stringify(process.moduleLoadList.filter((m) => !base.has(m)))));\n",
  );
  const r = spawnSync(NODE, ['--require', hook, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const m = /MODULES (.*)$/m.exec(r.stderr);
  return m ? (JSON.parse(m[1] as string) as string[]).filter((x) => x.startsWith('NativeModule ')).map((x) => x.replace('NativeModule ', '')) : [];
}

console.log(
  `cni-node CLI start-up profile: ${RUNS} runs each, ${NODE}, load average ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}\n`,
);
const results: Record<string, unknown> = {};
for (const [name, args, before] of [
  ['version', [...CNI_NODE_ARGS, 'version'], undefined],
  ['no-op re-install', noop, undefined],
  ['3 templates', threeTemplates, resetHostConfigs],
  ['3 templates --dry-run', [...threeTemplates, '--dry-run'], resetHostConfigs],
] as const) {
  const p = profile(name.replace(/\W+/g, '-'), [...args], before);
  before?.();
  const mods = loadedModules([...args]);
  results[name] = { ...p, nodeModulesLoaded: mods };
  console.log(`## ${name}: ${p.perRunMs} ms of samples per run\n`);
  console.log(
    table(
      ['where', 'ms per run'],
      p.byCategory.map(([k, v]) => [k, v.toFixed(2)]),
    ),
  );
  console.log('\nTop functions (self time):\n');
  console.log(
    table(
      ['function', 'ms per run'],
      p.top.map(([k, v]) => [`\`${k}\``, v.toFixed(2)]),
    ),
  );
  console.log(`\nNode modules loaded beyond start-up (${mods.length}): ${mods.join(', ')}\n`);
}

// One thing at a time, against an empty ES module.
const probes: Array<[string, string]> = [
  ['an empty ES module', ''],
  ['process.stdout (stdout a file)', 'process.stdout;'],
  ['process.stderr (stderr a pipe)', 'process.stderr;'],
  ["fs.promises (loads Node's fs/promises, readline, streams)", "process.getBuiltinModule('node:fs').promises;"],
  ['node:crypto', "process.getBuiltinModule('node:crypto');"],
  [
    'util.parseArgs of a short command line',
    "process.getBuiltinModule('node:util').parseArgs({ args: ['--plugins=a,b'], options: { plugins: { type: 'string' } } });",
  ],
  ['new AbortController()', 'new AbortController();'],
  [
    'ESM import of node:fs, node:path, node:os, node:util (facades)',
    "await import('node:fs'); await import('node:path'); await import('node:os'); await import('node:util');",
  ],
  ['node:https (TLS: what the daemon pays)', "process.getBuiltinModule('node:https');"],
];
const counts: Array<[string, number]> = [];
if (instructions(['-e', '0']) !== undefined) {
  const base = instructions(['-e', '0']) as number;
  counts.push(['`node -e 0`', base]);
  for (const [what, code] of probes) {
    const file = path.join(work, `probe-${counts.length}.mjs`);
    writeFileSync(file, `${code}\n`);
    counts.push([what, instructions([file], { stdio: ['ignore', 'ignore', 'pipe'] }) as number]);
  }
  counts.push(['`cni-node version`', instructions([...CNI_NODE_ARGS, 'version'], { env }) as number]);
  counts.push(['`cni-node` no-op re-install of 16 plugins', instructions(noop, { env }) as number]);
  resetHostConfigs();
  counts.push(['`cni-node` 3 templates', instructions(threeTemplates, { env }) as number]);
  resetHostConfigs();
  counts.push(['`cni-node` 3 templates --dry-run', instructions([...threeTemplates, '--dry-run'], { env }) as number]);
  const empty = counts[1]?.[1] as number;
  console.log('## Instructions (callgrind, deterministic V8 flags); each probe is an ES module doing only that\n');
  console.log(
    table(
      ['program', 'M instructions', '× node -e 0', 'over the empty module'],
      counts.map(([k, v], i) => [k, (v / 1e6).toFixed(1), (v / base).toFixed(2), i >= 2 ? `+${((v - empty) / 1e6).toFixed(1)} M` : '']),
    ),
  );
  results['instructions'] = Object.fromEntries(counts);
} else {
  console.log('(valgrind not installed: no instruction counts)');
}
rmSync(work, { recursive: true, force: true });
console.log(
  `\nresults: ${writeResults('cli-profile', { benchmark: 'cli-profile', date: new Date().toISOString(), machine: machine(), runs: RUNS, ...results })}`,
);
