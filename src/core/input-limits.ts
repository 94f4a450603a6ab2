/**
 * The size cap of every kind of file cni-node reads (see sys/read.ts): a file over its
 * cap is refused with a one-line error before it is read, so a huge or endless
 * input (a 2 GiB sparse file, /dev/zero behind a link) cannot exhaust memory.
 * Each cap is far above what a real input needs.
 */
const KiB = 1024;
const MiB = 1024 * KiB;

export const INPUT_LIMITS = {
  /** cni-node's record: a few hundred bytes per item. */
  record: 16 * MiB,
  /** cni-node's lock: one line naming the holder. */
  lock: 4 * KiB,
  /** A configuration template (a CNI config is a few KiB). */
  template: 1 * MiB,
  /** A node file a template points to. */
  pointerTarget: 1 * MiB,
  /** A manifest file (large CRD bundles are a few MiB). */
  manifest: 16 * MiB,
  /** A plugin binary (copied by the kernel, never held in memory). */
  plugin: 1024 * MiB,
  /** A service account token. */
  token: 64 * KiB,
  /** A CA bundle, client certificate or key. */
  certificate: 1 * MiB,
  /** A kubeconfig file. */
  kubeconfig: 4 * MiB,
  /** The service account's namespace file. */
  namespace: 4 * KiB,
  /** A file `kube-watch file` follows. */
  watchedFile: 16 * MiB,
} as const;
