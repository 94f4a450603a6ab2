#!/usr/bin/env bash
# The real Kubernetes the tests run against: a real kube-apiserver for the e2e
# tests, and a real single-node cluster for the cluster suite (test/cluster).
#
#   scripts/test-cluster.sh provision [--from-tree DIR]
#       Build Kubernetes 1.20.2 (kube-apiserver, kube-controller-manager,
#       kube-scheduler, kubelet, kube-proxy, kubectl) and the pause binary once per
#       machine from Debian's source package, in ONE make, and cache them in
#       /var/cache/cni-node-test/kubernetes-1.20.2/ (about 6 min cold on 2 cores).
#       --from-tree DIR places the outputs of a tree already built that way
#       (DIR/_output/local/bin/linux/ARCH) instead of building.
#   scripts/test-cluster.sh path            the cached kube-apiserver's path
#   scripts/test-cluster.sh bin NAME        the cached binary NAME's path (kubectl, kubelet, …)
#   scripts/test-cluster.sh start [--owner PID]
#       Start the single-node cluster and print the path of an admin kubeconfig
#       (last line of stdout; progress goes to stderr). Cold: about 30-40 s.
#   scripts/test-cluster.sh load-image REF…  copy podman images into the cluster's containerd
#   scripts/test-cluster.sh status          "running" (exit 0) or "stopped" (exit 3)
#   scripts/test-cluster.sh cleanup         remove what a run that is gone left behind (a
#                                           cluster whose owner is in use is refused)
#   scripts/test-cluster.sh stop            stop it and give the host back exactly as it was
#
# There is no container registry or upstream download here, so everything is
# built from Debian's `kubernetes` source package (see /work/shared/RECIPES.md,
# "A real single-node Kubernetes cluster"); containerd and runc are Debian's.
#
# How the cluster stays off the host:
#  - Network: every cluster process runs in the network namespace `cnk8s`, whose
#    only link is a veth pair to a second namespace `cnk8s-peer` (the node's
#    "uplink", its default route). The node IP is 10.99.0.2. Nothing is configured
#    on the host's interfaces; kube-proxy's and the CNI plugins' iptables rules live
#    in `cnk8s`; no traffic leaves it. The admin kubeconfig reaches the API server
#    through a forwarder: 127.0.0.1:<random port> on the host → a unix socket →
#    10.99.0.2:6443 inside the namespace.
#  - Mounts: one private mount namespace, created by a holder process, is shared by
#    every cluster process. In it the node's /etc/cni/net.d, /opt/cni, /var/lib/cni,
#    /var/log and /run/containerd are private directories of the cluster's state
#    dir, /sys is a sysfs of the cluster's network namespace, and the /proc/sys files
#    the kubelet writes are bind-mounted private copies, so no host sysctl changes.
#    Kubelet, containerd and pod mounts never appear on the host.
#  - What cannot be private (cgroups are global; `ip netns add` makes two bind
#    mounts in /run/netns; a missing mount point must be created) is recorded and
#    undone by `stop`.
#  - One cluster per machine (fixed namespace names, the kubepods cgroup): `start`
#    holds a lock (/run/lock/cni-node-test-cluster.lock) for the cluster's lifetime.
#    A cluster whose owner (the process that started it; --owner) is gone is a
#    leftover: the next `start` stops it first, as it cleans up the leftovers of a
#    run killed half-way. A cluster whose owner still runs is refused.
set -euo pipefail

KUBE_VERSION=1.20.2
PAUSE_VERSION=3.4
CACHE_DIR=${CNI_NODE_TEST_CACHE:-/var/cache/cni-node-test}
KUBE_DIR=$CACHE_DIR/kubernetes-$KUBE_VERSION
# Where kube-apiserver was cached before the other binaries joined it; kept as a
# symlink so that checkouts which still look there keep working.
LEGACY_APISERVER=$CACHE_DIR/kube-apiserver-$KUBE_VERSION
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
SELF=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPTS=$(dirname "$SELF")

# The cluster. Fixed names: one cluster per machine (see the lock above).
NETNS=cnk8s
PEER_NETNS=cnk8s-peer
NODE_IF=k8snode0
PEER_IF=k8speer0
NODE_IP=10.99.0.2
PEER_IP=10.99.0.1
NODE_NAME=cnk8s-node
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
CLUSTER_CIDR=10.244.0.0/16
POD_SUBNET=10.244.0.0/24
POD_BRIDGE=cnk8s0
STATE_DIR=/var/lib/cni-node-test-cluster
LOCK_FILE=/run/lock/cni-node-test-cluster.lock
SOCK=$STATE_DIR/containerd/containerd.sock
PAUSE_IMAGE=localhost/cni-node-test/pause:$PAUSE_VERSION
# Debian's busybox-static (1.35), named as the public image of the same version so
# that commands written for any cluster (e.g. `kubectl debug node/… --image=busybox:1.35`)
# run here unchanged.
BUSYBOX_IMAGE=docker.io/library/busybox:1.35
# The primary CNI: a bridge conflist of the test's own. It is named like Calico's
# file because deploy/ points Multus at __10-calico.conflist__, and the suite
# deploys deploy/ unchanged but for the image.
PRIMARY_CONFLIST=10-calico.conflist
# Node paths the cluster writes that must not be the host's: in the cluster's
# mount namespace each is a private directory under $STATE_DIR/node.
PRIVATE_PATHS=(/etc/cni/net.d /opt/cni /var/lib/cni /var/log /run/containerd)
# /proc/sys files the kubelet writes (protectKernelDefaults: false): bind-mounted
# private copies in the cluster's mount namespace. kube-proxy is told to leave the
# global conntrack settings alone; everything else the cluster writes under
# /proc/sys/net is per network namespace.
PRIVATE_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
# The plugins of the node's primary CNI (what a node has before cni-node).
PRIMARY_PLUGINS=(bridge host-local loopback portmap)
DEBIAN_PLUGINS=/usr/lib/cni

log() { echo "test-cluster.sh: $*" >&2; }
die() { echo "test-cluster.sh: error: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

usage() {
  sed -n '2,/^set -euo/p' "$SELF" | sed -n '/^#   scripts/,/^# There is/p' | sed 's/^# \{0,1\}//' | head -n -1 >&2
  exit 2
}

need_root() { [ "$(id -u)" = 0 ] || die "$1 must run as root; try: sudo $0 $1"; }

# ---------------------------------------------------------------------------
# provision

bin_runs() {
  case "$(basename "$1")" in
    kubectl) "$1" version --client >/dev/null 2>&1 ;;
    *) "$1" --version >/dev/null 2>&1 ;;
  esac
}

bins_work() {
  local b
  for b in "${KUBE_BINS[@]}"; do
    [ -x "$KUBE_DIR/$b" ] || return 1
  done
  [ -x "$KUBE_DIR/pause" ] || return 1
  "$KUBE_DIR/kube-apiserver" --version >/dev/null 2>&1 && "$KUBE_DIR/kubelet" --version >/dev/null 2>&1
}

# Places the binaries of a built tree into the cache: a new directory, filled and
# checked, then renamed into place, so a reader sees all of them or none.
place_cache() {
  local tree=$1 out
  out="$tree/_output/local/bin/linux/$(go env GOARCH 2>/dev/null || echo amd64)"
  local b
  for b in "${KUBE_BINS[@]}"; do
    [ -x "$out/$b" ] || die "$out/$b missing: the tree is not built (make WHAT=\"cmd/${KUBE_BINS[*]}\")"
  done
  [ -f "$tree/build/pause/linux/pause.c" ] || die "$tree/build/pause/linux/pause.c missing"
  local new
  new=$(mktemp -d "$CACHE_DIR/.kubernetes-$KUBE_VERSION.XXXXXX")
  for b in "${KUBE_BINS[@]}"; do
    cp "$out/$b" "$new/$b"
    chmod 0755 "$new/$b"
    bin_runs "$new/$b" || { rm -rf "$new"; die "$b from $out does not run"; }
  done
  # The pause container, as build/pause/Makefile builds it (static, no image needed).
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-cni-node-test" -o "$new/pause" "$tree/build/pause/linux/pause.c" \
    || { rm -rf "$new"; die "gcc -static pause.c failed (needs gcc and libc6-dev: sudo scripts/provision.sh)"; }
  "$new/pause" -v >/dev/null 2>&1 || { rm -rf "$new"; die "the pause binary does not run"; }
  {
    echo "kubernetes $KUBE_VERSION from Debian's source package $(basename "$tree")"
    echo "built with $(go version 2>/dev/null || echo 'go (unknown)')"
    echo "placed $(date -u +%FT%TZ)"
  } >"$new/BUILD-INFO"
  chmod 0755 "$new"
  rm -rf "$KUBE_DIR.old"
  [ -e "$KUBE_DIR" ] && mv -T "$KUBE_DIR" "$KUBE_DIR.old"
  mv -T "$new" "$KUBE_DIR"
  rm -rf "$KUBE_DIR.old"
  # The old single-binary path, now a link into the versioned directory.
  ln -sfn "kubernetes-$KUBE_VERSION/kube-apiserver" "$LEGACY_APISERVER.tmp"
  mv -Tf "$LEGACY_APISERVER.tmp" "$LEGACY_APISERVER"
}

cmd_provision() {
  need_root provision
  local from_tree=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --from-tree) from_tree=${2:?--from-tree needs a directory}; shift 2 ;;
      *) usage ;;
    esac
  done
  mkdir -p "$CACHE_DIR"
  # Two CI jobs (or a developer and a test run) provisioning at once would
  # otherwise build twice into the same place.
  exec 8>"$CACHE_DIR/.provision.lock"
  if ! flock -n 8; then
    log "another provision is running; waiting for it"
    flock 8
  fi

  if bins_work; then
    log "Kubernetes $KUBE_VERSION already cached in $KUBE_DIR; nothing to do"
    [ -L "$LEGACY_APISERVER" ] || { ln -sfn "kubernetes-$KUBE_VERSION/kube-apiserver" "$LEGACY_APISERVER.tmp"; mv -Tf "$LEGACY_APISERVER.tmp" "$LEGACY_APISERVER"; }
    return 0
  fi
  if [ -n "$from_tree" ]; then
    place_cache "$(readlink -f "$from_tree")"
    log "placed the binaries of $from_tree in $KUBE_DIR"
    return 0
  fi

  local tool
  for tool in apt-get go make rsync tar gcc; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found; run: sudo scripts/provision.sh"
  done
  [ -d "$REFLECT2_SRC" ] || die "$REFLECT2_SRC missing (golang-github-modern-go-reflect2-dev); run: sudo scripts/provision.sh"

  export DEBIAN_FRONTEND=noninteractive
  local started=$SECONDS
  # The downloads (34 MB) are kept so a failed build can be retried offline;
  # the unpacked tree (several GB with build output) is not.
  local dl="$CACHE_DIR/downloads"
  mkdir -p "$dl"
  local orig
  orig=$(find "$dl" -maxdepth 1 -name "kubernetes_*really${KUBE_VERSION}.orig.tar.gz" -print -quit)
  if [ -z "$orig" ]; then
    log "downloading Debian source package 'kubernetes'"
    (cd "$dl" && apt-get source --download-only kubernetes </dev/null) \
      || die "apt-get source failed; is deb-src enabled? run: sudo scripts/provision.sh (then apt-get update)"
    orig=$(find "$dl" -maxdepth 1 -name "kubernetes_*really${KUBE_VERSION}.orig.tar.gz" -print -quit)
    [ -n "$orig" ] || die "Debian's kubernetes source is not version $KUBE_VERSION: $(ls "$dl")"
  else
    log "using downloaded $(basename "$orig")"
  fi

  local build
  build=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
  local buildlog="$CACHE_DIR/build-$KUBE_VERSION.log"
  # Leave nothing large behind on failure either; the log stays for inspection.
  # shellcheck disable=SC2064 # expand now: $build is local to this function
  trap "rm -rf '$build'" EXIT

  log "unpacking $(basename "$orig")"
  tar -C "$build" -xzf "$orig"
  local tree="$build/kubernetes-$KUBE_VERSION"
  [ -d "$tree/cmd/kube-apiserver" ] || die "unexpected source layout in $orig"

  # The vendored reflect2 1.0.1 makes binaries built with Go >= 1.18 crash
  # within seconds (SIGSEGV in runtime.mapiterinit); 1.0.2 from Debian is
  # API-compatible. GOPATH mode (forced by hack/lib/init.sh) ignores
  # vendor/modules.txt, so the swap needs no module bookkeeping.
  log "replacing vendored reflect2 with $REFLECT2_SRC"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -a "$REFLECT2_SRC" "$tree/vendor/github.com/modern-go/reflect2"

  # As debian/rules does: a GOPATH in which the tree is k8s.io/kubernetes.
  mkdir -p "$build/gopath/src/k8s.io"
  ln -s "$tree" "$build/gopath/src/k8s.io/kubernetes"

  local what=""
  local b
  for b in "${KUBE_BINS[@]}"; do what="$what cmd/$b"; done
  log "building${what} $KUBE_VERSION in one make with $(go version | awk '{print $3}') (about 6 minutes on 2 cores, 2 GB RAM); log: $buildlog"
  if ! (
    cd "$build/gopath/src/k8s.io/kubernetes"
    export GOPATH="$build/gopath" HOME="$build/home" CGO_ENABLED=0 GOFLAGS=
    mkdir -p "$HOME"
    make WHAT="${what# }" GOLDFLAGS="-s -w"
  ) </dev/null >"$buildlog" 2>&1; then
    echo "test-cluster.sh: build failed; last lines of $buildlog:" >&2
    tail -n 40 "$buildlog" >&2
    exit 1
  fi

  place_cache "$tree"
  log "removing build tree"
  rm -rf "$build"
  trap - EXIT
  log "done in $((SECONDS - started)) s: $KUBE_DIR ($("$KUBE_DIR/kube-apiserver" --version))"
}

cmd_path() {
  local f=$KUBE_DIR/kube-apiserver
  if [ -x "$f" ]; then
    echo "$f"
  else
    echo "test-cluster.sh: Kubernetes $KUBE_VERSION is not provisioned ($f missing)." >&2
    echo "  Run: sudo scripts/provision.sh && sudo scripts/test-cluster.sh provision" >&2
    exit 1
  fi
}

cmd_bin() {
  local name=${1:-}
  case " ${KUBE_BINS[*]} pause " in *" $name "*) ;; *) die "bin: one of: ${KUBE_BINS[*]} pause" ;; esac
  [ -x "$KUBE_DIR/$name" ] || die "$KUBE_DIR/$name missing; run: sudo scripts/test-cluster.sh provision"
  echo "$KUBE_DIR/$name"
}

# ---------------------------------------------------------------------------
# Processes, recorded by PID and start time so that a reused PID is never killed.

proc_start() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

record_pid() { # name pid
  mkdir -p "$STATE_DIR/pids"
  echo "$2 $(proc_start "$2")" >"$STATE_DIR/pids/$1"
}

# The recorded PID of `name` if that very process still runs.
live_pid() {
  local f=$STATE_DIR/pids/$1 pid start
  [ -f "$f" ] || return 1
  read -r pid start <"$f" || return 1
  [ -n "$pid" ] && [ "$(proc_start "$pid")" = "$start" ] && echo "$pid"
}

holder_pid() { live_pid holder; }

# Runs a command in the cluster's network and mount namespaces.
in_cluster() {
  local holder
  holder=$(holder_pid) || die "the cluster is not running (no holder process)"
  nsenter -t "$holder" --net --mount --wd=/ -- "$@"
}

# Starts a cluster daemon in the cluster's namespaces, detached from the caller:
# its own session, stdin from /dev/null, output to its log (never the caller's
# stdout, so `start` returns when it is done), the lock fd closed.
start_daemon() { # name bin args…
  local name=$1; shift
  local holder
  holder=$(holder_pid) || die "no holder process"
  setsid nsenter -t "$holder" --net --mount --wd="$STATE_DIR" -- "$@" \
    </dev/null >>"$STATE_DIR/logs/$name.log" 2>&1 9>&- &
  record_pid "$name" $!
}

daemon_alive() { live_pid "$1" >/dev/null; }

wait_for() { # seconds description command…
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.25
  done
}

fail_start() {
  local name=$1
  log "$name failed; last lines of $STATE_DIR/logs/$name.log:"
  tail -n 30 "$STATE_DIR/logs/$name.log" >&2 2>/dev/null || true
  exit 1
}

# ---------------------------------------------------------------------------
# Test images, made as OCI archives without a registry, a builder or podman.

# oci_archive NAME ROOTFS OUT CMD_JSON
oci_archive() {
  local name=$1 rootfs=$2 out=$3 cmd=$4
  local w
  w=$(mktemp -d "$STATE_DIR/tmp/oci.XXXXXX")
  mkdir -p "$w/blobs/sha256"
  tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$w/layer.tar" .
  local layer_sha layer_size config config_sha config_size manifest manifest_sha manifest_size
  layer_sha=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$w/layer.tar")
  mv "$w/layer.tar" "$w/blobs/sha256/$layer_sha"
  config=$(jq -cn --arg diff "sha256:$layer_sha" --argjson cmd "$cmd" \
    '{architecture: "amd64", os: "linux", config: {Cmd: $cmd, Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}, rootfs: {type: "layers", diff_ids: [$diff]}}')
  config_sha=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  config_size=$(printf '%s' "$config" | wc -c)
  printf '%s' "$config" >"$w/blobs/sha256/$config_sha"
  manifest=$(jq -cn --arg c "sha256:$config_sha" --argjson cs "$config_size" --arg l "sha256:$layer_sha" --argjson ls "$layer_size" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}')
  manifest_sha=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
  manifest_size=$(printf '%s' "$manifest" | wc -c)
  printf '%s' "$manifest" >"$w/blobs/sha256/$manifest_sha"
  jq -cn --arg m "sha256:$manifest_sha" --argjson ms "$manifest_size" --arg name "$name" \
    '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
      platform: {architecture: "amd64", os: "linux"},
      annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": ($name | sub(".*:"; ""))}}]}' >"$w/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci-layout"
  tar -C "$w" -cf "$out" oci-layout index.json blobs
  rm -rf "$w"
}

make_test_images() {
  local root=$STATE_DIR/tmp/rootfs-pause
  mkdir -p "$root"
  install -m 0755 "$KUBE_DIR/pause" "$root/pause"
  oci_archive "$PAUSE_IMAGE" "$root" "$STATE_DIR/images/pause.tar" '["/pause"]'

  root=$STATE_DIR/tmp/rootfs-busybox
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
  chmod 1777 "$root/tmp"
  install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
  local applet
  # Every applet as a link in /bin (the image's PATH covers it).
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
  oci_archive "$BUSYBOX_IMAGE" "$root" "$STATE_DIR/images/busybox.tar" '["sh"]'
  rm -rf "$STATE_DIR/tmp/rootfs-pause" "$STATE_DIR/tmp/rootfs-busybox"
}

# ---------------------------------------------------------------------------
# Certificates: one CA; client certificates name users and groups (O=) the way
# kubeadm's do; the API server's serving certificate covers every address it is
# reached at.

mkcert() { # name CN O(or "") kind(client|server) [SANs]
  local name=$1 cn=$2 org=$3 kind=$4 sans=${5:-}
  local pki=$STATE_DIR/pki subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ "$kind" = server ]; then echo "extendedKeyUsage=serverAuth"; else echo "extendedKeyUsage=clientAuth"; fi
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl req -new -key "$pki/$name.key" -subj "$subj" 2>/dev/null \
    | openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 7 \
        -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.ext"
}

make_pki() {
  local pki=$STATE_DIR/pki
  mkdir -p "$pki"
  chmod 0700 "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=cni-node-test-ca" -days 7 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/ca.crt" 2>/dev/null
  mkcert apiserver kube-apiserver "" server \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$NODE_IP,IP:$SERVICE_IP,IP:127.0.0.1"
  mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters client
  mkcert admin cni-node-test-admin system:masters client
  mkcert controller-manager system:kube-controller-manager "" client
  mkcert scheduler system:kube-scheduler "" client
  mkcert kubelet "system:node:$NODE_NAME" system:nodes client
  mkcert kube-proxy system:kube-proxy "" client
  # Service account tokens: RSA, the algorithm every client expects (RS256).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() { # out server cert-name
  local out=$1 server=$2 name=$3 pki=$STATE_DIR/pki
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cnk8s
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$pki/$name.crt")
    client-key-data: $(base64 -w0 "$pki/$name.key")
contexts:
- name: $name@cnk8s
  context:
    cluster: cnk8s
    user: $name
current-context: $name@cnk8s
EOF
  chmod 0600 "$out"
}

# ---------------------------------------------------------------------------
# Configuration files

write_configs() {
  local c=$STATE_DIR/config pki=$STATE_DIR/pki
  mkdir -p "$c"
  local inside=https://$NODE_IP:6443
  kubeconfig "$c/controller-manager.kubeconfig" "$inside" controller-manager
  kubeconfig "$c/scheduler.kubeconfig" "$inside" scheduler
  kubeconfig "$c/kubelet.kubeconfig" "$inside" kubelet
  kubeconfig "$c/kube-proxy.kubeconfig" "$inside" kube-proxy
  kubeconfig "$c/admin-inside.kubeconfig" "$inside" admin

  cat >"$c/containerd.toml" <<EOF
version = 2
root = "$STATE_DIR/containerd/root"
state = "$STATE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: without this, every sandbox fails with
  # "failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  # The node's CNI directories, as on any node (private to the cluster's mount
  # namespace): what cni-node writes is what the runtime uses.
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
EOF

  cat >"$c/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
clusterDomain: cluster.local
serializeImagePulls: false
# A test machine's disk and memory are shared: no evictions, no image GC.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Projected, pod-bound service account tokens, as in every current Kubernetes
# (1.20 has them behind this gate): what cni-node's --kubeconfig-out reads.
featureGates:
  BoundServiceAccountTokenVolume: true
EOF

  cat >"$c/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $c/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the kernel's conntrack table size and timeouts alone. They are global
# (or would be written to /sys/module), i.e. the host's.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

write_node_files() {
  local node=$STATE_DIR/node
  mkdir -p "$node/etc/cni/net.d" "$node/opt/cni/bin" "$node/var/lib/cni" "$node/var/log" "$node/run/containerd"
  local p
  for p in "${PRIMARY_PLUGINS[@]}"; do
    [ -x "$DEBIAN_PLUGINS/$p" ] || die "$DEBIAN_PLUGINS/$p missing (containernetworking-plugins); run: sudo scripts/provision.sh"
    install -m 0755 "$DEBIAN_PLUGINS/$p" "$node/opt/cni/bin/$p"
  done
  cat >"$node/etc/cni/net.d/$PRIMARY_CONFLIST" <<EOF
{
  "cniVersion": "0.3.1",
  "name": "cnk8s-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$POD_SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    }
  ]
}
EOF
  chmod 0644 "$node/etc/cni/net.d/$PRIMARY_CONFLIST"
}

# ---------------------------------------------------------------------------
# The holder: creates the cluster's private mount namespace (it is started by
# `unshare --mount --propagation private` in the cluster's network namespace),
# mounts the private views, and then sleeps, holding the namespace and the lock.

cmd_holder() {
  set -euo pipefail
  # A sysfs of this network namespace (the kubelet and cAdvisor read the node's
  # interfaces there); the cgroup mounts are moved over from the old /sys.
  local cg=$STATE_DIR/tmp/cgroup-move
  mkdir -p "$cg"
  mount --rbind /sys/fs/cgroup "$cg"
  mount -t sysfs sysfs /sys
  mount --move "$cg" /sys/fs/cgroup
  local p key file
  for p in "${PRIVATE_PATHS[@]}"; do
    mount --bind "$STATE_DIR/node$p" "$p"
  done
  mkdir -p "$STATE_DIR/sysctl"
  for key in "${PRIVATE_SYSCTLS[@]}"; do
    file=$STATE_DIR/sysctl/${key//\//.}
    cat "/proc/sys/$key" >"$file"
    mount --bind "$file" "/proc/sys/$key"
  done
  echo ok >"$STATE_DIR/holder.ready"
  exec sleep infinity
}

# Host paths that must exist as mount points; those created here are recorded and
# removed again by stop.
ensure_mountpoints() {
  local p part acc
  : >>"$STATE_DIR/created-dirs"
  for p in "${PRIVATE_PATHS[@]}"; do
    acc=""
    IFS=/ read -ra parts <<<"${p#/}"
    for part in "${parts[@]}"; do
      acc="$acc/$part"
      if [ ! -e "$acc" ]; then
        mkdir -m 0755 "$acc"
        echo "$acc" >>"$STATE_DIR/created-dirs"
      fi
    done
    [ -d "$p" ] || die "$p exists and is not a directory"
  done
}

setup_netns() {
  ip netns add "$NETNS"
  ip netns add "$PEER_NETNS"
  ip -n "$NETNS" link add "$NODE_IF" type veth peer name "$PEER_IF" netns "$PEER_NETNS"
  ip -n "$NETNS" addr add "$NODE_IP/24" dev "$NODE_IF"
  ip -n "$PEER_NETNS" addr add "$PEER_IP/24" dev "$PEER_IF"
  ip -n "$NETNS" link set lo up
  ip -n "$PEER_NETNS" link set lo up
  ip -n "$NETNS" link set "$NODE_IF" up
  ip -n "$PEER_NETNS" link set "$PEER_IF" up
  ip -n "$NETNS" route add default via "$PEER_IP"
  # Per network namespace: the node forwards between its pods' bridge and itself.
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
}

# ---------------------------------------------------------------------------
# The machine's one cluster: the lock, and what a run that is gone left behind.

# Takes the cluster lock on fd 9. A cluster whose owner is gone is a leftover and is
# stopped first; one whose owner still runs is refused. Then cleans up whatever a
# run killed half-way left (it holds no lock: its holder is gone).
take_lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>>"$LOCK_FILE"
  if ! flock -n 9; then
    local prev_owner="" prev_start=""
    [ -f "$STATE_DIR/owner" ] && read -r prev_owner prev_start <"$STATE_DIR/owner"
    if [ -n "$prev_owner" ] && [ "$(proc_start "$prev_owner")" = "$prev_start" ]; then
      die "the machine's test cluster is in use by PID $prev_owner ($(tr '\0' ' ' <"/proc/$prev_owner/cmdline" | cut -c1-120)); stop it with: sudo $0 stop"
    fi
    log "a cluster whose owner is gone (PID ${prev_owner:-unknown}) is still running: stopping it first"
    do_stop
    flock -w 60 9 || die "the cluster lock $LOCK_FILE is still held after stopping the old cluster"
  fi
  do_stop quiet
}

cmd_cleanup() {
  need_root cleanup
  take_lock
}

# ---------------------------------------------------------------------------
# start

cmd_start() {
  need_root start
  local owner=$PPID
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner) owner=${2:?--owner needs a PID}; shift 2 ;;
      *) usage ;;
    esac
  done
  [ -d "/proc/$owner" ] || die "--owner $owner: no such process"
  local tool
  for tool in containerd runc ctr etcd openssl ip nsenter unshare setsid flock iptables conntrack busybox jq node base64; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found; run: sudo scripts/provision.sh"
  done
  bins_work || die "Kubernetes $KUBE_VERSION is not provisioned in $KUBE_DIR; run: sudo scripts/test-cluster.sh provision"
  local t0
  t0=$(now_ms)

  take_lock
  mkdir -p "$STATE_DIR"/{logs,pids,tmp,images}
  chmod 0700 "$STATE_DIR"
  echo "$owner $(proc_start "$owner")" >"$STATE_DIR/owner"
  log "starting a single-node Kubernetes $KUBE_VERSION cluster in network namespace $NETNS (state: $STATE_DIR)"
  # Anything failing from here leaves a half-started cluster: take it down again.
  trap 'rc=$?; if [ $rc != 0 ]; then log "start failed; stopping what was started"; do_stop quiet || true; fi' EXIT

  setup_netns
  make_pki
  write_configs
  write_node_files
  make_test_images
  ensure_mountpoints

  setsid unshare --mount --propagation private -- nsenter --net="/run/netns/$NETNS" -- \
    bash "$SELF" __holder </dev/null >"$STATE_DIR/logs/holder.log" 2>&1 &
  record_pid holder $!
  wait_for 15 "the holder's mounts" test -f "$STATE_DIR/holder.ready" || fail_start holder
  readlink "/proc/$(holder_pid)/ns/mnt" >"$STATE_DIR/mntns"
  readlink "/proc/$(holder_pid)/ns/net" >"$STATE_DIR/netns"

  local kb=$KUBE_DIR c=$STATE_DIR/config pki=$STATE_DIR/pki
  start_daemon etcd etcd --name cnk8s --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster cnk8s=http://127.0.0.1:2380 --listen-metrics-urls= --log-level warn
  start_daemon containerd containerd --config "$c/containerd.toml"

  wait_for 30 etcd in_cluster bash -c 'exec 3<>/dev/tcp/127.0.0.1/2379' || fail_start etcd
  start_daemon kube-apiserver "$kb/kube-apiserver" \
    --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 --insecure-port=0 \
    --etcd-servers=http://127.0.0.1:2379 \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --feature-gates=BoundServiceAccountTokenVolume=true \
    --profiling=false

  # The admin kubeconfig that the host uses goes through the forwarder.
  start_daemon forward-inside node "$SCRIPTS/test-cluster-forward.mjs" \
    "unix:$STATE_DIR/apiserver.sock" "tcp:$NODE_IP:6443" "$STATE_DIR/forward-inside.ready"
  wait_for 10 "the forwarder in $NETNS" test -S "$STATE_DIR/apiserver.sock" || fail_start forward-inside
  setsid node "$SCRIPTS/test-cluster-forward.mjs" "tcp:127.0.0.1:0" "unix:$STATE_DIR/apiserver.sock" "$STATE_DIR/forward-host.ready" \
    </dev/null >>"$STATE_DIR/logs/forward-host.log" 2>&1 9>&- &
  record_pid forward-host $!
  wait_for 10 "the host forwarder" test -s "$STATE_DIR/forward-host.ready" || fail_start forward-host
  local port
  port=$(cat "$STATE_DIR/forward-host.ready")
  kubeconfig "$STATE_DIR/kubeconfig" "https://127.0.0.1:$port" admin
  local kc=("$kb/kubectl" --kubeconfig "$STATE_DIR/kubeconfig")

  wait_for 60 "kube-apiserver /readyz" "${kc[@]}" get --raw /readyz || fail_start kube-apiserver
  local t_api
  t_api=$(now_ms)
  start_daemon kube-controller-manager "$kb/kube-controller-manager" \
    --kubeconfig="$c/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$c/controller-manager.kubeconfig" --authorization-kubeconfig="$c/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" --use-service-account-credentials=true \
    --feature-gates=BoundServiceAccountTokenVolume=true \
    --profiling=false
  start_daemon kube-scheduler "$kb/kube-scheduler" \
    --kubeconfig="$c/scheduler.kubeconfig" \
    --authentication-kubeconfig="$c/scheduler.kubeconfig" --authorization-kubeconfig="$c/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --port=0 --leader-elect=false --profiling=false

  wait_for 30 containerd in_cluster ctr -a "$SOCK" version || fail_start containerd
  in_cluster ctr -a "$SOCK" -n k8s.io images import "$STATE_DIR/images/pause.tar" >/dev/null \
    || die "importing the pause image failed"
  in_cluster ctr -a "$SOCK" -n k8s.io images import "$STATE_DIR/images/busybox.tar" >/dev/null \
    || die "importing the busybox image failed"

  start_daemon kubelet "$kb/kubelet" \
    --config="$c/kubelet.yaml" --kubeconfig="$c/kubelet.kubeconfig" \
    --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
    --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" \
    --root-dir="$STATE_DIR/kubelet" --cert-dir="$STATE_DIR/kubelet/pki" \
    --pod-infra-container-image="$PAUSE_IMAGE" --v=1
  start_daemon kube-proxy "$kb/kube-proxy" --config="$c/kube-proxy.yaml"

  wait_for 90 "node $NODE_NAME Ready" node_ready "${kc[@]}" || fail_start kubelet
  wait_for 60 "the default service account" "${kc[@]}" -n default get serviceaccount default || fail_start kube-controller-manager
  wait_for 60 "the kubernetes Service through kube-proxy" in_cluster bash -c "exec 3<>/dev/tcp/$SERVICE_IP/443" || fail_start kube-proxy
  local name
  for name in etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy forward-inside forward-host; do
    daemon_alive "$name" || fail_start "$name"
  done
  trap - EXIT
  local t1
  t1=$(now_ms)
  {
    echo "started_ms=$((t1 - t0))"
    echo "apiserver_ready_ms=$((t_api - t0))"
    echo "node=$NODE_NAME"
    echo "busybox_image=$BUSYBOX_IMAGE"
    echo "primary_conflist=$PRIMARY_CONFLIST"
  } >"$STATE_DIR/info"
  log "cluster up in $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s (API server ready after $(( (t_api - t0) / 1000 )) s); node $NODE_NAME Ready"
  log "use: KUBECONFIG=$STATE_DIR/kubeconfig $kb/kubectl get nodes"
  echo "$STATE_DIR/kubeconfig"
}

node_ready() {
  local status
  status=$("$@" get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
  [ "$status" = True ]
}

# ---------------------------------------------------------------------------
# load-image

cmd_load_image() {
  need_root load-image
  [ $# -gt 0 ] || die "load-image: name at least one podman image"
  holder_pid >/dev/null || die "the cluster is not running; start it first"
  local ref
  for ref in "$@"; do
    podman --runtime runc image exists "$ref" || die "podman has no image $ref"
    local t
    t=$(now_ms)
    podman --runtime runc save --format docker-archive "$ref" \
      | in_cluster ctr -a "$SOCK" -n k8s.io images import - >/dev/null \
      || die "importing $ref into the cluster's containerd failed"
    log "loaded $ref into the cluster in $(( $(now_ms) - t )) ms"
  done
}

# ---------------------------------------------------------------------------
# stop: by PID (verified by start time), then everything left in the cluster's
# namespaces and cgroups, then the namespaces, mount points and the state dir.

# PIDs (one a line) of processes in the cluster: in its mount or network namespace
# (daemons, shims, hostNetwork pods), in a kubepods cgroup (pods), or the
# host-side forwarder (by its script and the state dir on its command line).
cluster_pids() {
  local mntns="" netns="" pid
  [ -f "$STATE_DIR/mntns" ] && mntns=$(cat "$STATE_DIR/mntns")
  [ -f "$STATE_DIR/netns" ] && netns=$(cat "$STATE_DIR/netns")
  if [ -z "$netns" ] && [ -e "/run/netns/$NETNS" ]; then
    netns="net:[$(stat -L -c %i "/run/netns/$NETNS")]"
  fi
  {
    # -lname matches the link's target, e.g. mnt:[4026532301]; [ and ] escaped.
    if [ -n "$mntns" ]; then
      find /proc/[0-9]*/ns -maxdepth 1 -name mnt -lname "$(sed 's/[][]/\\&/g' <<<"$mntns")" 2>/dev/null | cut -d/ -f3
    fi
    if [ -n "$netns" ]; then
      find /proc/[0-9]*/ns -maxdepth 1 -name net -lname "$(sed 's/[][]/\\&/g' <<<"$netns")" 2>/dev/null | cut -d/ -f3
    fi
    grep -l ':/kubepods' /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3
    for pid in $(grep -la 'test-cluster-forward\.mjs' /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
      grep -qaF "$STATE_DIR/" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
    done
    true
  } | sort -un | { grep -vx "$$" || true; }
}

# SIGTERM to the named daemons at once; SIGKILL to those still there after
# `grace` seconds.
stop_pids() { # grace name…
  local grace=$1; shift
  local name pid pids=()
  for name in "$@"; do
    pid=$(live_pid "$name") || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid:$(proc_start "$pid")")
  done
  local i p left
  for ((i = 0; i < grace * 10; i++)); do
    left=""
    for p in "${pids[@]}"; do
      [ "$(proc_start "${p%%:*}")" = "${p#*:}" ] && left=1
    done
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    [ "$(proc_start "${p%%:*}")" = "${p#*:}" ] && kill -KILL "${p%%:*}" 2>/dev/null
  done
  return 0
}

kubepods_cgroups() {
  # Deepest first, so that rmdir can go bottom-up.
  find /sys/fs/cgroup -mindepth 2 -maxdepth 12 -type d -path '*/kubepods*' 2>/dev/null | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

do_stop() {
  local quiet=${1:-}
  local t0
  t0=$(now_ms)
  phase() { [ -z "${CNI_NODE_TEST_CLUSTER_DEBUG:-}" ] || log "stop: $1 after $(( $(now_ms) - t0 )) ms"; }
  local anything=""
  [ -d "$STATE_DIR" ] && anything=1
  [ -e "/run/netns/$NETNS" ] || [ -e "/run/netns/$PEER_NETNS" ] && anything=1
  [ -n "$(kubepods_cgroups)" ] && anything=1
  if [ -z "$anything" ]; then
    [ -n "$quiet" ] || log "no cluster to stop"
    return 0
  fi
  [ -n "$quiet" ] && log "cleaning up what a previous cluster left behind"

  # The kubelet first, so that it restarts nothing; then every pod's processes
  # (SIGKILL: a test cluster's pods have nothing to save) and the runtime.
  stop_pids 5 kubelet kube-proxy
  phase "kubelet and kube-proxy stopped"
  local cg i
  for ((i = 0; i < 50; i++)); do
    local left=""
    for cg in $(kubepods_cgroups); do
      if [ -s "$cg/cgroup.procs" ]; then
        left=1
        xargs -r kill -KILL <"$cg/cgroup.procs" 2>/dev/null || true
      fi
    done
    [ -z "$left" ] && break
    sleep 0.1
  done
  phase "pods killed"
  stop_pids 5 containerd
  phase "containerd stopped"
  # etcd last: kube-apiserver hangs until killed when etcd goes away under it.
  stop_pids 5 kube-scheduler kube-controller-manager forward-host forward-inside kube-apiserver
  stop_pids 5 etcd
  phase "control plane stopped"
  # Whatever else is still in the cluster's namespaces (shims, the holder, …).
  local pids
  for ((i = 0; i < 50; i++)); do
    pids=$(cluster_pids)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  [ -z "$(cluster_pids)" ] || log "warning: processes still in the cluster's namespaces: $(cluster_pids | tr '\n' ' ')"

  phase "remaining processes killed"
  for cg in $(kubepods_cgroups); do
    rmdir "$cg" 2>/dev/null || log "warning: cannot remove cgroup $cg"
  done
  ip netns del "$NETNS" 2>/dev/null || true
  ip netns del "$PEER_NETNS" 2>/dev/null || true
  if [ -f "$STATE_DIR/created-dirs" ]; then
    local d
    tac "$STATE_DIR/created-dirs" | while read -r d; do
      [ -n "$d" ] && rmdir "$d" 2>/dev/null || log "warning: $d (created as a mount point) is not empty; left in place"
    done
  fi
  rm -rf "$STATE_DIR"
  log "stopped in $(( $(now_ms) - t0 )) ms"
}

cmd_stop() {
  need_root stop
  do_stop
}

cmd_status() {
  if holder_pid >/dev/null 2>&1; then
    echo running
    [ -f "$STATE_DIR/kubeconfig" ] && echo "kubeconfig: $STATE_DIR/kubeconfig"
    return 0
  fi
  echo stopped
  return 3
}

case "${1:-}" in
  provision) shift; cmd_provision "$@" ;;
  path) cmd_path ;;
  bin) shift; cmd_bin "$@" ;;
  start) shift; cmd_start "$@" ;;
  load-image) shift; cmd_load_image "$@" ;;
  stop) cmd_stop ;;
  cleanup) cmd_cleanup ;;
  status) cmd_status ;;
  __holder) cmd_holder ;;
  *) usage ;;
esac
