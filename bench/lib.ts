// Shared pieces of the benchmarks: statistics, timing whole processes, /proc
// readings, instruction counts, and where results go.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** The repository (build/bench/lib.js → ../..). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** What the image runs: `node /app/dist/cni-node.mjs` (Dockerfile ENTRYPOINT). */
export const BUNDLE = path.join(ROOT, 'dist/cni-node.mjs');
/** The shipped runtime: Node 24 at /usr/local/bin/node (scripts/provision-node.sh). */
export const NODE = process.env['BENCH_NODE'] || (existsSync('/usr/local/bin/node') ? '/usr/local/bin/node' : process.execPath);

/**
 * The Node/V8 flags the image starts cni-node with: what the Dockerfile's exec-form
 * ENTRYPOINT puts between node and the bundle. The benchmarks run cni-node with them,
 * so they measure what ships; the floors (`node -e 0`, a bare http server) run
 * without, unless a benchmark says otherwise.
 */
export const IMAGE_NODE_FLAGS: readonly string[] = imageNodeFlags();

/** cni-node as the image starts it, after `NODE`: the image's flags, then the bundle. */
export const CNI_NODE_ARGS: readonly string[] = [...IMAGE_NODE_FLAGS, BUNDLE];

function imageNodeFlags(): string[] {
  const dockerfile = path.join(ROOT, 'Dockerfile');
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(dockerfile, 'utf8'));
  const entrypoint = m ? (JSON.parse(m[1] as string) as string[]) : [];
  const bundle = entrypoint.indexOf('/app/dist/cni-node.mjs');
  if (bundle < 1) throw new Error(`${dockerfile}: no exec-form ENTRYPOINT [node, flags…, /app/dist/cni-node.mjs]`);
  return entrypoint.slice(1, bundle);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface Summary {
  n: number;
  median: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
}

export function summary(xs: readonly number[]): Summary {
  return {
    n: xs.length,
    median: round(median(xs)),
    p90: round(percentile(xs, 90)),
    p99: round(percentile(xs, 99)),
    min: round(Math.min(...xs)),
    max: round(Math.max(...xs)),
  };
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** Runs a command to completion and returns its wall time in ms; throws with its stderr if it fails. */
export function timeProcess(cmd: string, args: readonly string[], opts: SpawnSyncOptions = {}): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const ms = performance.now() - t0;
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ').slice(0, 300)} failed (exit ${r.status ?? r.signal}): ${String(r.stderr ?? '').slice(0, 2000)}`);
  return ms;
}

/** Runs a command and throws if it fails (set-up steps, not timed). */
export function run(cmd: string, args: readonly string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ').slice(0, 300)} failed (exit ${r.status ?? r.signal}): ${String(r.stderr ?? '').slice(0, 2000)}`);
  return String(r.stdout ?? '');
}

export function which(name: string): string | undefined {
  for (const d of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    if (d !== '' && existsSync(path.join(d, name))) return path.join(d, name);
  }
  return undefined;
}

/**
 * Flags that make a Node process deterministic under callgrind: no V8 worker
 * threads (their work is then done, and counted, on the main thread), fixed hash
 * and random seeds. Instruction counts then repeat to within 0.01 %, where wall
 * times on this shared machine vary by ±20 %.
 */
export const DETERMINISTIC_NODE_FLAGS = ['--v8-pool-size=0', '--single-threaded', '--hash-seed=1', '--random-seed=1'];

/** Instructions executed by `node DETERMINISTIC_NODE_FLAGS args` (valgrind --tool=callgrind), or undefined without valgrind. */
export function instructions(args: readonly string[], opts: SpawnSyncOptions = {}): number | undefined {
  const valgrind = which('valgrind');
  if (!valgrind) return undefined;
  const r = spawnSync(valgrind, ['--tool=callgrind', '--callgrind-out-file=/dev/null', NODE, ...DETERMINISTIC_NODE_FLAGS, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    ...opts,
  });
  const m = /Collected : (\d+)/.exec(String(r.stderr ?? ''));
  if (r.status !== 0 || !m) throw new Error(`callgrind ${args.join(' ')} failed (exit ${r.status}): ${String(r.stderr ?? '').slice(-2000)}`);
  return Number(m[1]);
}

/** Peak RSS in KiB of one run of the command (GNU time's %M), or undefined without /usr/bin/time. */
export function maxRssKb(cmd: string, args: readonly string[], opts: SpawnSyncOptions = {}): number | undefined {
  if (!existsSync('/usr/bin/time')) return undefined;
  const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS=%M', cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const m = /MAXRSS=(\d+)/.exec(String(r.stderr ?? ''));
  return m ? Number(m[1]) : undefined;
}

export interface ProcStat {
  /** user + system CPU seconds so far. */
  cpuSeconds: number;
  rssKb: number;
  /** Anonymous, file-backed and shared-memory parts of RSS (status RssAnon/RssFile/RssShmem). */
  rssAnonKb: number;
  rssFileKb: number;
}

export function procStat(pid: number): ProcStat {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / CLOCK_TICKS, rssKb: kb('VmRSS'), rssAnonKb: kb('RssAnon'), rssFileKb: kb('RssFile') };
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim() || 100);

/** Proportional set size and its parts from /proc/PID/smaps_rollup (KiB). */
export function smapsRollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB/.exec(line);
      if (m) out[m[1] as string] = Number(m[2]);
    }
  } catch {
    // Not on Linux, or the process is gone.
  }
  return out;
}

/** The machine as the run saw it, for the JSON record. */
export function machine(): Record<string, unknown> {
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    kernel: os.release(),
    node: spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim(),
    nodePath: NODE,
    loadavg: os.loadavg().map((x) => round(x)),
  };
}

/** Writes `data` as JSON to $BENCH_OUT_DIR (default build/bench-results)/<name>.json and returns the path. */
export function writeResults(name: string, data: unknown): string {
  const dir = process.env['BENCH_OUT_DIR'] || path.join(ROOT, 'build/bench-results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** A Markdown table from rows of cells. */
export function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export const ms = (x: number): string => `${x.toFixed(1)} ms`;

/** Sums a Prometheus metric's samples whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}, exclude: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    if (Object.entries(exclude).some(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
