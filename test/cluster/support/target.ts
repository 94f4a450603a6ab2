// Which cluster the cluster suite runs against, and the image it deploys.
//
// By default: the machine's own single-node cluster (scripts/test-cluster.sh),
// started for the suite and stopped after it, with the image built from this
// checkout's Dockerfile (scripts/image-build.sh) and loaded into its containerd.
//
// Bring your own cluster: set CNI_NODE_TEST_KUBECONFIG and CNI_NODE_TEST_IMAGE and
// the same suite runs against that cluster (docs/development.md, "Testing on your own cluster").
// A separate variable rather than KUBECONFIG, so that a KUBECONFIG in someone's
// shell never points this suite, which deploys into kube-system and replaces files
// on a node, at a cluster by accident.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../support/repo.js';
import { run, show } from './kubectl.js';

export const ROOT = REPO_ROOT;
const TEST_CLUSTER = path.join(ROOT, 'scripts', 'test-cluster.sh');
const IMAGE_BUILD = path.join(ROOT, 'scripts', 'image-build.sh');
const CACHE_DIR = process.env['CNI_NODE_TEST_CACHE'] ?? '/var/cache/cni-node-test';
export const KUBE_DIR = path.join(CACHE_DIR, 'kubernetes-1.20.2');
/** scripts/test-cluster.sh's state dir (fixed: one cluster per machine). */
export const LOCAL_STATE_DIR = '/var/lib/cni-node-test-cluster';
/** The tag the local run builds and loads (podman tags are per machine, shared by checkouts). */
const LOCAL_IMAGE_TAG = 'localhost/cni-node:cluster-test';

export interface Settings {
  mode: 'local' | 'byo';
  /** BYO: the kubeconfig given. Local: known once the cluster is up. */
  kubeconfig: string | undefined;
  /** BYO: the image the nodes pull. Local: a podman image to load instead of building one (optional). */
  image: string | undefined;
  kubectl: string;
  /** Image for test pods and the node helper pod (sh, ip, sha256sum, stat, find). */
  busyboxImage: string;
  /** The primary CNI's conflist on the nodes, which 05-multus.conf points at. */
  primaryConflist: string;
  /** The node to check; default the first Ready one. */
  node: string | undefined;
  /** Seconds to wait for a ConfigMap edit to reach the node through the kubelet. */
  configMapSyncTimeoutS: number;
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

export function readSettings(): Settings {
  const kubeconfig = env('CNI_NODE_TEST_KUBECONFIG');
  const cachedKubectl = path.join(KUBE_DIR, 'kubectl');
  return {
    mode: kubeconfig === undefined ? 'local' : 'byo',
    kubeconfig: kubeconfig === undefined ? undefined : path.resolve(kubeconfig),
    image: env('CNI_NODE_TEST_IMAGE'),
    kubectl: env('CNI_NODE_TEST_KUBECTL') ?? (isExecutable(cachedKubectl) ? cachedKubectl : 'kubectl'),
    busyboxImage: env('CNI_NODE_TEST_BUSYBOX_IMAGE') ?? 'busybox:1.35',
    primaryConflist: env('CNI_NODE_TEST_PRIMARY_CONFLIST') ?? '10-calico.conflist',
    node: env('CNI_NODE_TEST_NODE'),
    configMapSyncTimeoutS: Number(env('CNI_NODE_TEST_CONFIGMAP_SYNC_TIMEOUT') ?? '240'),
  };
}

/** Why the cluster suite cannot run, or undefined. Shown as the (loud) skip reason. */
export function clusterSuiteUnavailableReason(s: Settings): string | undefined {
  if (s.mode === 'byo') {
    if (s.image === undefined) return 'CNI_NODE_TEST_KUBECONFIG is set: set CNI_NODE_TEST_IMAGE too, to a cni-node image (with Multus) that the nodes can pull';
    if (!existsSync(s.kubeconfig as string)) return `CNI_NODE_TEST_KUBECONFIG=${s.kubeconfig}: no such file`;
    return undefined;
  }
  if (process.getuid?.() !== 0) return 'the local test cluster needs root (network and mount namespaces, containerd): run the tests as root';
  const missing = ['kube-apiserver', 'kubelet', 'kube-proxy', 'kubectl', 'pause'].filter((b) => !isExecutable(path.join(KUBE_DIR, b)));
  if (missing.length > 0)
    return `Kubernetes 1.20.2 is not provisioned (${missing.join(', ')} missing in ${KUBE_DIR}): run \`sudo scripts/setup.sh\` (or \`sudo scripts/test-cluster.sh provision\`)`;
  const tools = ['containerd', 'runc', 'ctr', 'etcd', 'conntrack', 'iptables', 'busybox', 'podman', 'gcc', 'jq'].filter((t) => !inPath(t));
  if (tools.length > 0) return `missing ${tools.join(', ')}: run \`sudo scripts/provision.sh\``;
  if (s.image === undefined && !existsSync(IMAGE_BUILD)) {
    return 'scripts/image-build.sh is not in this checkout, so the image cannot be built: set CNI_NODE_TEST_IMAGE to a podman image of cni-node with Multus';
  }
  return undefined;
}

export interface LocalCluster {
  kubeconfig: string;
  startMs: number;
  /** The cluster's mount and network namespace ids (e.g. mnt:[4026532301]), for the teardown check. */
  mntns: string;
  netns: string;
}

/** Removes what a run that is gone left behind (refused while another run uses the cluster), so that the host is read clean. */
export async function cleanupLocalCluster(log: (s: string) => void): Promise<void> {
  const argv = ['bash', TEST_CLUSTER, 'cleanup'];
  const r = await run(argv, { timeoutMs: 300_000 }, false);
  for (const line of r.stderr.split('\n')) if (line.trim() !== '') log(line);
  if (r.code !== 0) throw new Error(`scripts/test-cluster.sh cleanup failed:\n${show(argv, r)}`);
}

/** Starts the machine's test cluster, owned by this process (a killed run's cluster is cleaned up by the next start). */
export async function startLocalCluster(log: (s: string) => void): Promise<LocalCluster> {
  const argv = ['bash', TEST_CLUSTER, 'start', '--owner', String(process.pid)];
  const r = await run(argv, { timeoutMs: 300_000 }, false);
  for (const line of r.stderr.split('\n')) if (line.trim() !== '') log(line);
  if (r.code !== 0) throw new Error(`starting the test cluster failed:\n${show(argv, r)}`);
  const kubeconfig = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(kubeconfig)) throw new Error(`scripts/test-cluster.sh start printed no kubeconfig path:\n${show(argv, r)}`);
  return {
    kubeconfig,
    startMs: r.ms,
    mntns: readFileSync(path.join(LOCAL_STATE_DIR, 'mntns'), 'utf8').trim(),
    netns: readFileSync(path.join(LOCAL_STATE_DIR, 'netns'), 'utf8').trim(),
  };
}

export async function stopLocalCluster(log: (s: string) => void): Promise<number> {
  const argv = ['bash', TEST_CLUSTER, 'stop'];
  const r = await run(argv, { timeoutMs: 300_000 }, false);
  for (const line of r.stderr.split('\n')) if (line.trim() !== '') log(line);
  if (r.code !== 0) throw new Error(`stopping the test cluster failed:\n${show(argv, r)}`);
  return r.ms;
}

/**
 * The image for the local cluster: CNI_NODE_TEST_IMAGE if set (an existing podman
 * image), otherwise the Dockerfile's default build by scripts/image-build.sh. Then
 * loaded into the cluster's containerd, as a registry pull would put it there.
 */
export async function localImage(s: Settings, log: (s: string) => void): Promise<{ ref: string; buildMs: number; loadMs: number }> {
  let ref = s.image;
  let buildMs = 0;
  if (ref === undefined) {
    const argv = ['bash', IMAGE_BUILD, '--tag', LOCAL_IMAGE_TAG];
    const r = await run(argv, { timeoutMs: 60 * 60_000 }, false);
    if (r.code !== 0) throw new Error(`building the image failed:\n${show(argv, r)}`);
    ref = r.stdout.trim().split('\n').pop() ?? '';
    buildMs = r.ms;
    log(`image ${ref} built by scripts/image-build.sh in ${(r.ms / 1000).toFixed(1)} s`);
  }
  const argv = ['bash', TEST_CLUSTER, 'load-image', ref];
  const r = await run(argv, { timeoutMs: 600_000 }, false);
  if (r.code !== 0) throw new Error(`loading the image into the cluster failed:\n${show(argv, r)}`);
  log(`image ${ref} loaded into the cluster's containerd in ${(r.ms / 1000).toFixed(1)} s`);
  return { ref, buildMs, loadMs: r.ms };
}

/** Splits an image reference into the name and the tag (or digest) a kustomize `images:` entry takes. */
export function splitImage(ref: string): { name: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { name: ref.slice(0, at), digest: ref.slice(at + 1) };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function inPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d !== '' && isExecutable(path.join(d, cmd)));
}
