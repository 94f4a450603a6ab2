/**
 * What --kubeconfig-out writes, as text (kubeconfig-out.ts keeps it current): the
 * server from the pod's environment, container paths turned into node paths, the
 * kubeconfig itself, and the service account a token belongs to.
 */
import path from 'node:path';
import { CniNodeError } from '../core/errors.js';
import { SETTINGS } from '../core/settings.js';
import { urlHost } from '../kube/in-cluster.js';

export type CredentialsMode = 'embed' | 'files';
export type TokenMode = 'request' | 'projected';

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

/** Issues a token for `sa` (TokenRequest); throws the API's error (a `status` of 401/403/404 means "not allowed"). */
export type TokenRequester = (sa: ServiceAccountRef, expirationSeconds: number) => Promise<{ token: string; expiresAt: number }>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** A JWT's claims, unverified (the API server verifies; here they only say what a token is), or undefined. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (part === undefined || part.length > 16_384) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The service account a projected token belongs to (its `sub` claim), or undefined if it is not one. Not verified: it is the pod's own token. */
export function serviceAccountOfToken(token: string): ServiceAccountRef | undefined {
  const sub = jwtClaims(token)?.['sub'];
  const m = typeof sub === 'string' ? /^system:serviceaccount:([^:]+):([^:]+)$/.exec(sub) : null;
  if (!m || !DNS_LABEL.test(m[1] as string) || !DNS_SUBDOMAIN.test(m[2] as string)) return undefined;
  return { namespace: m[1] as string, name: m[2] as string };
}

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
    if (!/^https?:\/\/./.test(override))
      throw new CniNodeError('usage', `CNI_NODE_KUBECONFIG_SERVER=${override}: expected a URL such as https://10.0.0.1:6443`);
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
