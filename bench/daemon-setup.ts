// What the daemon benchmarks share: `cni-node run` as a DaemonSet runs it (in-cluster
// credentials from the node tree's projected service account) on a test node tree,
// and the node files a Multus-style setup starts from.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestCluster } from '../test/e2e/support/cluster.js';
import { NS, type Tree } from '../test/e2e/support/daemon.js';
import { BUNDLE } from './lib.js';

/** Debian's containernetworking-plugins: the image's plugins in the benchmarks. */
export const PLUGINS = '/usr/lib/cni';

export const calico = (name: string) =>
  `${JSON.stringify({
    cniVersion: '0.4.0',
    name,
    plugins: [
      { type: 'bridge', bridge: 'cni0' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  })}\n`;
export const MULTUS = '{"cniVersion":"0.4.0","name":"multus-cni-network","type":"bridge","delegates":[__10-calico.conflist__]}\n';

/** The primary CNI's config on the node, and a template pointing at it. */
export async function multusSetup(tree: Tree): Promise<void> {
  await writeFile(path.join(tree.netd, '10-calico.conflist'), calico('k8s-initial'));
  await writeFile(path.join(tree.templates, '05-multus.conf'), MULTUS);
}

/** Node's arguments for `cni-node run` on `tree`, watching ConfigMap NS/configMap, /metrics on a free loopback port. */
export function runArgs(tree: Tree, configMap: string, extra: string[] = []): string[] {
  return [
    BUNDLE,
    'run',
    `--config-map=${NS}/${configMap}`,
    `--plugins-dir=${PLUGINS}`,
    `--host-plugins-dir=${tree.bin}`,
    `--configs-dir=${tree.templates}`,
    `--host-configs-dir=${tree.netd}`,
    `--manifests-dir=${tree.manifests}`,
    '--listen=127.0.0.1:0',
    ...extra,
  ];
}

/** The environment of a pod: in-cluster credentials pointing at the test API server, POD_NAME/POD_NAMESPACE. */
export function podEnv(cluster: TestCluster, tree: Tree, pod: string): NodeJS.ProcessEnv {
  const { KUBECONFIG: _k, ...env } = process.env;
  return {
    ...env,
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: new URL(cluster.server).port,
    CNI_NODE_SERVICE_ACCOUNT_DIR: tree.sa,
    POD_NAME: pod,
    POD_NAMESPACE: NS,
  };
}
