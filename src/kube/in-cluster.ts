/**
 * What Kubernetes gives every pod for reaching the API server: the service
 * address in KUBERNETES_SERVICE_HOST/PORT (the settings, with the service account
 * dir, are in core/settings.ts). Used by the credentials (config.ts) and by the
 * kubeconfig cni-node writes for the node (daemon/kubeconfig-out.ts).
 */

/** A host as it goes into a URL: an IPv6 address in brackets (KUBERNETES_SERVICE_HOST has none). */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
