// Shared helpers for tests that run the real ./bin/cni-node as a separate process,
// as an operator or a DaemonSet runs it (not a test file itself: the test runner
// skips directories named `support`).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's own ./bin/cni-node (build/test/support/ is three levels below the root). */
export const REPO_CLI = fileURLToPath(new URL('../../../bin/cni-node', import.meta.url));

/** The CLI under test: CNI_NODE_TEST_CLI names another build to test; by default the repository's ./bin/cni-node. */
export const CLI = process.env.CNI_NODE_TEST_CLI ?? REPO_CLI;

/** Debian's containernetworking-plugins: the real CNI plugins, used as the image's plugins dir. */
export const DEBIAN_PLUGINS = '/usr/lib/cni';

/** cni-node's own hidden files in a node dir: temporary files' prefix, the record, the lock. */
export const TEMP_PREFIX = '.cni-node-tmp.';
export const RECORD = '.cni-node-state';
export const LOCK = '.cni-node.lock';

/** Why tests that need Debian's CNI plugins cannot run, or undefined. */
export function noDebianPluginsReason(): string | undefined {
  return existsSync(path.join(DEBIAN_PLUGINS, 'bridge')) ? undefined : `${DEBIAN_PLUGINS} is missing (apt-get install -y containernetworking-plugins)`;
}

/** Why tests that need root and Debian's CNI plugins cannot run, or undefined; `notRoot` says what root is needed for. */
export function noRootOrPluginsReason(notRoot: string): string | undefined {
  return process.getuid?.() !== 0 ? notRoot : noDebianPluginsReason();
}

/** What a finished CLI process left: exit code or signal, its whole output, and how long it ran. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The node and image directories a cni-node run works on (the CNI_NODE_*_DIR variables). */
export interface NodeDirs {
  /** The image's plugins (CNI_NODE_PLUGINS_DIR). */
  plugins: string;
  /** The node's /opt/cni/bin (CNI_NODE_HOST_PLUGINS_DIR). */
  bin: string;
  /** The templates (CNI_NODE_CONFIGS_DIR). */
  templates: string;
  /** The node's /etc/cni/net.d (CNI_NODE_HOST_CONFIGS_DIR). */
  netd: string;
  /** The manifests (CNI_NODE_MANIFESTS_DIR), if the run has any. */
  manifests?: string;
}

/**
 * This process's environment without any CNI_NODE_* variable (nothing from the
 * caller's shell leaks into the run), and without the names in `alsoDrop`.
 */
export function cleanEnv(alsoDrop: readonly string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_NODE_') && !alsoDrop.includes(k)) env[k] = v;
  return env;
}

/** `base` (by default cleanEnv()) plus the CNI_NODE_*_DIR variables that point cni-node at `dirs`. */
export function dirsEnv(dirs: NodeDirs, base: NodeJS.ProcessEnv = cleanEnv()): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    CNI_NODE_PLUGINS_DIR: dirs.plugins,
    CNI_NODE_HOST_PLUGINS_DIR: dirs.bin,
    CNI_NODE_CONFIGS_DIR: dirs.templates,
    CNI_NODE_HOST_CONFIGS_DIR: dirs.netd,
  };
  if (dirs.manifests !== undefined) env.CNI_NODE_MANIFESTS_DIR = dirs.manifests;
  return env;
}

export interface RunCliOptions {
  /** The child's whole environment; default cleanEnv(). */
  env?: NodeJS.ProcessEnv;
  /** A command line the CLI runs under, e.g. ['/usr/bin/time', '-f', '%M'] or a setpriv call. */
  prefix?: string[];
  /** The CLI to run; default CLI. */
  cli?: string;
  /** A guard: SIGKILL after this long (default 60 s); Infinity for none. */
  timeoutMs?: number;
  /** Sends SIGKILL after this long, if still running (to crash it on purpose). */
  killAfterMs?: number;
  /** Called with the child once it runs (to signal it), and a function returning its stdout so far. */
  onSpawn?: (child: ChildProcess, stdout: () => string) => void;
}

/** Runs the CLI as a separate process, stdin closed, and collects its exit and output. Rejects only if it cannot be spawned. */
export function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const started = performance.now();
  const [cmd, ...rest] = [...(opts.prefix ?? []), opts.cli ?? CLI, ...args] as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, rest, { env: opts.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timers = [
      Number.isFinite(timeoutMs) ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined,
      opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs),
    ];
    const clearTimers = () => {
      for (const t of timers) if (t !== undefined) clearTimeout(t);
    };
    child.on('error', (e) => {
      clearTimers();
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimers();
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
    opts.onSpawn?.(child, () => stdout);
  });
}

/** A result for an assertion message: exit code (and signal), run time, stdout and stderr. */
export function show(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''} after ${Math.round(r.ms)} ms\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** Asserts the run exited 0; returns it. */
export function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, show(r));
  return r;
}

/** Asserts the run exited with `code` (default 1) as a handled error, not a crash ("internal error"); returns it. */
export function failed(r: CliResult, code = 1): CliResult {
  assert.equal(r.code, code, show(r));
  assert.doesNotMatch(r.stderr, /internal error/, show(r));
  return r;
}
