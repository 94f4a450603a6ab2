/**
 * What Kubernetes gives every pod for reaching the API server: the service
 * account mount, and the service address in KUBERNETES_SERVICE_HOST/PORT. Used by
 * the credentials (config.ts) and by the kubeconfig cni-node writes for the node
 * (daemon/kubeconfig-out.ts). No imports: cheap to load anywhere.
 */

/** Where the kubelet mounts the pod's service account (token, ca.crt, namespace). */
export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A host as it goes into a URL: an IPv6 address in brackets (KUBERNETES_SERVICE_HOST has none). */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
