/**
 * Where cni-node's Kubernetes credentials come from, in this order: --kubeconfig,
 * KUBECONFIG, the pod's service account, ~/.kube/config. Kubeconfig files are
 * kubeconfig-file.ts's; the Authorization header is auth.ts's (tokens read again
 * when their file changes). docs/ARCHITECTURE.md has the details.
 */
import { statSync } from 'node:fs';
import type https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { CniNodeError, reason } from '../core/errors.js';
import { namespaceProblem } from '../core/names.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegularSync } from '../sys/read.js';
import { SETTINGS } from '../core/settings.js';
import { jwtSubject, TokenFileAuth, type AuthProvider } from './auth.js';
import { urlHost } from './in-cluster.js';
import { fromFiles } from './kubeconfig-file.js';

export interface KubeConfigOptions {
  /** --kubeconfig: wins over everything else. */
  kubeconfig?: string;
  /** The environment to read KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT, HOME and CNI_NODE_SERVICE_ACCOUNT_DIR from. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where the pod's service account is mounted (default /var/run/secrets/kubernetes.io/serviceaccount, or $CNI_NODE_SERVICE_ACCOUNT_DIR). */
  serviceAccountDir?: string;
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

/** Loads the credentials, or throws a CniNodeError that says what was tried and what to do. */
export async function resolveKubeConfig(options: KubeConfigOptions = {}): Promise<ResolvedKubeConfig> {
  const env = options.env ?? process.env;
  const saDir = options.serviceAccountDir ?? (SETTINGS.serviceAccountDir.read(env) as string);
  const podNamespace = readNamespaceFile(path.join(saDir, 'namespace'));

  if (options.kubeconfig) return fromFiles([options.kubeconfig], `--kubeconfig ${options.kubeconfig}`, podNamespace, saDir);
  const list = (SETTINGS.kubeconfigPath.read(env) ?? '').split(path.delimiter).filter((f) => f !== '');
  if (list.length > 0) return fromFiles(list, `KUBECONFIG=${list.join(path.delimiter)}`, podNamespace, saDir);

  const host = SETTINGS.serviceHost.read(env);
  const port = SETTINGS.servicePort.read(env);
  const tokenFile = path.join(saDir, 'token');
  if (host && port && exists(tokenFile)) return inCluster(host, port, saDir, podNamespace);

  const home = SETTINGS.home.read(env) ?? os.homedir();
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

export function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}
