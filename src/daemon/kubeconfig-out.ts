/**
 * --kubeconfig-out: a kubeconfig for CNI plugins that talk to the API (Multus),
 * made from the pod's service account and kept current: CA and token embedded
 * (the default) or written beside it and named by node paths; mode 0600, atomic,
 * rewritten when the token rotates. The token is one cni-node requests for its
 * service account (not bound to the pod, so a rolling update does not break Multus
 * meanwhile), or the pod's projected token. docs/ARCHITECTURE.md has the details.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CniNodeError, reason } from '../core/errors.js';
import type { Reporter } from '../core/contracts.js';
import { SETTINGS } from '../core/settings.js';
import { inspect, readIfExists, removeFile, writeFileAtomic } from '../node/atomic.js';
import { readRegularBytes } from '../sys/read.js';
import { TooBigError, watchFile, type FileWatcher } from './file-watch.js';
import {
  jwtClaims,
  parsePathMap,
  renderKubeconfig,
  serverFromEnv,
  serviceAccountOfToken,
  toNodePath,
  type CredentialsMode,
  type TokenMode,
  type TokenRequester,
} from './kubeconfig-render.js';

/** Lifetime asked for a requested token; renewed at 80 % of the lifetime the API server grants. */
export const TOKEN_TTL_SECONDS = 24 * 3600;
/** When the API refuses to issue tokens (RBAC): ask again after this long. */
const TOKEN_REFUSED_RETRY_MS = 10 * 60_000;
/** When a token request fails otherwise (network, server): ask again after this long. */
const TOKEN_RETRY_MS = 30_000;
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
  /** Issues tokens for the pod's service account (CNI_NODE_KUBECONFIG_TOKEN=request); without it the projected token is used. */
  requestToken?: TokenRequester;
  /** Shortest time between token renewals (default 60 s; tests). */
  renewMinMs?: number;
}

export class KubeconfigOut {
  readonly mode: CredentialsMode;
  readonly tokenMode: TokenMode;
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
  /** The requested token in use, if any. */
  private requested: { token: string; issuedAt: number; expiresAt: number } | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Why a requested token is not in use (logged once per reason). */
  private tokenProblem: string | undefined;

  private constructor(private readonly options: KubeconfigOutOptions) {
    const env = options.env;
    this.mode = SETTINGS.kubeconfigCredentials.read(env) ?? 'embed';
    const tokenMode = SETTINGS.kubeconfigToken.read(env) ?? 'request';
    this.tokenMode = options.requestToken ? tokenMode : 'projected';
    this.server = serverFromEnv(env);
    this.serviceAccountDir = SETTINGS.serviceAccountDir.read(env) as string;
    this.tokenFile = path.join(this.serviceAccountDir, 'token');
    this.caFile = path.join(this.serviceAccountDir, 'ca.crt');
    if (!path.isAbsolute(options.out) || options.out.endsWith('/')) {
      throw new CniNodeError(
        'usage',
        `--kubeconfig-out=${options.out}: give the absolute path of the file to write, e.g. /host/etc/cni/net.d/multus.d/multus.kubeconfig`,
      );
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
    if (k.tokenMode === 'request') await k.renew('start');
    else await k.sync('start');
    return k;
  }

  /** What the kubeconfig's token is: for the startup log. */
  get tokenSource(): string {
    return this.requested ? 'a requested token, renewed before it expires' : 'the projected token of the pod';
  }

  /**
   * Requests a fresh token, writes it, and schedules the next renewal. Never throws:
   * while no requested token is valid, the projected one is written (as without
   * CNI_NODE_KUBECONFIG_TOKEN=request), and the request is tried again.
   */
  private async renew(why: string): Promise<void> {
    if (this.closed || !this.options.requestToken) return;
    let delay: number;
    try {
      const { token } = await this.readServiceAccount();
      const sa = serviceAccountOfToken(token);
      if (!sa) throw Object.assign(new Error(`${this.tokenFile} is not a service account token`), { status: 404 });
      // A restart (or the new pod of a rolling update) keeps the token already on the
      // node while it is good for a while: nothing is rewritten without a reason.
      const kept = this.requested === undefined ? await this.tokenOnNode(token) : undefined;
      if (kept) {
        this.requested = kept;
      } else {
        const got = await this.options.requestToken(sa, TOKEN_TTL_SECONDS);
        if (!got.token || !Number.isFinite(got.expiresAt)) throw new Error('the API server answered the token request without a token');
        this.requested = { token: got.token, issuedAt: Date.now(), expiresAt: got.expiresAt };
      }
      if (this.tokenProblem !== undefined) this.options.reporter.info(`kubeconfig-out: using a requested token for ${sa.namespace}/${sa.name} again`);
      this.tokenProblem = undefined;
      const { issuedAt, expiresAt } = this.requested;
      delay = Math.max(this.options.renewMinMs ?? 60_000, issuedAt + 0.8 * (expiresAt - issuedAt) - Date.now());
    } catch (e) {
      const status = (e as { status?: unknown }).status;
      const refused = status === 401 || status === 403 || status === 404;
      if (this.requested && this.requested.expiresAt - Date.now() < 60_000) this.requested = undefined;
      const problem = `kubeconfig-out: cannot request a token for the service account (${e instanceof Error ? e.message : String(e)}); ${
        this.requested
          ? 'keeping the current one until it expires'
          : "using the pod's projected token, which stops working when the pod is deleted: Multus fails pods during rolling updates"
      }${refused ? ' (allow it: create serviceaccounts/token for this service account, as deploy/multus-cni-rbac.yaml does)' : ''}`;
      if (problem !== this.tokenProblem) this.options.reporter.warn(problem);
      this.tokenProblem = problem;
      delay = refused ? TOKEN_REFUSED_RETRY_MS : TOKEN_RETRY_MS;
    }
    await this.sync(why);
    if (this.closed) return;
    this.renewTimer = setTimeout(() => void this.renew('the requested token is due for renewal'), delay);
    this.renewTimer.unref();
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
    if (tokenBytes === undefined)
      throw new CniNodeError('missing', `the service account token ${this.tokenFile} does not exist (does the pod have a service account token mounted?)`);
    const token = tokenBytes.toString('utf8').trim();
    if (token === '') throw new CniNodeError('missing', `the service account token ${this.tokenFile} is empty`);
    const caBytes = await readCapped(this.caFile, MAX_CA_BYTES, 'the cluster CA');
    if (caBytes === undefined) throw new CniNodeError('missing', `the cluster CA ${this.caFile} does not exist`);
    const ca = caBytes.toString('utf8');
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new CniNodeError('invalid', `the cluster CA ${this.caFile} is not a PEM certificate`);
    return { token, ca };
  }

  /**
   * The requested token in the kubeconfig already on the node, if it can be kept: a
   * token of the same service account (same uid and issuer as the pod's own token),
   * not bound to a pod, with more than a fifth of its life left. Anything else (no
   * file, another token, a file too big to be ours) means: request a new one.
   */
  private async tokenOnNode(projected: string): Promise<{ token: string; issuedAt: number; expiresAt: number } | undefined> {
    const file = this.companions ? this.companions.token : this.options.out;
    // A node file: a regular file of a size cni-node could have written, or nothing to keep.
    const bytes = await readRegularBytes(file, {
      maxBytes: this.companions ? MAX_TOKEN_BYTES : MAX_KUBECONFIG_BYTES,
      follow: false,
      what: 'the kubeconfig on the node',
    }).catch(() => undefined);
    if (bytes === undefined) return undefined;
    const text = bytes.toString('utf8');
    let token: string | undefined;
    if (this.companions) {
      token = text.trim();
    } else {
      const m = /^ {4}token: (".*")$/m.exec(text);
      try {
        token = m ? (JSON.parse(m[1] as string) as string) : undefined;
      } catch {
        token = undefined;
      }
    }
    if (!token || token === projected) return undefined;
    const mine = jwtClaims(projected);
    const found = jwtClaims(token);
    if (!mine || !found) return undefined;
    const k8s = (c: Record<string, unknown>) => (c['kubernetes.io'] ?? {}) as { pod?: unknown; serviceaccount?: { uid?: unknown } };
    if (
      found['sub'] !== mine['sub'] ||
      found['iss'] !== mine['iss'] ||
      k8s(found).pod !== undefined ||
      k8s(found).serviceaccount?.uid !== k8s(mine).serviceaccount?.uid
    )
      return undefined;
    const iat = Number(found['iat']) * 1000;
    const exp = Number(found['exp']) * 1000;
    if (!Number.isFinite(iat) || !Number.isFinite(exp) || exp <= iat || exp - Date.now() < Math.max(60_000, 0.2 * (exp - iat))) return undefined;
    return { token, issuedAt: iat, expiresAt: exp };
  }

  /** Writes what differs; returns the paths written and why. */
  private async write(hint: string): Promise<{ written: string[]; why: string }> {
    const account = await this.readServiceAccount();
    const ca = account.ca;
    const token = this.requested?.token ?? account.token;
    const why =
      this.lastToken !== undefined && token !== this.lastToken
        ? this.requested
          ? 'the requested token was renewed'
          : 'the service account token changed (rotated)'
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
      if (bytes > MAX_KUBECONFIG_BYTES)
        throw new CniNodeError('invalid', `${file} would be ${bytes} bytes, over the limit of ${MAX_KUBECONFIG_BYTES}; nothing was written`);
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
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
    for (const w of this.watchers) w.close();
    await this.chain;
  }
}
