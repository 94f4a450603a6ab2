#!/usr/bin/env bash
# Makes, once per machine, the local base images that stand in for the Dockerfile's
# public bases when no registry is reachable (run by scripts/setup.sh):
#
#   localhost/cni-node-base-build:<key>    for node:24-bookworm-slim: Debian bookworm
#                                          minbase (debootstrap) + Node.js 24 + npm
#   localhost/cni-node-base-runtime:<key>  for gcr.io/distroless/nodejs24-debian12:
#                                          node and the shared libraries it links, in
#                                          an otherwise empty rootfs (no shell, no apt)
#   localhost/cni-node-base-go:<key>       for golang:1.23: Debian bookworm minbase +
#                                          golang-1.23-go (bookworm-backports) + git +
#                                          ca-certificates
#
# Node.js is the machine's provisioned Node 24 (scripts/provision-node.sh links it as
# /usr/local/bin/node), not Debian's or the machine's older /usr/bin/node, so the
# stand-in ships the same major version as the real default.
#
# Each <key> hashes that base's recipe (the functions below, the Debian mirror, the
# Node.js binary …), so editing a recipe makes a new base and an unchanged recipe is
# never made twice. Rootfs tarballs are kept under $CACHE_ROOT/image-bases/ so that a
# base image deleted from podman's store is re-imported in seconds.
#
#   scripts/image-bases.sh           make (or re-import) whatever is missing; prints
#                                    the three references as NAME=REF lines on stdout
#   scripts/image-bases.sh --check   make nothing; print the NAME=REF lines if all
#                                    three exist, else say what is missing and exit 1
#   scripts/image-bases.sh --prune   remove this script's bases (images and tarballs)
#                                    whose key is not the current one
#
# Logs go to stderr. Needs root, podman, runc, debootstrap.
set -euo pipefail

CACHE_ROOT=${CNI_NODE_TEST_CACHE:-/var/cache/cni-node-test}
CACHE_DIR=$CACHE_ROOT/image-bases
PODMAN=(podman --runtime runc)
SUITE=bookworm
GO_PACKAGE=golang-1.23-go
GO_ROOT=/usr/lib/go-1.23
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'image-bases: %s\n' "$*" >&2; }
die() { printf 'image-bases: error: %s\n' "$*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

MODE=make
case "${1:-}" in
  "") ;;
  --check) MODE=check ;;
  --prune) MODE=prune ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
  *) die "unknown argument '$1' (usage: scripts/image-bases.sh [--check|--prune])" ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, podman); run: sudo $0"
missing=()
for cmd in podman runc debootstrap chroot unshare sha256sum tar; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; run: sudo scripts/provision.sh"

# The provisioned Node.js 24 and an npm to go with it.
NODE_LINK=/usr/local/bin/node
NODE_BIN=$(readlink -f "$NODE_LINK" 2>/dev/null || true)
[ -x "$NODE_BIN" ] || die "$NODE_LINK not found: run: sudo scripts/provision-node.sh"
NODE_VERSION=$("$NODE_BIN" --version)
case "$NODE_VERSION" in
  v24.*) ;;
  *) die "$NODE_LINK is $NODE_VERSION; the image ships Node.js 24: run: sudo scripts/provision-node.sh" ;;
esac
NPM_CLI=$(readlink -f "$(command -v npm || true)" 2>/dev/null || true)
NPM_DIR=$(dirname "$(dirname "$NPM_CLI")")
[ -f "$NPM_DIR/bin/npm-cli.js" ] && [ -f "$NPM_DIR/package.json" ] \
  || die "npm not found (expected …/node_modules/npm/bin/npm-cli.js behind \`command -v npm\`)"

debian_mirror() {
  local src=/etc/apt/sources.list.d/debian.sources uri=""
  if [ -f "$src" ]; then
    uri=$(awk '/^URIs:/ { print $2; exit }' "$src")
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=$(debian_mirror)

# ---------------------------------------------------------------------------
# Recipes. Everything that decides a base's content is in these functions; their
# text is part of that base's key.

# $1: empty dir → Debian bookworm minbase.
make_debian_rootfs() {
  local root=$1
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
  : >"$root/etc/resolv.conf"
}

# $1: a copy of the Debian rootfs → + Node.js and npm in /usr/local (as in node:*-slim).
make_build_rootfs() {
  local root=$1
  install -D -m 0755 "$NODE_BIN" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  chroot "$root" /usr/local/bin/node --version >/dev/null
  chroot "$root" /usr/local/bin/npm --version >/dev/null
}

# $1: the build rootfs (for ldd), $2: empty dir → node + its shared libraries and
# nothing else: no shell, no coreutils, no apt/dpkg. Same layout as distroless
# (node at /nodejs/bin/node, root user, /tmp), so the Dockerfile's ENTRYPOINT is
# the same for both.
make_runtime_rootfs() {
  local build=$1 root=$2 lib
  mkdir -p "$root"/{nodejs/bin,etc,tmp,root,home/nonroot}
  chmod 1777 "$root/tmp"; chmod 0700 "$root/root"
  install -m 0755 "$build/usr/local/bin/node" "$root/nodejs/bin/node"
  # ldd lists the loader and every library, by the path the loader will open.
  for lib in $(chroot "$build" ldd /usr/local/bin/node | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$build$lib" "$root$lib"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$root/etc/group"
  printf '%s\n' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  chown 65532:65532 "$root/home/nonroot"
  chroot "$root" /nodejs/bin/node -e 'require("node:crypto").createHash("sha256"); require("node:dns")' \
    || die "node does not start in the runtime rootfs"
  [ ! -e "$root/bin/sh" ] || die "runtime rootfs unexpectedly has a shell"
}

# $1: a copy of the Debian rootfs → + Go 1.23 from bookworm-backports, git and
# ca-certificates (what the Dockerfile's Go stage uses of golang:1.23). apt runs in
# a private mount namespace, so the /proc it needs disappears with it.
make_go_rootfs() {
  local root=$1
  printf 'deb %s %s main\ndeb %s %s-backports main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$root/etc/apt/sources.list"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  unshare --mount --propagation private -- bash -euc '
    root=$1; shift
    mount -t proc proc "$root/proc"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive PATH='"$BASE_PATH"' apt-get update -qq
    chroot "$root" env DEBIAN_FRONTEND=noninteractive PATH='"$BASE_PATH"' \
      apt-get install -y -qq --no-install-recommends "$@"
    # go finds its GOROOT through /proc/self/exe.
    chroot "$root" '"$GO_ROOT"'/bin/go version
    chroot "$root" git --version
  ' _ "$root" -t "$SUITE-backports" "$GO_PACKAGE" git ca-certificates >"$WORK/go-apt.log" 2>&1 \
    || { tail -n 30 "$WORK/go-apt.log" >&2; die "installing $GO_PACKAGE into the Go base failed (log above)"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
  : >"$root/etc/resolv.conf"
}

key_of() { sha256sum | cut -c1-16; }
DEBIAN_KEY=$( { echo "debian v1 $(uname -m) $SUITE $MIRROR"; declare -f make_debian_rootfs; } | key_of)
BUILD_KEY=$( {
  echo "build v1 $DEBIAN_KEY"; declare -f make_build_rootfs
  sha256sum "$NODE_BIN" | cut -d' ' -f1; cat "$NPM_DIR/package.json"
} | key_of)
RUNTIME_KEY=$( { echo "runtime v1 $BUILD_KEY"; declare -f make_runtime_rootfs; } | key_of)
GO_KEY=$( { echo "go v1 $DEBIAN_KEY $GO_PACKAGE $GO_ROOT"; declare -f make_go_rootfs; } | key_of)

BUILD_BASE=localhost/cni-node-base-build:$BUILD_KEY
RUNTIME_BASE=localhost/cni-node-base-runtime:$RUNTIME_KEY
GO_BASE=localhost/cni-node-base-go:$GO_KEY

print_refs() {
  printf 'BUILD_BASE=%s\nRUNTIME_BASE=%s\nGO_BASE=%s\n' "$BUILD_BASE" "$RUNTIME_BASE" "$GO_BASE"
}
image_exists() { "${PODMAN[@]}" image exists "$1"; }

if [ "$MODE" = check ]; then
  absent=()
  for ref in "$BUILD_BASE" "$RUNTIME_BASE" "$GO_BASE"; do image_exists "$ref" || absent+=("$ref"); done
  if [ ${#absent[@]} -gt 0 ]; then
    printf 'image-bases: MISSING base image(s) for the current recipe: %s\n' "${absent[*]}" >&2
    printf 'image-bases: make them with: sudo scripts/image-bases.sh   (scripts/setup.sh runs it; cold: about 4 minutes)\n' >&2
    exit 1
  fi
  print_refs
  exit 0
fi

if [ "$MODE" = prune ]; then
  for name in cni-node-base-build:$BUILD_KEY cni-node-base-runtime:$RUNTIME_KEY cni-node-base-go:$GO_KEY; do
    "${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' "localhost/${name%%:*}" 2>/dev/null \
      | grep -v ":${name#*:}\$" | while read -r old; do
        log "removing $old"; "${PODMAN[@]}" rmi "$old" >/dev/null || true
      done
  done
  for f in "$CACHE_DIR"/*.tar; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in
      "debian-$DEBIAN_KEY.tar"|"build-$BUILD_KEY.tar"|"runtime-$RUNTIME_KEY.tar"|"go-$GO_KEY.tar") ;;
      *) log "removing $f"; rm -f "$f" ;;
    esac
  done
  exit 0
fi

# ---------------------------------------------------------------------------
# make: one maker at a time per machine.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock 9
WORK=$(mktemp -d /var/tmp/cni-node-image-bases.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# $1 tarball, $2 rootfs dir: tar it up atomically.
save_rootfs() {
  tar --numeric-owner -C "$2" -cf "$1.tmp" .
  mv "$1.tmp" "$1"
}
# $1: a new dir holding the Debian rootfs (made or taken from the cache).
debian_rootfs_into() {
  local tarball=$CACHE_DIR/debian-$DEBIAN_KEY.tar t
  mkdir -p "$1"
  if [ ! -f "$tarball" ]; then
    log "debootstrap --variant=minbase $SUITE ($MIRROR)"
    t=$(now_ms)
    make_debian_rootfs "$1"
    save_rootfs "$tarball" "$1"
    log "debootstrap: $(( $(now_ms) - t )) ms"
  else
    tar --numeric-owner -C "$1" -xf "$tarball"
  fi
}

# $1 image ref, $2 tarball, $3… podman import --change options.
import_base() {
  local ref=$1 tarball=$2; shift 2
  "${PODMAN[@]}" import --quiet "$@" "$tarball" "$ref" >/dev/null
  log "imported $ref"
}

if ! image_exists "$BUILD_BASE" || ! image_exists "$RUNTIME_BASE"; then
  bt=$CACHE_DIR/build-$BUILD_KEY.tar rt=$CACHE_DIR/runtime-$RUNTIME_KEY.tar
  if [ ! -f "$bt" ] || [ ! -f "$rt" ]; then
    t=$(now_ms)
    debian_rootfs_into "$WORK/build"
    log "build base: Debian + node $NODE_VERSION + npm $("$NODE_BIN" "$NPM_DIR/bin/npm-cli.js" --version)"
    make_build_rootfs "$WORK/build"
    mkdir -p "$WORK/runtime"
    make_runtime_rootfs "$WORK/build" "$WORK/runtime"
    save_rootfs "$bt" "$WORK/build"
    save_rootfs "$rt" "$WORK/runtime"
    rm -rf "$WORK/build" "$WORK/runtime"
    log "build and runtime bases: $(( $(now_ms) - t )) ms"
  fi
  image_exists "$BUILD_BASE" || import_base "$BUILD_BASE" "$bt" --change "ENV PATH=$BASE_PATH"
  image_exists "$RUNTIME_BASE" || import_base "$RUNTIME_BASE" "$rt" \
    --change "ENV PATH=$BASE_PATH" --change 'ENTRYPOINT ["/nodejs/bin/node"]'
fi

if ! image_exists "$GO_BASE"; then
  gt=$CACHE_DIR/go-$GO_KEY.tar
  if [ ! -f "$gt" ]; then
    t=$(now_ms)
    debian_rootfs_into "$WORK/go"
    log "Go base: Debian + $GO_PACKAGE ($SUITE-backports) + git + ca-certificates"
    make_go_rootfs "$WORK/go"
    log "Go base: $(grep -m1 '^go version' "$WORK/go-apt.log")"
    save_rootfs "$gt" "$WORK/go"
    rm -rf "$WORK/go"
    log "Go base: $(( $(now_ms) - t )) ms"
  fi
  import_base "$GO_BASE" "$gt" --change "ENV PATH=$GO_ROOT/bin:$BASE_PATH" --change 'ENV GOTOOLCHAIN=local'
fi

print_refs
