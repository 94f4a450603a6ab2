export const USAGE = `Usage: cni-node <command> [options]

Commands:
  install     install the named plugins / configs / manifests, in the given order
  uninstall   remove them, in reverse of the given order
  apply       converge: --plugins=<Desired[:Current]> (likewise --configs, --manifests);
              without :Current, what cni-node itself installed is the current state
  list        plugins available in the plugins dir, one name per line
  check       report whether the node's CNI configuration would work for a runtime
  run         keep the node converged: reconcile at start and on every change
  watch       kube-watch compatible watcher (cni-node watch object|file|version …)
  version     print the version

Options:
  --plugins=a,b                  plugin binaries (image plugins dir → node plugins dir)
  --configs=x.conf,y.conflist    config templates (configs dir → node configs dir)
  --manifests=m.yaml             Kubernetes manifests (created, deleted, converged)
  --pause                        after the action, wait for SIGTERM or SIGINT, then exit 0
  --dry-run                      print what would change; change nothing
  --wait=<duration>              wait this long (e.g. 60s) for pointer targets to appear
  --log-format=text|json         output format (default text)
  --kubeconfig=<path>            kubeconfig for manifests (default: in-cluster, $KUBECONFIG)
  --plugins-dir, --host-plugins-dir, --configs-dir, --host-configs-dir, --manifests-dir
                                 override directories (also CNI_NODE_PLUGINS_DIR, …)

Options of run:
  --config-map=<namespace>/<name>  desired lists from this ConfigMap (keys plugins, configs, manifests)
  --listen=<host>:<port>           serve /healthz, /readyz and /metrics
  --uninstall-on-exit              remove everything cni-node installed when stopped
  --kubeconfig-out=<path>          write a kubeconfig for plugins from the service account

Exit codes: 0 success, 1 the job failed (the message says why), 2 bad command line.
`;
