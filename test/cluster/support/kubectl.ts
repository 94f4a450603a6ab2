// kubectl, run the way an operator runs it, and a record of every command run.
//
// The cluster suite talks to the cluster only through kubectl (the operator's
// tool; it also handles every kind of kubeconfig credential, exec plugins
// included, so any cluster works) and records each command line. The README test
// then checks that every command in the README's "Deploying on a cluster" section
// is one of them.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** One command as run: its words, as a shell would have split them. */
export type Argv = readonly string[];

/** Commands run by the suite, in order. */
export const ranCommands: Argv[] = [];

const MAX_OUTPUT = 64 * 1024 * 1024;

/** Runs argv[0] with the rest as arguments; never throws for a non-zero exit. */
export function run(argv: Argv, opts: RunOptions = {}, record = true): Promise<RunResult> {
  if (record) ranCommands.push(argv);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv as string[];
    const child = spawn(cmd as string, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let size = 0;
    const onData = (which: 'out' | 'err') => (d: Buffer) => {
      size += d.length;
      if (size > MAX_OUTPUT) {
        child.kill('SIGKILL');
        return;
      }
      if (which === 'out') stdout += d.toString();
      else stderr += d.toString();
    };
    child.stdout.on('data', onData('out'));
    child.stderr.on('data', onData('err'));
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            stderr += `\n(killed after ${opts.timeoutMs} ms)`;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export function show(argv: Argv, r: RunResult): string {
  return `$ ${argv.map(quote).join(' ')}\n(exit ${r.code ?? r.signal}, ${r.ms} ms)\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr.slice(-4000)}`;
}

/** Shell-quotes a word only where needed (for messages and the command record). */
export function quote(word: string): string {
  return /^[\w@%+=:,./^-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export class Kubectl {
  constructor(
    /** The kubectl binary. */
    readonly bin: string,
    /** Passed as KUBECONFIG, so recorded command lines read as an operator types them. */
    readonly kubeconfig: string,
    /** Where relative paths (deploy/…) resolve: the suite's copy of a user's checkout. */
    readonly cwd: string,
  ) {}

  /** Runs `kubectl ARGS`; never throws for a non-zero exit. */
  run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    ranCommands.push(['kubectl', ...args]);
    return run([this.bin, ...args], { cwd: this.cwd, ...opts, env: { KUBECONFIG: this.kubeconfig, ...opts.env } }, false);
  }

  /** Runs `kubectl ARGS` and returns its stdout; throws with the whole exchange when it fails. */
  async ok(args: string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.run(args, { timeoutMs: 120_000, ...opts });
    if (r.code !== 0) throw new Error(`kubectl failed:\n${show(['kubectl', ...args], r)}`);
    return r.stdout;
  }

  async json<T = KubeObject>(args: string[], opts: RunOptions = {}): Promise<T> {
    const out = await this.ok([...args, '-o', 'json'], opts);
    return JSON.parse(out) as T;
  }

  /** `kubectl get …` as JSON, or undefined when it does not exist. */
  async getOrUndefined<T = KubeObject>(args: string[]): Promise<T | undefined> {
    const r = await this.run(['get', ...args, '-o', 'json', '--ignore-not-found'], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl failed:\n${show(['kubectl', 'get', ...args], r)}`);
    return r.stdout.trim() === '' ? undefined : (JSON.parse(r.stdout) as T);
  }

  /** A long-running kubectl (logs -f, port-forward); the caller kills it. */
  spawn(args: string[]): ChildProcess {
    ranCommands.push(['kubectl', ...args]);
    return spawn(this.bin, args, { cwd: this.cwd, env: { ...process.env, KUBECONFIG: this.kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
  };
  [key: string]: unknown;
}

export interface PodCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  containerID?: string;
  state?: { running?: { startedAt: string }; waiting?: { reason?: string }; terminated?: { reason?: string; exitCode?: number } };
  lastState?: { terminated?: { reason?: string; exitCode?: number; signal?: number } };
}

export interface Pod extends KubeObject {
  spec: { nodeName?: string; containers: Array<{ name: string; image: string; env?: Array<{ name: string; value?: string }> }> };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: PodCondition[];
    containerStatuses?: ContainerStatus[];
  };
}

export interface KubeList<T> {
  items: T[];
}

export interface KubeEvent extends KubeObject {
  involvedObject: { kind?: string; name?: string; namespace?: string; uid?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  firstTimestamp?: string;
  lastTimestamp?: string;
  eventTime?: string;
}

export function podReady(pod: Pod): boolean {
  return pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value other than undefined; throws with `what` and the last detail on timeout. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? `; last error: ${last.slice(0, 2000)}` : ''}`);
    await sleep(intervalMs);
  }
}
