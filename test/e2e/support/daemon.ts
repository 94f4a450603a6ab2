// Shared pieces of the `cni-node run` e2e tests (daemon.test.ts, daemon-faults.test.ts):
// a temporary node tree with a projected service-account volume, the real
// ./bin/cni-node daemon process and a handle on it (log, /metrics, /healthz,
// /readyz, stop), polling helpers, and the API-side setup (RBAC for the daemon's
// service account, ConfigMaps) against the test cluster (support/cluster.ts).
//
// Where the two test files differ (the API server port the daemon is pointed at,
// extra environment, the RBAC rules granted, polling intervals), the helpers take
// parameters; each test file keeps its own values.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from './cluster.js';

/** The CLI under test: ./bin/cni-node, or $CNI_NODE_TEST_CLI. */
export const CLI = process.env['CNI_NODE_TEST_CLI'] || fileURLToPath(new URL('../../../../bin/cni-node', import.meta.url));
/** Debian's containernetworking-plugins: the image's plugins in these tests. */
export const DEBIAN_PLUGINS = '/usr/lib/cni';
/** The namespace of the daemon's pod, service account and ConfigMaps. */
export const NS = 'kube-system';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Things to undo after a test file (temporary dirs, daemons left running); run them in reverse. */
export type Cleanups = Array<() => Promise<void>>;

// ---- node trees --------------------------------------------------------------

/** A node's directories under one temporary root. */
export interface Tree {
  root: string;
  /** The host's /opt/cni/bin. */
  bin: string;
  /** The host's /etc/cni/net.d. */
  netd: string;
  /** The image's config templates (--configs-dir). */
  templates: string;
  /** The image's manifests (--manifests-dir). */
  manifests: string;
  /** The projected service account volume (token, ca.crt, namespace of `cluster`'s service account). */
  sa: string;
}

/** Creates a node tree under a new temporary dir named `prefix…`, removed by `cleanups`. */
export async function nodeTree(cluster: TestCluster, cleanups: Cleanups, prefix: string): Promise<Tree> {
  const root = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const t: Tree = {
    root,
    bin: path.join(root, 'host/opt/cni/bin'),
    netd: path.join(root, 'host/etc/cni/net.d'),
    templates: path.join(root, 'templates'),
    manifests: path.join(root, 'manifests'),
    sa: path.join(root, 'serviceaccount'),
  };
  for (const d of [t.bin, t.netd, t.templates, t.manifests, t.sa]) await mkdir(d, { recursive: true });
  await projectedVolume(t.sa, { token: cluster.tokens.serviceAccount, 'ca.crt': cluster.caData, namespace: NS });
  return t;
}

let generation = 0;
/**
 * Writes `files` into `dir` the way kubelet projects a service account or updates a
 * mounted ConfigMap: the files behind a `..data` symlink, a new `..data` dir swapped
 * in by rename.
 */
export async function projectedVolume(dir: string, files: Record<string, string>): Promise<void> {
  const ts = `..${new Date().toISOString().replace(/[-:.TZ]/g, '_')}${++generation}`;
  await mkdir(path.join(dir, ts));
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, ts, name), content);
  const old = await readlink(path.join(dir, '..data')).catch(() => undefined);
  await symlink(ts, path.join(dir, '..data_tmp'));
  await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) await symlink(`..data/${name}`, path.join(dir, name)).catch(() => undefined);
  if (old) await rm(path.join(dir, old), { recursive: true, force: true });
}

/** The POD_NAME the daemon of `tree` runs as (Events are recorded on it). */
export const podName = (tree: Tree) => `cni-node-${path.basename(tree.root)}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');

// ---- the daemon process ----------------------------------------------------------

export interface Daemon {
  child: ChildProcess;
  /** Every line of stdout, and of stderr prefixed `stderr: `, so far. */
  out: string[];
  /** host:port of /healthz, /readyz and /metrics. */
  address: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  log(): string;
  lines(re: RegExp): string[];
  /** The first log line matching `re`, waiting up to `ms` for it (fails the test if none comes, or the daemon exits first). */
  waitLog(re: RegExp, ms?: number): Promise<string>;
  /** The sum of the samples of `name` (with all of `labels`) in /metrics. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  get(p: '/healthz' | '/readyz'): Promise<{ status: number; text: string }>;
  readyz(): Promise<{ status: number; text: string }>;
  alive(): boolean;
  /** Sends `signal` (SIGTERM) once and waits for the exit; later calls return the same result. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

export interface StartDaemonOptions {
  /** The API server port the in-cluster credentials point at (KUBERNETES_SERVICE_PORT on 127.0.0.1). */
  port: number | string;
  /** Added to (and overriding) the environment. */
  env?: Record<string, string>;
  /** The daemon is SIGKILLed here if still running. */
  cleanups: Cleanups;
}

/**
 * Starts `cni-node run` on `tree` with `args`, in-cluster credentials from `tree.sa`
 * pointing at 127.0.0.1:`port`, and /healthz etc. on a free loopback port; resolves
 * once it serves them.
 */
export async function startDaemon(tree: Tree, args: string[], opts: StartDaemonOptions): Promise<Daemon> {
  const { KUBECONFIG: _drop, ...baseEnv } = process.env;
  const child = spawn(
    CLI,
    [
      'run',
      `--plugins-dir=${DEBIAN_PLUGINS}`,
      `--host-plugins-dir=${tree.bin}`,
      `--configs-dir=${tree.templates}`,
      `--host-configs-dir=${tree.netd}`,
      `--manifests-dir=${tree.manifests}`,
      '--listen=127.0.0.1:0',
      ...args,
    ],
    {
      env: {
        ...baseEnv,
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(opts.port),
        CNI_NODE_SERVICE_ACCOUNT_DIR: tree.sa,
        POD_NAME: podName(tree),
        POD_NAMESPACE: NS,
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const out: string[] = [];
  const onData = (prefix: string) => (b: Buffer) => {
    for (const line of b.toString('utf8').split('\n')) if (line !== '') out.push(prefix + line);
  };
  child.stdout?.on('data', onData(''));
  child.stderr?.on('data', onData('stderr: '));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  opts.cleanups.push(async () => {
    if (alive()) child.kill('SIGKILL');
  });
  const log = () => out.join('\n');
  const waitLog = async (re: RegExp, ms = 15_000): Promise<string> => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const hit = out.find((l) => re.test(l));
      if (hit) return hit;
      if (!alive()) break;
      await sleep(20);
    }
    assert.fail(`no log line matching ${re} within ${ms} ms; the log:\n${log()}`);
  };
  const line = await waitLog(/serving \/healthz \/readyz \/metrics on /);
  const address = (/on (127\.0\.0\.1:\d+)/.exec(line) as RegExpExecArray)[1] as string;
  const get = async (p: '/healthz' | '/readyz') => {
    const res = await fetch(`http://${address}${p}`);
    return { status: res.status, text: await res.text() };
  };
  let stopped: Promise<{ code: number | null; ms: number }> | undefined;
  return {
    child,
    out,
    address,
    exit,
    log,
    lines: (re) => out.filter((l) => re.test(l)),
    waitLog,
    alive,
    async metric(name, labels = {}) {
      const text = await (await fetch(`http://${address}/metrics`)).text();
      let sum = 0;
      for (const l of text.split('\n')) {
        if (!l.startsWith(`${name}{`) && !l.startsWith(`${name} `)) continue;
        if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) sum += Number(l.slice(l.lastIndexOf(' ') + 1));
      }
      return sum;
    },
    get,
    readyz: () => get('/readyz'),
    stop(signal = 'SIGTERM') {
      stopped ??= (async () => {
        const t0 = Date.now();
        child.kill(signal);
        const r = await exit;
        // CNI_NODE_TEST_DAEMON_LOG=<file>: append every daemon's log there, for reading after the run.
        const logFile = process.env['CNI_NODE_TEST_DAEMON_LOG'];
        if (logFile) await appendFile(logFile, `=== daemon ${tree.root} (exit ${r.code} after ${r.at - t0} ms)\n${log()}\n`);
        return { code: r.code, ms: r.at - t0 };
      })();
      return stopped;
    },
  };
}

// ---- waiting -------------------------------------------------------------------------

/**
 * Polls `probe` every `pollMs` until it returns something other than undefined or
 * false (errors count as not yet), and returns that; fails the test after `ms`,
 * with the last error and `d`'s log.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 10_000, d?: Daemon, pollMs = 50): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(pollMs);
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}${d ? `; daemon log:\n${d.log()}` : ''}`);
}

export interface SettleOptions {
  /** How long the count must stay put. */
  quietMs: number;
  /** How often /metrics is read. */
  pollMs: number;
  /** Give up waiting after this long, and return the count as it is (the caller's assertion then shows the loop). */
  maxMs?: number;
}

/**
 * The daemon's reconcile count (cni_node_reconciles_total; a reconcile is counted
 * when it ends) once it has not moved for `quietMs`.
 */
export async function settledReconciles(d: Daemon, { quietMs, pollMs, maxMs = Infinity }: SettleOptions): Promise<number> {
  let n = await d.metric('cni_node_reconciles_total');
  const deadline = Date.now() + maxMs;
  for (let still = 0; still * pollMs < quietMs && Date.now() < deadline;) {
    await sleep(pollMs);
    const now = await d.metric('cni_node_reconciles_total');
    still = now === n ? still + 1 : 0;
    n = now;
  }
  return n;
}

// ---- the API side ------------------------------------------------------------------

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** What `cni-node run --config-map=…` needs of the API: read its ConfigMap, record Events on its pod. */
export const DAEMON_RULES: readonly PolicyRule[] = [
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
];

/**
 * Grants the daemon's service account (cni-node in NS) `rules` in `namespace`
 * (default NS) by a Role and RoleBinding named `name` there.
 */
export async function grantServiceAccount(cluster: TestCluster, name: string, rules: readonly PolicyRule[], namespace = NS): Promise<void> {
  const role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name, namespace },
    rules,
  };
  const binding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name: 'cni-node', namespace: NS }],
  };
  for (const [p, body] of [
    [`/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles`, role],
    [`/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`, binding],
  ] as const) {
    const res = await cluster.request('POST', p, body);
    assert.ok(res.status === 201 || res.status === 409, res.text);
  }
}

/** An Event as the tests read it back. */
export interface KubeEvent {
  reason: string;
  message: string;
  type: string;
  metadata: { creationTimestamp: string };
}

/** The Events recorded on pod `pod` in NS, as `kubectl get events --field-selector involvedObject.name=<pod>` lists them. */
export async function eventsFor(cluster: TestCluster, pod: string): Promise<KubeEvent[]> {
  const res = await cluster.request<{ items: KubeEvent[] }>(
    'GET',
    `/api/v1/namespaces/${NS}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${pod}`)}`,
  );
  assert.equal(res.status, 200, res.text);
  return res.body.items;
}

/** Creates or replaces ConfigMap `name` in NS with `data`. */
export async function putConfigMap(cluster: TestCluster, name: string, data: Record<string, string>): Promise<void> {
  const p = `/api/v1/namespaces/${NS}/configmaps`;
  const res = await cluster.request('PUT', `${p}/${name}`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data });
  if (res.status === 404) {
    const created = await cluster.request('POST', p, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data });
    assert.equal(created.status, 201, created.text);
    return;
  }
  assert.equal(res.status, 200, res.text);
}

// ---- kube-watch -------------------------------------------------------------------

/** ./bin/kube-watch, or $CNI_NODE_TEST_KUBE_WATCH. */
export const KUBE_WATCH = process.env['CNI_NODE_TEST_KUBE_WATCH'] || fileURLToPath(new URL('../../../../bin/kube-watch', import.meta.url));

export interface KubeWatch {
  child: ChildProcess;
  /** stdout and stderr so far. */
  out(): string;
  /** One line per handler run, as `handlerBody` wrote them to $RUNS. */
  runs(): string[];
  exited: Promise<number | null>;
}

/**
 * Starts `kube-watch object configmap NS/<cm> -j <jsonpath>` with in-cluster
 * credentials from `tree.sa` pointing at 127.0.0.1:`port`, its channel and handler
 * in `tree.root`. The handler is `/bin/sh` running `handlerBody`, which appends a
 * line per run to the file $RUNS (e.g. `printf '%s\n' "$2" >> "$RUNS"`).
 */
export async function startKubeWatch(
  tree: Tree,
  cm: string,
  jsonpath: string,
  handlerBody: string,
  port: number | string,
  cleanups: Cleanups,
): Promise<KubeWatch> {
  const runsLog = path.join(tree.root, 'runs.log');
  const handler = path.join(tree.root, 'handler.sh');
  await writeFile(handler, `#!/bin/sh\nRUNS=${JSON.stringify(runsLog)}\n${handlerBody}\n`);
  await chmod(handler, 0o755);
  const child = spawn(KUBE_WATCH, ['object', 'configmap', `${NS}/${cm}`, '-j', jsonpath, '-c', path.join(tree.root, 'channel'), '-h', handler], {
    env: { PATH: process.env['PATH'], KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port), CNI_NODE_SERVICE_ACCOUNT_DIR: tree.sa },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  cleanups.push(async () => void child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, runs: () => runsSync(runsLog), exited };
}

function runsSync(file: string): string[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];
}
