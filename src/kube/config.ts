/**
 * Where cni-node's Kubernetes credentials come from, in this order:
 *   1. --kubeconfig (EngineOptions.kubeconfig)
 *   2. KUBECONFIG (a list separated by ':', merged as kubectl does: the first file wins)
 *   3. the pod's service account (KUBERNETES_SERVICE_HOST/PORT set and a token file present)
 *   4. ~/.kube/config
 *
 * Kubeconfig files are read with @kubernetes/client-node's KubeConfig, so exec
 * plugins, auth providers, client certificates and proxies work as they do there.
 * The in-cluster path needs none of that and does not load the library at all.
 *
 * Tokens read from files (the in-cluster service account token, and `token-file`
 * in a kubeconfig) are re-read whenever the file changes: projected service
 * account tokens are rotated by the kubelet (an atomic `..data` symlink swap), and
 * @kubernetes/client-node 1.3.0 keeps one cached token per process for up to 60 s
 * (shared by every KubeConfig, whatever file it came from) and reads `token-file`
 * only once. A 401 answer also forces a re-read (see client.ts).
 */
import { statSync } from 'node:fs';
import type https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { CniNodeError, reason } from '../core/errors.js';
import { namespaceProblem } from '../core/names.js';
import { INPUT_LIMITS } from '../node/input-limits.js';
import { readRegularSync } from '../node/read.js';
import { DEFAULT_SERVICE_ACCOUNT_DIR, urlHost } from './in-cluster.js';

export interface KubeConfigOptions {
  /** --kubeconfig: wins over everything else. */
  kubeconfig?: string;
  /** The environment to read KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT, HOME and CNI_NODE_SERVICE_ACCOUNT_DIR from. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where the pod's service account is mounted (default /var/run/secrets/kubernetes.io/serviceaccount, or $CNI_NODE_SERVICE_ACCOUNT_DIR). */
  serviceAccountDir?: string;
}

/** Supplies the Authorization header for each request. */
export interface AuthProvider {
  /** The header value ("Bearer …", "Basic …"), or undefined for none (client certificates). */
  header(): Promise<string | undefined>;
  /** Forget any cached credential (after a 401); true if a fresh one may differ. */
  invalidate(): boolean;
}

export interface ResolvedKubeConfig {
  /** The API server's URL, without a trailing slash. */
  server: string;
  /** Where the credentials came from, for messages: "--kubeconfig /x", "KUBECONFIG=/x", "in-cluster service account (…)", "~/.kube/config (/root/.kube/config)". */
  source: string;
  /** Who we are, as far as the configuration says (the server's own messages are more precise). */
  identity: string;
  /** TLS options for node:https (ca, cert, key, rejectUnauthorized, servername). */
  tls: Pick<https.RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;
  auth: AuthProvider;
  /**
   * The namespace for namespaced objects that name none: the pod's namespace (the
   * service account's namespace file), else the kubeconfig context's namespace,
   * else "default".
   */
  namespace: string;
  /** The service account directory this configuration would use in a pod. */
  serviceAccountDir: string;
  /** When the kubeconfig names a proxy: an agent made by @kubernetes/client-node for it (no keep-alive). */
  proxyAgent?: https.Agent;
}

/** Reads a token from a file, again whenever the file changes (new inode, size or mtime) or after invalidate(). */
export class TokenFileAuth implements AuthProvider {
  private token: string | undefined;
  private stamp = '';

  constructor(readonly file: string) {}

  async header(): Promise<string | undefined> {
    return `Bearer ${this.current()}`;
  }

  /** The token now in the file (re-read only if the file changed). */
  current(): string {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      throw new CniNodeError('missing', `cannot read the API token file ${this.file}: ${reason(e)}`);
    }
    if (this.token === undefined || stamp !== this.stamp) {
      let text: string;
      try {
        const bytes = readRegularSync(this.file, { maxBytes: INPUT_LIMITS.token, what: 'the API token file' });
        if (bytes === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${this.file}'`), { code: 'ENOENT' });
        text = bytes.toString('utf8');
      } catch (e) {
        throw e instanceof CniNodeError ? e : new CniNodeError('missing', `cannot read the API token file ${this.file}: ${reason(e)}`);
      }
      const token = text.trim();
      if (token === '') throw new CniNodeError('missing', `the API token file ${this.file} is empty`);
      this.token = token;
      this.stamp = stamp;
    }
    return this.token;
  }

  invalidate(): boolean {
    this.token = undefined;
    this.stamp = '';
    return true;
  }
}

class StaticAuth implements AuthProvider {
  constructor(private readonly value: string | undefined) {}
  async header(): Promise<string | undefined> {
    return this.value;
  }
  invalidate(): boolean {
    return false;
  }
}

/** Exec plugins and auth providers: @kubernetes/client-node computes the header (it caches and refreshes them itself). */
class KubeConfigAuth implements AuthProvider {
  constructor(private readonly kc: KubeConfig) {}
  async header(): Promise<string | undefined> {
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    (opts.agent as https.Agent | undefined)?.destroy();
    const h = opts.headers as Record<string, string | undefined> | undefined;
    return h?.['Authorization'] ?? h?.['authorization'];
  }
  invalidate(): boolean {
    return true;
  }
}

/** Loads the credentials, or throws a CniNodeError that says what was tried and what to do. */
export async function resolveKubeConfig(options: KubeConfigOptions = {}): Promise<ResolvedKubeConfig> {
  const env = options.env ?? process.env;
  const saDir = options.serviceAccountDir ?? (env['CNI_NODE_SERVICE_ACCOUNT_DIR'] || DEFAULT_SERVICE_ACCOUNT_DIR);
  const podNamespace = readNamespaceFile(path.join(saDir, 'namespace'));

  if (options.kubeconfig) return fromFiles([options.kubeconfig], `--kubeconfig ${options.kubeconfig}`, podNamespace, saDir);
  const list = (env['KUBECONFIG'] ?? '').split(path.delimiter).filter((f) => f !== '');
  if (list.length > 0) return fromFiles(list, `KUBECONFIG=${list.join(path.delimiter)}`, podNamespace, saDir);

  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const tokenFile = path.join(saDir, 'token');
  if (host && port && exists(tokenFile)) return inCluster(host, port, saDir, podNamespace);

  const home = env['HOME'] || os.homedir();
  const homeConfig = path.join(home, '.kube', 'config');
  if (exists(homeConfig)) return fromFiles([homeConfig], `~/.kube/config (${homeConfig})`, podNamespace, saDir);

  const why = host && port ? `KUBERNETES_SERVICE_HOST is set but ${tokenFile} does not exist` : 'not running in a pod (KUBERNETES_SERVICE_HOST is not set)';
  throw new CniNodeError(
    'missing',
    `no Kubernetes credentials: ${why}, and there is no kubeconfig (--kubeconfig, KUBECONFIG, ${homeConfig}). In a DaemonSet give the pod a service account; elsewhere pass --kubeconfig=FILE`,
  );
}

function inCluster(host: string, port: string, saDir: string, podNamespace: string | undefined): ResolvedKubeConfig {
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const caFile = path.join(saDir, 'ca.crt');
  const tokenFile = path.join(saDir, 'token');
  const auth = new TokenFileAuth(tokenFile);
  let ca: Buffer | undefined;
  if (scheme === 'https') {
    try {
      ca = readRegularSync(caFile, { maxBytes: INPUT_LIMITS.certificate, what: 'the cluster CA' });
      if (ca === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${caFile}'`), { code: 'ENOENT' });
    } catch (e) {
      throw new CniNodeError('missing', `in-cluster credentials: cannot read the cluster CA ${caFile}: ${e instanceof CniNodeError ? e.message : reason(e)}`);
    }
  }
  let identity = `the service account token in ${tokenFile}`;
  try {
    const sub = jwtSubject(auth.current());
    if (sub) identity = sub;
  } catch {
    // Reported when a request needs the token.
  }
  return {
    server: `${scheme}://${urlHost(host)}:${port}`,
    source: `in-cluster service account (${saDir})`,
    identity,
    tls: ca ? { ca, rejectUnauthorized: true } : {},
    auth,
    namespace: podNamespace ?? 'default',
    serviceAccountDir: saDir,
  };
}

async function fromFiles(files: string[], source: string, podNamespace: string | undefined, saDir: string): Promise<ResolvedKubeConfig> {
  // Loaded only here: the in-cluster path (the DaemonSet) does without the library (~100 ms of start-up).
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  const raws: { file: string; doc: unknown }[] = [];
  for (const [i, file] of files.entries()) {
    let text: string;
    try {
      const bytes = readRegularSync(file, { maxBytes: INPUT_LIMITS.kubeconfig, what: 'the kubeconfig' });
      if (bytes === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: 'ENOENT' });
      text = bytes.toString('utf8');
    } catch (e) {
      if (e instanceof CniNodeError) throw new CniNodeError(e.kind, `kubeconfig ${file} (from ${source}): ${e.message}`);
      const code = (e as NodeJS.ErrnoException).code;
      throw new CniNodeError(code === 'ENOENT' ? 'missing' : 'io', `kubeconfig ${file} (from ${source}): ${code === 'ENOENT' ? 'no such file' : reason(e)}`);
    }
    try {
      const doc = absoluteTokenFiles(parseYaml(text) as unknown, path.dirname(file));
      raws.push({ file, doc });
      // As KubeConfig.loadFromFile, but with token-file paths made absolute first
      // (KubeConfig reads them relative to the working directory).
      const one = i === 0 ? kc : new KubeConfig();
      one.loadFromString(JSON.stringify(doc));
      one.makePathsAbsolute(path.dirname(file));
      if (one !== kc) mergeInto(kc, one);
    } catch (e) {
      throw new CniNodeError('invalid', `kubeconfig ${file} (from ${source}) cannot be read: ${reason(e)}`);
    }
  }
  const ctx = kc.getContextObject(kc.getCurrentContext());
  if (!ctx) {
    throw new CniNodeError('invalid', `kubeconfig from ${source} has no current context${kc.getCurrentContext() ? ` ("${kc.getCurrentContext()}" is not defined)` : ''}; set current-context`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new CniNodeError('invalid', `kubeconfig from ${source}: context "${ctx.name}" names cluster "${ctx.cluster}", which is not defined or has no server`);
  const user = kc.getCurrentUser();

  const tls: ResolvedKubeConfig['tls'] = {};
  try {
    const ca = fileOrData(cluster.caFile, cluster.caData);
    if (ca) tls.ca = ca;
    const cert = fileOrData(user?.certFile, user?.certData);
    if (cert) tls.cert = cert;
    const key = fileOrData(user?.keyFile, user?.keyData);
    if (key) tls.key = key;
  } catch (e) {
    throw new CniNodeError('missing', `kubeconfig from ${source}: ${reason(e)}`);
  }
  tls.rejectUnauthorized = !cluster.skipTLSVerify;
  if (cluster.tlsServerName) tls.servername = cluster.tlsServerName;

  let auth: AuthProvider = new StaticAuth(undefined);
  const providerTokenFile = (user?.authProvider as { name?: string; config?: { tokenFile?: string } } | undefined)?.config?.tokenFile;
  const tokenFile = user ? (rawTokenFile(raws, user.name) ?? (providerTokenFile ? path.resolve(path.dirname(files[0] as string), providerTokenFile) : undefined)) : undefined;
  if (user?.exec || (user?.authProvider && !tokenFile)) auth = new KubeConfigAuth(kc);
  else if (tokenFile) auth = new TokenFileAuth(tokenFile);
  else if (user?.token) auth = new StaticAuth(`Bearer ${user.token.trim()}`);
  else if (user?.username) auth = new StaticAuth(`Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`);

  const resolved: ResolvedKubeConfig = {
    server: cluster.server.replace(/\/+$/, ''),
    source,
    identity: user ? `kubeconfig user "${user.name}"` : 'no user',
    tls,
    auth,
    namespace: podNamespace ?? (ctx.namespace || 'default'),
    serviceAccountDir: saDir,
  };
  if (cluster.proxyUrl) {
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    resolved.proxyAgent = opts.agent as https.Agent;
  }
  return resolved;
}

/** As KubeConfig.loadFromDefault merges a KUBECONFIG list: the first definition of a name wins. */
function mergeInto(kc: KubeConfig, more: KubeConfig): void {
  const has = <T extends { name: string }>(list: T[], name: string): boolean => list.some((x) => x.name === name);
  for (const c of more.getClusters()) if (!has(kc.getClusters(), c.name)) kc.addCluster(c);
  for (const u of more.getUsers()) if (!has(kc.getUsers(), u.name)) kc.addUser(u);
  for (const c of more.getContexts()) if (!has(kc.getContexts(), c.name)) kc.addContext(c);
  if (!kc.getCurrentContext() && more.getCurrentContext()) kc.setCurrentContext(more.getCurrentContext());
}

/** The kubeconfig document with each users[].user.token-file resolved against the file's directory. */
function absoluteTokenFiles(doc: unknown, dir: string): unknown {
  const users = (doc as { users?: unknown } | null)?.users;
  if (!Array.isArray(users)) return doc;
  for (const u of users) {
    const user = (u as { user?: Record<string, unknown> } | null)?.user;
    const tf = user?.['token-file'];
    if (user && typeof tf === 'string' && tf !== '') user['token-file'] = path.resolve(dir, tf);
  }
  return doc;
}

/** `users[].user.token-file` as written in the first file that defines the user (KubeConfig reads it once and forgets the path). */
function rawTokenFile(raws: { file: string; doc: unknown }[], userName: string): string | undefined {
  for (const { file, doc } of raws) {
    const users = (doc as { users?: unknown } | null)?.users;
    if (!Array.isArray(users)) continue;
    const entry = users.find((u) => (u as { name?: unknown })?.name === userName) as { user?: Record<string, unknown> } | undefined;
    if (!entry) continue;
    const tf = entry.user?.['token-file'];
    if (typeof tf === 'string' && tf !== '' && typeof entry.user?.['token'] !== 'string') return path.resolve(path.dirname(file), tf);
    return undefined;
  }
  return undefined;
}

function fileOrData(file: string | undefined, data: string | undefined): Buffer | undefined {
  if (file) {
    const bytes = readRegularSync(file, { maxBytes: INPUT_LIMITS.certificate });
    if (bytes === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: 'ENOENT' });
    return bytes;
  }
  if (data) return Buffer.from(data, 'base64');
  return undefined;
}

/**
 * The pod's namespace from the service account's namespace file; undefined if there
 * is none. Its content becomes part of API paths, so it must be a namespace name:
 * anything else is refused loudly rather than used or silently replaced.
 */
function readNamespaceFile(file: string): string | undefined {
  let ns: string;
  try {
    const bytes = readRegularSync(file, { maxBytes: INPUT_LIMITS.namespace, what: "the service account's namespace file" });
    if (bytes === undefined) return undefined;
    ns = bytes.toString('utf8').trim();
  } catch {
    return undefined;
  }
  if (ns === '') return undefined;
  const bad = namespaceProblem(ns);
  if (bad) throw new CniNodeError('invalid', `the service account's namespace file ${file}: ${bad}`);
  return ns;
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

/** The `sub` claim of a JWT (not verified: only for messages), e.g. system:serviceaccount:kube-system:cni-node. */
export function jwtSubject(token: string): string | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}
