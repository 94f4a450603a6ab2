/**
 * --kubeconfig-out: a kubeconfig for CNI plugins that talk to the API (Multus),
 * made from the pod's service account and kept current: CA and token embedded
 * (the default) or written beside it and named by node paths; mode 0600, atomic,
 * rewritten when the projected token rotates. docs/ARCHITECTURE.md has the details.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CniNodeError, reason } from '../core/errors.js';
import type { Reporter } from '../core/contracts.js';
import { SETTINGS } from '../core/settings.js';
import { urlHost } from '../kube/in-cluster.js';
import { inspect, readIfExists, removeFile, writeFileAtomic } from '../node/atomic.js';
import { readRegularBytes } from '../sys/read.js';
import { TooBigError, watchFile, type FileWatcher } from './file-watch.js';

const PRIVATE_MODE = 0o600;
/**
 * Caps on what is read and written: a projected token is about 1 KiB and a cluster
 * CA bundle a few KiB, so anything near these sizes is not a service account; it
 * is refused (and reported) before it is read, and never copied to the node.
 */
export const MAX_TOKEN_BYTES = 64 * 1024;
export const MAX_CA_BYTES = 1024 * 1024;
/** The kubeconfig: the CA base64-encoded, the token and a few lines. */
export const MAX_KUBECONFIG_BYTES = 2 * 1024 * 1024;

/**
 * Reads a service-account file (links followed: kubelet projects them through
 * `..data`), refusing what is not a regular file or is over `max` bytes, before
 * reading it. Undefined when it does not exist.
 */
async function readCapped(file: string, max: number, what: string): Promise<Buffer | undefined> {
  // read.ts: stat first (a device is never opened), O_NONBLOCK, fstat, at most max + 1 bytes.
  return readRegularBytes(file, {
    maxBytes: max,
    what,
    notRegular: (kind) => `${what} ${file} is not a regular file (it is ${kind})`,
    tooBig: (size) => `${what} ${file} is ${size} bytes, over the limit of ${max}; it is not copied into the kubeconfig`,
  });
}

export type CredentialsMode = 'embed' | 'files';

export interface KubeconfigContent {
  server: string;
  /** embed: PEM text of the CA. */
  caData?: string;
  /** files: the node path of the CA file. */
  caFile?: string;
  /** embed: the token. */
  token?: string;
  /** files: the node path of the token file. */
  tokenFile?: string;
  namespace?: string;
}

/** The server URL from KUBERNETES_SERVICE_HOST/PORT (or CNI_NODE_KUBECONFIG_SERVER). */
export function serverFromEnv(env: Readonly<Record<string, string | undefined>>): string {
  const override = SETTINGS.kubeconfigServer.read(env);
  if (override) {
    if (!/^https?:\/\/./.test(override)) throw new CniNodeError('usage', `CNI_NODE_KUBECONFIG_SERVER=${override}: expected a URL such as https://10.0.0.1:6443`);
    return override.replace(/\/+$/, '');
  }
  const host = SETTINGS.serviceHost.read(env);
  const port = SETTINGS.servicePort.read(env) ?? '443';
  if (!host) {
    throw new CniNodeError(
      'usage',
      '--kubeconfig-out needs the API server address: KUBERNETES_SERVICE_HOST (and KUBERNETES_SERVICE_PORT), which Kubernetes sets in every pod; outside a pod set CNI_NODE_KUBECONFIG_SERVER',
    );
  }
  if (!/^\d+$/.test(port)) throw new CniNodeError('usage', `KUBERNETES_SERVICE_PORT=${port} is not a port number`);
  return `https://${urlHost(host)}:${port}`;
}

/** Parses CNI_NODE_HOST_PATH_MAP ("/host=/,/var/lib/x=/data/x"). */
export function parsePathMap(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const part of text.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const i = p.indexOf('=');
    const from = i === -1 ? '' : p.slice(0, i).trim();
    const to = i === -1 ? '' : p.slice(i + 1).trim();
    if (!path.isAbsolute(from) || !path.isAbsolute(to)) {
      throw new CniNodeError('usage', `CNI_NODE_HOST_PATH_MAP: "${p}" is not <container-path>=<node-path> with absolute paths (e.g. /host=/)`);
    }
    pairs.push([path.normalize(from), path.normalize(to)]);
  }
  return pairs.sort((a, b) => b[0].length - a[0].length);
}

/** The node's path of a container path, by the longest matching prefix; undefined if none matches. */
export function toNodePath(containerPath: string, map: ReadonlyArray<[string, string]>): string | undefined {
  const p = path.normalize(containerPath);
  for (const [from, to] of map) {
    if (p === from) return to;
    const prefix = from.endsWith('/') ? from : `${from}/`;
    if (p.startsWith(prefix)) return path.join(to, p.slice(prefix.length));
  }
  return undefined;
}

/** A kubeconfig as YAML; every scalar JSON-quoted (valid YAML for any value). */
export function renderKubeconfig(c: KubeconfigContent): string {
  const q = (s: string) => JSON.stringify(s);
  const cluster = [`    server: ${q(c.server)}`];
  if (c.caData !== undefined) cluster.push(`    certificate-authority-data: ${q(Buffer.from(c.caData).toString('base64'))}`);
  if (c.caFile !== undefined) cluster.push(`    certificate-authority: ${q(c.caFile)}`);
  const user: string[] = [];
  if (c.token !== undefined) user.push(`    token: ${q(c.token)}`);
  if (c.tokenFile !== undefined) user.push(`    tokenFile: ${q(c.tokenFile)}`);
  return [
    '# Written by cni-node run --kubeconfig-out from the pod service account;',
    '# rewritten whenever the token rotates. Do not edit.',
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: cni-node',
    '  cluster:',
    ...cluster,
    'users:',
    '- name: cni-node',
    '  user:',
    ...(user.length > 0 ? user : ['    {}']),
    'contexts:',
    '- name: cni-node',
    '  context:',
    '    cluster: cni-node',
    '    user: cni-node',
    ...(c.namespace ? [`    namespace: ${q(c.namespace)}`] : []),
    'current-context: cni-node',
    '',
  ].join('\n');
}

export interface KubeconfigOutOptions {
  /** Container path of the kubeconfig to write. */
  out: string;
  env: Readonly<Record<string, string | undefined>>;
  reporter: Reporter;
  /** A problem that keeps the kubeconfig from being current (undefined: solved). */
  onProblem?: (problem: string | undefined) => void;
  /** Called after each write, with what changed. */
  onWrite?: (why: string) => void;
  /** File watch tuning (tests). */
  debounceMs?: number;
  recheckMs?: number;
}

export class KubeconfigOut {
  readonly mode: CredentialsMode;
  readonly server: string;
  readonly serviceAccountDir: string;
  readonly tokenFile: string;
  readonly caFile: string;
  /** In "files" mode: container paths of the token and CA copies, and their node paths. */
  readonly companions: { token: string; ca: string; nodeToken: string; nodeCa: string } | undefined;
  /** Files written so far (each atomic write counts). */
  writes = 0;
  private readonly watchers: FileWatcher[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private lastProblem: string | undefined;
  /** What the files were last made from, to say truthfully why they are written again. */
  private lastToken: string | undefined;
  private lastCa: string | undefined;

  private constructor(private readonly options: KubeconfigOutOptions) {
    const env = options.env;
    this.mode = SETTINGS.kubeconfigCredentials.read(env) ?? 'embed';
    this.server = serverFromEnv(env);
    this.serviceAccountDir = SETTINGS.serviceAccountDir.read(env) as string;
    this.tokenFile = path.join(this.serviceAccountDir, 'token');
    this.caFile = path.join(this.serviceAccountDir, 'ca.crt');
    if (!path.isAbsolute(options.out) || options.out.endsWith('/')) {
      throw new CniNodeError('usage', `--kubeconfig-out=${options.out}: give the absolute path of the file to write, e.g. /host/etc/cni/net.d/multus.d/multus.kubeconfig`);
    }
    if (this.mode === 'files') {
      const map = parsePathMap(SETTINGS.hostPathMap.read(env) as string);
      const token = `${options.out}.token`;
      const ca = `${options.out}.ca.crt`;
      const nodeToken = toNodePath(token, map);
      const nodeCa = toNodePath(ca, map);
      if (nodeToken === undefined || nodeCa === undefined) {
        throw new CniNodeError(
          'usage',
          `--kubeconfig-out=${options.out}: cannot tell where this file is on the node; set CNI_NODE_HOST_PATH_MAP=<container-prefix>=<node-prefix> (default ${SETTINGS.hostPathMap.shownDefault}), or use CNI_NODE_KUBECONFIG_CREDENTIALS=embed`,
        );
      }
      this.companions = { token, ca, nodeToken, nodeCa };
    } else {
      this.companions = undefined;
    }
  }

  /** Validates the settings (throws a CniNodeError), writes the kubeconfig once and starts watching the service account. */
  static async start(options: KubeconfigOutOptions): Promise<KubeconfigOut> {
    const k = new KubeconfigOut(options);
    const watchOpts = {
      initial: false,
      // The watches are triggers: a file over the cap is not read by them; sync()
      // reads (and refuses) the service account itself, and replaces a planted
      // oversized file at the kubeconfig's path.
      maxBytes: MAX_KUBECONFIG_BYTES,
      ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
      ...(options.recheckMs !== undefined ? { recheckMs: options.recheckMs } : {}),
      onError: (e: Error) => {
        if (e instanceof TooBigError) void k.sync('event');
        else options.reporter.warn(`--kubeconfig-out: watching the service account: ${e.message}`);
      },
    };
    // Any of these changing is a reason to look; write() says which one it was.
    k.watchers.push(watchFile(k.tokenFile, () => k.sync('event'), watchOpts));
    k.watchers.push(watchFile(k.caFile, () => k.sync('event'), watchOpts));
    // Someone removed or edited the file on the node: put it back.
    k.watchers.push(watchFile(options.out, () => k.sync('event'), watchOpts));
    await Promise.all(k.watchers.map((w) => w.ready));
    await k.sync('start');
    return k;
  }

  /**
   * Brings the file(s) up to date; serialised. Never throws: problems go to
   * onProblem and the log. `why` is used for the log when the cause is not a
   * changed token or CA ("start").
   */
  sync(why: string): Promise<boolean> {
    const next = this.chain.then(() => this.syncNow(why));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async syncNow(why: string): Promise<boolean> {
    if (this.closed) return false;
    let written: string[];
    try {
      ({ written, why } = await this.write(why));
    } catch (e) {
      const problem = `--kubeconfig-out ${this.options.out} is not current: ${e instanceof CniNodeError ? e.message : reason(e)}`;
      if (problem !== this.lastProblem) this.options.reporter.warn(problem);
      this.lastProblem = problem;
      this.options.onProblem?.(problem);
      return false;
    }
    if (this.lastProblem !== undefined) {
      this.lastProblem = undefined;
      this.options.onProblem?.(undefined);
    }
    if (written.length > 0) {
      this.options.reporter.info(`kubeconfig-out: wrote ${written.join(', ')} (${why})`);
      this.options.onWrite?.(why);
    }
    return written.length > 0;
  }

  private async readServiceAccount(): Promise<{ token: string; ca: string }> {
    const tokenBytes = await readCapped(this.tokenFile, MAX_TOKEN_BYTES, 'the service account token');
    if (tokenBytes === undefined) throw new CniNodeError('missing', `the service account token ${this.tokenFile} does not exist (does the pod have a service account token mounted?)`);
    const token = tokenBytes.toString('utf8').trim();
    if (token === '') throw new CniNodeError('missing', `the service account token ${this.tokenFile} is empty`);
    const caBytes = await readCapped(this.caFile, MAX_CA_BYTES, 'the cluster CA');
    if (caBytes === undefined) throw new CniNodeError('missing', `the cluster CA ${this.caFile} does not exist`);
    const ca = caBytes.toString('utf8');
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new CniNodeError('invalid', `the cluster CA ${this.caFile} is not a PEM certificate`);
    return { token, ca };
  }

  /** Writes what differs; returns the paths written and why. */
  private async write(hint: string): Promise<{ written: string[]; why: string }> {
    const { token, ca } = await this.readServiceAccount();
    const why =
      this.lastToken !== undefined && token !== this.lastToken
        ? 'the service account token changed (rotated)'
        : this.lastCa !== undefined && ca !== this.lastCa
          ? 'the cluster CA changed'
          : hint === 'event'
            ? `${this.options.out} was changed or removed on the node`
            : hint;
    this.lastToken = token;
    this.lastCa = ca;
    const files: Array<[string, string]> = [];
    if (this.companions) {
      files.push([this.companions.ca, ca], [this.companions.token, `${token}\n`]);
      files.push([this.options.out, renderKubeconfig({ server: this.server, caFile: this.companions.nodeCa, tokenFile: this.companions.nodeToken })]);
    } else {
      files.push([this.options.out, renderKubeconfig({ server: this.server, caData: ca, token })]);
    }
    for (const [file, content] of files) {
      const bytes = Buffer.byteLength(content);
      if (bytes > MAX_KUBECONFIG_BYTES) throw new CniNodeError('invalid', `${file} would be ${bytes} bytes, over the limit of ${MAX_KUBECONFIG_BYTES}; nothing was written`);
    }
    const written: string[] = [];
    for (const [file, content] of files) {
      const dir = path.dirname(file);
      const name = path.basename(file);
      const existing = await inspect(dir, name).catch(() => undefined);
      // Compared only when it could be ours: a huge file planted there is replaced, not read.
      if (existing?.type === 'file' && existing.mode === PRIVATE_MODE && existing.stamp.size === Buffer.byteLength(content)) {
        const now = await readIfExists(file, { noFollow: true }).catch(() => undefined);
        if (now?.equals(Buffer.from(content))) continue;
      }
      try {
        await fs.mkdir(dir, { recursive: true, mode: 0o755 });
      } catch (e) {
        throw new CniNodeError('io', `cannot create ${dir}: ${reason(e)}`);
      }
      await writeFileAtomic(dir, name, content, PRIVATE_MODE);
      this.writes++;
      written.push(file);
    }
    return { written, why };
  }

  /** Removes what --kubeconfig-out wrote (--uninstall-on-exit). */
  async remove(): Promise<string[]> {
    await this.close();
    const removed: string[] = [];
    for (const file of [this.options.out, ...(this.companions ? [this.companions.token, this.companions.ca] : [])]) {
      if (await removeFile(path.dirname(file), path.basename(file)).catch(() => false)) removed.push(file);
    }
    return removed;
  }

  /** Stops watching; resolves once a write under way has finished, so nothing is written after it. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers) w.close();
    await this.chain;
  }
}
