// The node, seen from inside the cluster: every node-side check goes through a
// small privileged helper pod with the node's root at /host (what `kubectl debug
// node/…` does), never through the test machine's filesystem. So the same code
// checks the local test cluster and any cluster given by CNI_NODE_TEST_KUBECONFIG.
import { Kubectl, sleep, waitFor, type Pod } from './kubectl.js';

export interface FileInfo {
  type: string;
  mode: string;
  size: number;
  inode: string;
  mtime: string;
  /** sha256 of a regular file's content. */
  sha256?: string;
}

/** Node path → what is there. */
export type Snapshot = Map<string, FileInfo>;

const SNAPSHOT_SCRIPT = `
for d in "$@"; do
  h=/host$d
  [ -d "$h" ] || { echo "MISSING|$d"; continue; }
  find "$h" -mindepth 1 | sort | while IFS= read -r f; do
    s=$(stat -c '%F|%a|%s|%i|%y' "$f") || continue
    sum=-
    if [ -f "$f" ] && [ ! -L "$f" ]; then sum=$(sha256sum "$f" | cut -d' ' -f1); fi
    printf '%s|%s|%s\\n' "\${f#/host}" "$s" "$sum"
  done
done
`;

/**
 * A pod pinned to `node` whose own networking does not depend on the CNI
 * configuration under test (host network), that tolerates every taint and stops
 * at once.
 */
function nodePod(name: string, namespace: string, node: string, spec: object, container: object, volumes: object[]): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'cni-node-e2e' } },
    spec: {
      nodeName: node,
      hostNetwork: true,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      tolerations: [{ operator: 'Exists' }],
      ...spec,
      containers: [{ imagePullPolicy: 'IfNotPresent', ...container }],
      volumes,
    },
  };
}

export class NodeHelper {
  private constructor(
    readonly k: Kubectl,
    readonly namespace: string,
    readonly pod: string,
    readonly node: string,
  ) {}

  static async create(k: Kubectl, namespace: string, node: string, image: string): Promise<NodeHelper> {
    const name = 'node-helper';
    // hostPID: to find and kill -9 the cni-node container's process (the crash test).
    const pod = nodePod(
      name,
      namespace,
      node,
      { hostPID: true },
      {
        name: 'shell',
        image,
        command: ['sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1; done"],
        securityContext: { privileged: true },
        volumeMounts: [{ name: 'host', mountPath: '/host' }],
      },
      [{ name: 'host', hostPath: { path: '/' } }],
    );
    await k.ok(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    await k.ok(['-n', namespace, 'wait', '--for=condition=Ready', `pod/${name}`, '--timeout=180s'], { timeoutMs: 200_000 });
    return new NodeHelper(k, namespace, name, node);
  }

  /** Runs a POSIX shell script on the node (paths under /host); returns stdout, throws on failure. */
  async sh(script: string, args: string[] = [], timeoutMs = 120_000): Promise<string> {
    return this.k.ok(['-n', this.namespace, 'exec', this.pod, '-c', 'shell', '--', 'sh', '-c', script, 'sh', ...args], { timeoutMs });
  }

  async exists(nodePath: string): Promise<boolean> {
    const out = await this.sh('if [ -e "/host$1" ] || [ -L "/host$1" ]; then echo yes; else echo no; fi', [nodePath]);
    return out.trim() === 'yes';
  }

  async read(nodePath: string): Promise<string> {
    return this.sh('cat "/host$1"', [nodePath]);
  }

  async snapshot(dirs: string[]): Promise<Snapshot> {
    const out = await this.sh(SNAPSHOT_SCRIPT, dirs);
    const snap: Snapshot = new Map();
    for (const line of out.split('\n')) {
      if (line === '' || line.startsWith('MISSING|')) continue;
      const [p, type, mode, size, inode, mtime, sum] = line.split('|');
      if (p === undefined || sum === undefined) throw new Error(`unexpected snapshot line: ${line}`);
      snap.set(p, {
        type: type as string,
        mode: mode as string,
        size: Number(size),
        inode: inode as string,
        mtime: mtime as string,
        ...(sum === '-' ? {} : { sha256: sum }),
      });
    }
    return snap;
  }

  /** PIDs (in the node's PID namespace) of processes in the container `containerId` whose command line contains `match`. */
  async pidsOf(containerId: string, match: string): Promise<number[]> {
    const out = await this.sh(
      `for p in /proc/[0-9]*; do
         grep -q "$1" "$p/cgroup" 2>/dev/null || continue
         tr '\\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$2" && echo "\${p#/proc/}"
       done; true`,
      [containerId, match],
    );
    return out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  }

  async delete(): Promise<void> {
    await this.k.run(['-n', this.namespace, 'delete', 'pod', this.pod, '--wait=false', '--ignore-not-found'], { timeoutMs: 60_000 });
  }
}

/** Differences between two snapshots, one line each; empty when they are equal in every field given. */
export function diffSnapshots(
  before: Snapshot,
  after: Snapshot,
  fields: Array<keyof FileInfo> = ['type', 'mode', 'size', 'inode', 'mtime', 'sha256'],
): string[] {
  const out: string[] = [];
  for (const [p, b] of before) {
    const a = after.get(p);
    if (a === undefined) {
      out.push(`${p}: gone (was ${b.type})`);
      continue;
    }
    const changed = fields.filter((f) => a[f] !== b[f]);
    if (changed.length > 0) out.push(`${p}: ${changed.map((f) => `${f} ${String(b[f])} → ${String(a[f])}`).join(', ')}`);
  }
  for (const [p, a] of after) if (!before.has(p)) out.push(`${p}: new (${a.type})`);
  return out;
}

// ---------------------------------------------------------------------------
// A watcher on the node's files: a pod running the cni-node image's own Node.js
// with the node's CNI dirs mounted read-only. It reports every change of each
// watched file's presence or identity (inode, mtime, size), checked on every
// inotify event in their directories and, between events, every 2 ms. A file that
// is replaced atomically (rename over it) is never seen absent; one that is
// deleted and written again is.

const WATCH_SCRIPT = `
const fs = require('fs'), path = require('path');
const files = JSON.parse(process.argv[1]);
const state = new Map();
function look(why) {
  for (const f of files) {
    let id = null;
    try { const s = fs.statSync(f); id = s.ino + ':' + s.mtimeMs + ':' + s.size; } catch {}
    if (!state.has(f) || state.get(f) !== id) {
      state.set(f, id);
      console.log(JSON.stringify({ t: Date.now(), f, id, why }));
    }
  }
}
look('start');
for (const d of new Set(files.map((f) => path.dirname(f)))) {
  try { fs.watch(d, (ev, name) => look(ev + ':' + name)); }
  catch (e) { console.log(JSON.stringify({ t: Date.now(), error: String(e), dir: d })); }
}
setInterval(() => look('poll'), 2);
console.log(JSON.stringify({ t: Date.now(), ready: true }));
`;

export interface WatchRecord {
  t: number;
  f?: string;
  id?: string | null;
  why?: string;
  ready?: boolean;
  error?: string;
}

export class NodeWatcher {
  private constructor(
    readonly k: Kubectl,
    readonly namespace: string,
    readonly pod: string,
  ) {}

  /** Starts watching `files` (node paths under /etc/cni/net.d or /opt/cni/bin) on `node`. */
  static async start(k: Kubectl, namespace: string, node: string, image: string, files: string[]): Promise<NodeWatcher> {
    const name = 'node-watcher';
    const pod = nodePod(
      name,
      namespace,
      node,
      {},
      {
        name: 'watch',
        image,
        command: ['/nodejs/bin/node', '-e', WATCH_SCRIPT, JSON.stringify(files.map((f) => `/host${f}`))],
        securityContext: { runAsUser: 0, readOnlyRootFilesystem: true },
        volumeMounts: [
          { name: 'net-d', mountPath: '/host/etc/cni/net.d', readOnly: true },
          { name: 'bin', mountPath: '/host/opt/cni/bin', readOnly: true },
        ],
      },
      [
        { name: 'net-d', hostPath: { path: '/etc/cni/net.d' } },
        { name: 'bin', hostPath: { path: '/opt/cni/bin' } },
      ],
    );
    await k.ok(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    await k.ok(['-n', namespace, 'wait', '--for=condition=Ready', `pod/${name}`, '--timeout=180s'], { timeoutMs: 200_000 });
    const w = new NodeWatcher(k, namespace, name);
    await waitFor('the node watcher to report ready', 60_000, async () => ((await w.records()).some((r) => r.ready) ? true : undefined));
    return w;
  }

  async records(): Promise<WatchRecord[]> {
    const out = await this.k.ok(['-n', this.namespace, 'logs', this.pod, '-c', 'watch'], { timeoutMs: 60_000 });
    return out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as WatchRecord);
  }

  async stop(): Promise<void> {
    await this.k.run(['-n', this.namespace, 'delete', 'pod', this.pod, '--wait=false', '--ignore-not-found'], { timeoutMs: 60_000 });
  }
}

/** The pod of `selector` on `node`: by default one not being deleted; with `terminating`, any (to wait until one is really gone). */
export async function podOnNode(k: Kubectl, namespace: string, selector: string, node: string, opts: { terminating?: boolean } = {}): Promise<Pod | undefined> {
  const list = await k.json<{ items: Pod[] }>(['-n', namespace, 'get', 'pods', '-l', selector]);
  return list.items.find((p) => p.spec.nodeName === node && (opts.terminating === true || p.metadata.deletionTimestamp === undefined));
}

export { sleep };
