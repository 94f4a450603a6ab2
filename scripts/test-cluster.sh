#!/usr/bin/env bash
# Provides the real kube-apiserver that the e2e tests run against.
#
#   scripts/test-cluster.sh provision   build kube-apiserver once per machine (root, ~10 min)
#   scripts/test-cluster.sh path        print the cached binary's path
#
# There is no container registry or upstream release download on these
# machines, so the binary is built from Debian's `kubernetes` source package
# (see /work/shared/RECIPES.md, "A real kube-apiserver + etcd"). It is cached
# outside the work tree, keyed by version, so `git clean` or a fresh checkout
# never forces a rebuild. Run scripts/provision.sh first: it installs the
# toolchain and enables deb-src.
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_DIR=${CNI_NODE_TEST_CACHE:-/var/cache/cni-node-test}
BIN="$CACHE_DIR/kube-apiserver-$KUBE_VERSION"
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

log() { echo "test-cluster.sh: $*"; }
die() { echo "test-cluster.sh: error: $*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $0 provision | path
  provision  build kube-apiserver $KUBE_VERSION from Debian's source package and cache it
             at $BIN (needs root; run scripts/provision.sh first)
  path       print the cached kube-apiserver path (fails if not provisioned)
EOF
  exit 2
}

binary_works() {
  [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1
}

cmd_path() {
  if [ -x "$BIN" ]; then
    echo "$BIN"
  else
    echo "test-cluster.sh: kube-apiserver $KUBE_VERSION is not provisioned ($BIN missing)." >&2
    echo "  Run: sudo scripts/provision.sh && sudo scripts/test-cluster.sh provision" >&2
    exit 1
  fi
}

cmd_provision() {
  [ "$(id -u)" = 0 ] || die "provision must run as root (it uses apt-get and writes $CACHE_DIR); try: sudo $0 provision"

  mkdir -p "$CACHE_DIR"
  # Two CI jobs (or a developer and a test run) provisioning at once would
  # otherwise build twice into the same tree.
  exec 9>"$CACHE_DIR/.provision.lock"
  if ! flock -n 9; then
    log "another provision is running; waiting for it"
    flock 9
  fi

  if binary_works; then
    log "kube-apiserver $KUBE_VERSION already cached at $BIN ($("$BIN" --version)); nothing to do"
    return 0
  fi

  local tool
  for tool in apt-get go make rsync tar etcd openssl; do
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

  # The vendored reflect2 1.0.1 makes kube-apiserver built with Go >= 1.18
  # crash within seconds (SIGSEGV in runtime.mapiterinit); 1.0.2 from Debian
  # is API-compatible. GOPATH mode (forced by hack/lib/init.sh) ignores
  # vendor/modules.txt, so the swap needs no module bookkeeping.
  log "replacing vendored reflect2 with $REFLECT2_SRC"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -a "$REFLECT2_SRC" "$tree/vendor/github.com/modern-go/reflect2"

  # As debian/rules does: a GOPATH in which the tree is k8s.io/kubernetes.
  mkdir -p "$build/gopath/src/k8s.io"
  ln -s "$tree" "$build/gopath/src/k8s.io/kubernetes"

  log "building kube-apiserver $KUBE_VERSION with $(go version | awk '{print $3}') (about 10 minutes, 1.3 GB RAM); log: $buildlog"
  if ! (
    cd "$build/gopath/src/k8s.io/kubernetes"
    export GOPATH="$build/gopath" HOME="$build/home" CGO_ENABLED=0 GOFLAGS=
    mkdir -p "$HOME"
    make WHAT=cmd/kube-apiserver GOLDFLAGS="-s -w"
  ) </dev/null >"$buildlog" 2>&1; then
    echo "test-cluster.sh: build failed; last lines of $buildlog:" >&2
    tail -n 40 "$buildlog" >&2
    exit 1
  fi

  local out="$tree/_output/local/bin/linux/$(go env GOARCH)/kube-apiserver"
  [ -x "$out" ] || { tail -n 20 "$buildlog" >&2; die "build finished but $out is missing"; }
  # Copy then rename so a concurrent reader never sees a half-written binary.
  cp "$out" "$BIN.tmp"
  chmod 0755 "$BIN.tmp"
  mv -f "$BIN.tmp" "$BIN"
  binary_works || die "built $BIN but '$BIN --version' fails"

  log "removing build tree"
  rm -rf "$build"
  trap - EXIT
  log "done in $((SECONDS - started)) s: $BIN ($("$BIN" --version))"
}

case "${1:-}" in
  provision) cmd_provision ;;
  path) cmd_path ;;
  *) usage ;;
esac
