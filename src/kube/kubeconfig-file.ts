/**
 * Kubeconfig files, read as @kubernetes/client-node's KubeConfig reads them
 * (a KUBECONFIG list merged, the first definition of a name winning, token-file
 * relative to the file), without loading the library unless the user needs it:
 * exec plugins, auth providers and proxies are handed to its KubeConfig.
 */
import type https from 'node:https';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { CniNodeError, reason } from '../core/errors.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegularSync } from '../sys/read.js';
import { KubeConfigAuth, StaticAuth, TokenFileAuth, type AuthProvider } from './auth.js';
import type { ResolvedKubeConfig } from './config.js';

/** A kubeconfig's cluster, user and context entries, in @kubernetes/client-node's shapes (so they can be handed to its KubeConfig when needed). */
interface KcCluster {
  name: string;
  server: string;
  caData?: string;
  caFile?: string;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
}
interface KcUser {
  name: string;
  authProvider?: unknown;
  certData?: string;
  certFile?: string;
  exec?: unknown;
  keyData?: string;
  keyFile?: string;
  token?: string;
  password?: string;
  username?: string;
  impersonateUser?: string;
}
interface KcContext {
  name: string;
  cluster: string;
  user?: string;
  namespace?: string;
}
interface KcConfig {
  clusters: KcCluster[];
  users: KcUser[];
  contexts: KcContext[];
  currentContext: string;
}

export async function fromFiles(files: string[], source: string, podNamespace: string | undefined, saDir: string): Promise<ResolvedKubeConfig> {
  // Read as @kubernetes/client-node's KubeConfig.loadFromFile reads them (the same
  // validation, messages and path handling), without loading the library: it is
  // 4 MB of code, ~150 ms and ~40 MiB of RSS to load, and only exec plugins, auth
  // providers and proxies need it (see needsLibrary below).
  const { kc, raws } = readAndMerge(files, source);
  const ctx = findNamed(kc.contexts, kc.currentContext);
  if (!ctx) {
    throw new CniNodeError(
      'invalid',
      `kubeconfig from ${source} has no current context${kc.currentContext ? ` ("${kc.currentContext}" is not defined)` : ''}; set current-context`,
    );
  }
  const cluster = findNamed(kc.clusters, ctx.cluster);
  if (!cluster?.server)
    throw new CniNodeError('invalid', `kubeconfig from ${source}: context "${ctx.name}" names cluster "${ctx.cluster}", which is not defined or has no server`);
  const user = findNamed(kc.users, ctx.user);

  const tls = tlsOf(cluster, user, source);

  let auth: AuthProvider = new StaticAuth(undefined);
  const providerTokenFile = (user?.authProvider as { name?: string; config?: { tokenFile?: string } } | undefined)?.config?.tokenFile;
  const tokenFile = user
    ? (rawTokenFile(raws, user.name) ?? (providerTokenFile ? path.resolve(path.dirname(files[0] as string), providerTokenFile) : undefined))
    : undefined;
  const needsLibrary = Boolean(user?.exec || (user?.authProvider && !tokenFile) || cluster.proxyUrl);
  const library = needsLibrary ? await libraryKubeConfig(kc) : undefined;
  if (library && (user?.exec || (user?.authProvider && !tokenFile))) auth = new KubeConfigAuth(library);
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
  if (library && cluster.proxyUrl) {
    const opts: https.RequestOptions = {};
    await library.applyToHTTPSOptions(opts);
    resolved.proxyAgent = opts.agent as https.Agent;
  }
  return resolved;
}

/** Reads every file of the list and merges them, the first definition of a name winning. */
function readAndMerge(files: string[], source: string): { kc: KcConfig; raws: { file: string; doc: unknown }[] } {
  let kc: KcConfig | undefined;
  const raws: { file: string; doc: unknown }[] = [];
  for (const file of files) {
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
      // token-file paths are made absolute first (KubeConfig reads them relative to the working directory).
      const doc = absoluteTokenFiles(parseYaml(text) as unknown, path.dirname(file));
      raws.push({ file, doc });
      const one = parseKubeconfig(doc, path.dirname(file));
      if (kc === undefined) kc = one;
      else mergeInto(kc, one);
    } catch (e) {
      throw new CniNodeError('invalid', `kubeconfig ${file} (from ${source}) cannot be read: ${reason(e)}`);
    }
  }
  if (kc === undefined) throw new CniNodeError('missing', `no kubeconfig file in ${source}`);
  return { kc, raws };
}

/** The TLS options of the current context's cluster and user. */
function tlsOf(cluster: KcCluster, user: KcUser | undefined, source: string): ResolvedKubeConfig['tls'] {
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
  return tls;
}

/** @kubernetes/client-node's KubeConfig holding `kc`, for exec plugins, auth providers and proxies. */
async function libraryKubeConfig(kc: KcConfig): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const lib = new KubeConfig();
  // The entries already have the library's own shapes (KubeConfig's newClusters/newUsers/newContexts).
  lib.loadFromOptions({ clusters: kc.clusters, users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext } as unknown as Parameters<
    KubeConfig['loadFromOptions']
  >[0]);
  return lib;
}

/**
 * One kubeconfig document, as KubeConfig.loadFromString + makePathsAbsolute(dir)
 * make it: entries without a name (or a cluster without a server, a context
 * without a cluster) are errors, a `/` ending the server is dropped, a token-file
 * is read now, and certificate-authority, client-certificate and client-key are
 * resolved against the file's directory.
 */
function parseKubeconfig(doc: unknown, dir: string): KcConfig {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a kubeconfig (expected a YAML mapping)');
  const d = doc as Record<string, unknown>;
  const list = (key: string): Record<string, unknown>[] =>
    (Array.isArray(d[key]) ? (d[key] as unknown[]) : []).map((e) => (e !== null && typeof e === 'object' ? (e as Record<string, unknown>) : {}));
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : v === undefined || v === null ? undefined : String(v));
  const abs = (file: string | undefined): string | undefined => (file && !path.isAbsolute(file) ? path.join(dir, file) : file);
  const sub = (e: Record<string, unknown>, key: string): Record<string, unknown> | undefined =>
    e[key] !== null && typeof e[key] === 'object' ? (e[key] as Record<string, unknown>) : undefined;

  const clusters = list('clusters').map((e, i): KcCluster => {
    if (!e['name']) throw new Error(`clusters[${i}].name is missing`);
    const c = sub(e, 'cluster');
    if (!c) throw new Error(`clusters[${i}].cluster is missing`);
    if (!c['server']) throw new Error(`clusters[${i}].cluster.server is missing`);
    return omitUndefined({
      name: String(e['name']),
      server: String(c['server']).replace(/\/$/, ''),
      caData: str(c['certificate-authority-data']),
      caFile: abs(str(c['certificate-authority'])),
      skipTLSVerify: c['insecure-skip-tls-verify'] === true,
      tlsServerName: str(c['tls-server-name']),
      proxyUrl: str(c['proxy-url']),
    });
  });
  const contexts = list('contexts').map((e, i): KcContext => {
    if (!e['name']) throw new Error(`contexts[${i}].name is missing`);
    const c = sub(e, 'context');
    if (!c) throw new Error(`contexts[${i}].context is missing`);
    if (!c['cluster']) throw new Error(`contexts[${i}].context.cluster is missing`);
    return omitUndefined({
      name: String(e['name']),
      cluster: String(c['cluster']),
      user: str(c['user']) || undefined,
      namespace: str(c['namespace']) || undefined,
    });
  });
  const users = list('users').map((e, i): KcUser => {
    if (!e['name']) throw new Error(`users[${i}].name is missing`);
    const u = sub(e, 'user');
    const tokenFile = str(u?.['token-file']);
    return omitUndefined({
      name: String(e['name']),
      authProvider: u?.['auth-provider'] ?? undefined,
      certData: str(u?.['client-certificate-data']),
      certFile: abs(str(u?.['client-certificate'])),
      exec: u?.['exec'] ?? undefined,
      keyData: str(u?.['client-key-data']),
      keyFile: abs(str(u?.['client-key'])),
      token: str(u?.['token']) || (tokenFile ? readTokenFile(tokenFile) : undefined),
      password: str(u?.['password']),
      username: str(u?.['username']),
      impersonateUser: str(u?.['as']),
    });
  });
  return { clusters, users, contexts, currentContext: str(d['current-context']) ?? '' };
}

/** A user's `token-file`, read as the library reads it (relative to the working dir), but only a bounded regular file. */
function readTokenFile(file: string): string {
  const bytes = readRegularSync(file, { maxBytes: INPUT_LIMITS.token, what: 'the kubeconfig token-file' });
  if (bytes === undefined) throw new Error(`token-file ${file}: no such file`);
  return bytes.toString('utf8');
}

function omitUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

function findNamed<T extends { name: string }>(list: T[], name: string | undefined): T | undefined {
  return name === undefined ? undefined : list.find((x) => x.name === name);
}

/** As KubeConfig.loadFromDefault merges a KUBECONFIG list: the first definition of a name wins. */
function mergeInto(kc: KcConfig, more: KcConfig): void {
  const has = <T extends { name: string }>(list: T[], name: string): boolean => list.some((x) => x.name === name);
  for (const c of more.clusters) if (!has(kc.clusters, c.name)) kc.clusters.push(c);
  for (const u of more.users) if (!has(kc.users, u.name)) kc.users.push(u);
  for (const c of more.contexts) if (!has(kc.contexts, c.name)) kc.contexts.push(c);
  if (!kc.currentContext && more.currentContext) kc.currentContext = more.currentContext;
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
