#!/usr/bin/env bash
# Builds the repository's Dockerfile offline with podman and runs the original
# cni-node README's `docker run` examples against temporary host directories,
# asserting files, modes, rendered pointers, exit codes and --pause on SIGTERM.
#
#   sudo scripts/image-test.sh            (needs: sudo scripts/provision.sh, once)
#
# No registry is reachable here, so nothing is pulled:
#  - Base images are made locally and cached (see make_bases below):
#      localhost/cni-node-build-base:<key>    Debian bookworm minbase (debootstrap)
#                                             + Node.js 20 + npm — stands in for
#                                             node:20-bookworm-slim
#      localhost/cni-node-runtime-base:<key>  node + the shared libraries it links
#                                             (ldd) in an otherwise empty rootfs: no
#                                             shell, no apt/dpkg — stands in for
#                                             gcr.io/distroless/nodejs20-debian12
#    <key> hashes the recipe itself (the functions below), the Debian mirror and
#    the Node.js binary, so changing any of them rebuilds; otherwise a run reuses
#    the images (`podman image exists`) or re-imports the rootfs tarballs kept in
#    /var/cache/cni-node-test/image/<key>/.
#  - Node.js: Debian bookworm's nodejs package is 18.x, below the project's
#    engines (>= 20) and the distroless nodejs20 default, so both bases take the
#    machine's Node.js 20 binary (and npm) instead; the machine must have node >= 20.
#  - Plugins: PLUGINS_SOURCE=local with Debian's containernetworking-plugins
#    (/usr/lib/cni) copied into a temporary dir given as the `local-plugins` build
#    context. Debian ships no Multus, so this image has no multus/multus-cni; the
#    release build (the default) adds them.
#  - The build stage runs the real `npm ci` + `npm run build` when the npm registry
#    is reachable from inside a build container (checked first; the host's CA
#    bundle is passed in, for TLS-intercepting proxies). Otherwise it falls back to
#    BUNDLE_SOURCE=prebuilt with the host's `npm run build` output.
#    Force either with CNI_NODE_IMAGE_BUNDLE=npm|prebuilt.
#
# Prints PASS/FAIL per check, the image size, timings, and ends with
# "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
CACHE_ROOT=${CNI_NODE_TEST_CACHE:-/var/cache/cni-node-test}
CACHE_DIR=$CACHE_ROOT/image
IMAGE=${CNI_NODE_IMAGE:-localhost/cni-node:image-test}
BUNDLE_MODE=${CNI_NODE_IMAGE_BUNDLE:-auto}
PODMAN=(podman --runtime runc)
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
RUN=("${PODMAN[@]}" run --rm --network none "${LIMITS[@]}")
# Debian's containernetworking-plugins: the plugin source of the offline build.
DEBIAN_PLUGINS=/usr/lib/cni

T0=$(date +%s%N)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
log() { printf '==> %s\n' "$*"; }
die() { printf 'image-test: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Preflight: tell the user what is missing instead of failing obscurely.
[ "$(id -u)" = 0 ] || die "must run as root (podman builds and bind mounts); run: sudo $0"
missing=()
for cmd in podman runc debootstrap jq chroot sha256sum; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ -x "$DEBIAN_PLUGINS/bridge" ] || missing+=("containernetworking-plugins ($DEBIAN_PLUGINS)")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; run: sudo scripts/provision.sh"
NODE_BIN=$(readlink -f "$(command -v node || true)")
[ -x "$NODE_BIN" ] || die "node not found (Node.js >= 20 is needed for the base images)"
node_major=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "node $("$NODE_BIN" --version) is too old: the image needs Node.js >= 20"
NPM_DIR=$(readlink -f "$(dirname "$NODE_BIN")/../lib/node_modules/npm")
[ -f "$NPM_DIR/bin/npm-cli.js" ] || die "npm not found next to $NODE_BIN (expected $NPM_DIR)"

WORK=$(mktemp -d /var/tmp/cni-node-image-test.XXXXXX)
CONTAINERS=()
MOUNTED=""
cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  if [ -n "$MOUNTED" ]; then "${PODMAN[@]}" image unmount "$IMAGE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Base images. Everything that decides their content is in these functions; their
# text is part of the cache key, so editing the recipe rebuilds the bases.

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

# $1: empty dir → Debian bookworm minbase with Node.js + npm in /usr/local.
make_build_rootfs() {
  local root=$1
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  install -D -m 0755 "$NODE_BIN" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
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

make_bases() {
  local dir=$1 build_root=$WORK/build-rootfs runtime_root=$WORK/runtime-rootfs
  mkdir -p "$build_root" "$runtime_root"
  log "debootstrap --variant=minbase bookworm ($MIRROR)"
  make_build_rootfs "$build_root"
  make_runtime_rootfs "$build_root" "$runtime_root"
  mkdir -p "$dir"
  tar --numeric-owner -C "$build_root" -cf "$dir/build-base.tar.tmp" .
  tar --numeric-owner -C "$runtime_root" -cf "$dir/runtime-base.tar.tmp" .
  mv "$dir/build-base.tar.tmp" "$dir/build-base.tar"
  mv "$dir/runtime-base.tar.tmp" "$dir/runtime-base.tar"
  rm -rf "$build_root" "$runtime_root"
}

import_base() { # tarball image [--change …]
  local tarball=$1 image=$2; shift 2
  "${PODMAN[@]}" import "$@" "$tarball" "$image" >/dev/null
}

MIRROR=$(debian_mirror)
KEY=$( {
  echo "recipe v1 $(uname -m) $MIRROR"
  declare -f make_build_rootfs make_runtime_rootfs make_bases import_base
  sha256sum "$NODE_BIN" | cut -d' ' -f1
  cat "$NPM_DIR/package.json"
} | sha256sum | cut -c1-16)
BUILD_BASE=localhost/cni-node-build-base:$KEY
RUNTIME_BASE=localhost/cni-node-runtime-base:$KEY
T_BASES=$(date +%s%N)
if "${PODMAN[@]}" image exists "$BUILD_BASE" && "${PODMAN[@]}" image exists "$RUNTIME_BASE"; then
  log "base images cached: $BUILD_BASE, $RUNTIME_BASE"
else
  if [ ! -f "$CACHE_DIR/$KEY/build-base.tar" ] || [ ! -f "$CACHE_DIR/$KEY/runtime-base.tar" ]; then
    log "building base images (recipe $KEY)"
    make_bases "$CACHE_DIR/$KEY"
  else
    log "importing cached base rootfs tarballs from $CACHE_DIR/$KEY"
  fi
  import_base "$CACHE_DIR/$KEY/build-base.tar" "$BUILD_BASE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  import_base "$CACHE_DIR/$KEY/runtime-base.tar" "$RUNTIME_BASE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/nodejs/bin/node"]'
fi
# Drop base images and tarballs of older recipes: each set is ~0.5 GB.
for old in "$CACHE_DIR"/*/; do
  [ -d "$old" ] && [ "$(basename "$old")" != "$KEY" ] && rm -rf "$old"
done
for name in cni-node-build-base cni-node-runtime-base; do
  "${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' "localhost/$name" 2>/dev/null \
    | grep -v ":$KEY\$" | xargs -r "${PODMAN[@]}" rmi >/dev/null 2>&1 || true
done
BASES_MS=$(ms_since "$T_BASES")

# ---------------------------------------------------------------------------
# Build the repository's Dockerfile.

mkdir -p "$WORK/local-plugins"
cp -a "$DEBIAN_PLUGINS"/. "$WORK/local-plugins/"

CA_ARGS=()
ca_file=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca_file" ]; then
  CA_ARGS=(-v "$ca_file:/run/extra-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/extra-ca.crt)
fi

if [ "$BUNDLE_MODE" = auto ]; then
  registry=$(cd "$REPO" && npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
  probe_ca=()
  [ -f "$ca_file" ] && probe_ca=(-v "$ca_file:/run/extra-ca.crt:ro" -e NODE_EXTRA_CA_CERTS=/run/extra-ca.crt)
  if "${PODMAN[@]}" run --rm "${LIMITS[@]}" "${probe_ca[@]}" "$BUILD_BASE" \
       timeout 20 node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
       "${registry%/}/yaml" >/dev/null 2>&1; then
    BUNDLE_MODE=npm
    log "npm registry reachable from a build container: the build stage runs npm ci + npm run build"
  else
    BUNDLE_MODE=prebuilt
    log "npm registry NOT reachable from a build container: using the host's npm run build output (BUNDLE_SOURCE=prebuilt)"
  fi
fi
BUNDLE_ARGS=(--build-arg "BUNDLE_SOURCE=$BUNDLE_MODE")
if [ "$BUNDLE_MODE" = prebuilt ]; then
  # The project's own build (scripts/build.mjs) on the host, run in a copy of the
  # sources so that the work tree's dist/ and build/ are left alone.
  [ -d "$REPO/node_modules" ] || die "BUNDLE_SOURCE=prebuilt builds on the host and needs node_modules: run npm ci first"
  pre=$WORK/prebuilt
  mkdir -p "$pre/scripts"
  cp -a "$REPO/package.json" "$REPO/package-lock.json" "$REPO/tsconfig.json" "$REPO/src" "$REPO/bin" "$pre/"
  cp "$REPO/scripts/build.mjs" "$pre/scripts/"
  ln -s "$REPO/node_modules" "$pre/node_modules"
  (cd "$pre" && node scripts/build.mjs >"$WORK/prebuilt.log" 2>&1) \
    || { tail -n 30 "$WORK/prebuilt.log" >&2; die "the host build (scripts/build.mjs) failed"; }
  BUNDLE_ARGS+=(--build-context "prebuilt=$pre")
fi

VERSION=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo uncommitted)
SOURCE=$(git -C "$REPO" config --get remote.origin.url 2>/dev/null || echo "file://$REPO")
# buildah 1.28 reuses a cached LABEL layer even when the ARG it expands changed
# (a new commit would keep the old revision label), so the same values are also
# given as --label, which podman applies after the cached steps.
LABEL_ARGS=(--label "org.opencontainers.image.version=$VERSION" --label "org.opencontainers.image.revision=$REVISION"
  --label "org.opencontainers.image.source=$SOURCE")
OLD_ID=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

log "podman build $IMAGE (PLUGINS_SOURCE=local, BUNDLE_SOURCE=$BUNDLE_MODE)"
T_BUILD=$(date +%s%N)
if ! "${PODMAN[@]}" build "${LIMITS[@]}" --layers \
    -f "$REPO/Dockerfile" -t "$IMAGE" \
    --build-arg "BUILD_IMAGE=$BUILD_BASE" --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
    --build-arg PLUGINS_SOURCE=local --build-context "local-plugins=$WORK/local-plugins" \
    "${BUNDLE_ARGS[@]}" "${CA_ARGS[@]}" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE" \
    "${LABEL_ARGS[@]}" \
    "$REPO" >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2
  mkdir -p "$CACHE_DIR" && cp "$WORK/build.log" "$CACHE_DIR/last-build.log"
  die "podman build failed (last lines above; full log: $CACHE_DIR/last-build.log)"
fi
BUILD_MS=$(ms_since "$T_BUILD")
mkdir -p "$CACHE_DIR" && cp "$WORK/build.log" "$CACHE_DIR/last-build.log"
NEW_ID=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
  "${PODMAN[@]}" rmi "$OLD_ID" >/dev/null 2>&1 || true
fi
SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE ($NEW_ID)"

# ---------------------------------------------------------------------------
# Checks.

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$1"; }
fail() {
  FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$1"
  shift
  local line; for line in "$@"; do printf '     %s\n' "${line//$'\n'/$'\n'       }"; done
}
# check NAME COMMAND… : PASS when the command succeeds; on failure print the last command's output.
check() {
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name" "command: ${LAST_CMD:-}" "exit: ${RC:-}" "stdout: $(head -c 800 "$WORK/out" 2>/dev/null)" "stderr: $(head -c 800 "$WORK/err" 2>/dev/null)"; fi
}
# cli ARGS… : runs the image with ARGS (podman run options first, then IMAGE and the command).
# Sets RC; stdout/stderr in $WORK/out, $WORK/err.
cli() {
  local opts=() a
  while [ $# -gt 0 ]; do
    case "$1" in
      --) shift; break ;;
      *) opts+=("$1"); shift ;;
    esac
  done
  LAST_CMD="podman run ${opts[*]} IMAGE $*"
  set +e
  "${RUN[@]}" "${opts[@]}" "$IMAGE" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
}
stamp() { stat -c '%i %y %s' "$1" 2>/dev/null || echo missing; }
# Files in a node dir, hidden ones (temporary files) included, except cni-node's own
# record and lock files (.cni-node*); space-separated, sorted.
node_files() { ls -A "$1" | grep -v '^\.cni-node' | LC_ALL=C sort | tr '\n' ' '; }
export -f node_files
mode() { stat -c '%a' "$1" 2>/dev/null || echo missing; }

ROOT=$("${PODMAN[@]}" image mount "$IMAGE")
MOUNTED=1
IMG_BIN=$ROOT/opt/cni/bin

# -- the image itself
check "image: ENTRYPOINT is exec-form node on the bundle, CMD empty" \
  test "$("${PODMAN[@]}" image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$IMAGE")" \
  = '["/nodejs/bin/node","/app/dist/cni-node.mjs"] null'
check "image: no shell, no apt/dpkg, no npm, no node_modules" \
  bash -c '! compgen -G "$1/bin/*sh" >/dev/null && ! compgen -G "$1/usr/bin/*sh" >/dev/null && for f in usr/bin/apt-get usr/bin/dpkg usr/bin/apt bin/sh usr/bin/npm usr/local/bin/npm app/node_modules; do [ ! -e "$1/$f" ] && [ ! -L "$1/$f" ] || exit 1; done' _ "$ROOT"
check "image: /app holds only dist/, bin/, package.json" \
  test "$(cd "$ROOT/app" && ls -A | tr '\n' ' ')" = "bin dist package.json "
check "image: OCI labels version/revision/source" \
  test "$("${PODMAN[@]}" image inspect --format '{{index .Labels "org.opencontainers.image.version"}}|{{index .Labels "org.opencontainers.image.revision"}}|{{index .Labels "org.opencontainers.image.source"}}' "$IMAGE")" \
  = "$VERSION|$REVISION|$SOURCE"
check "image: plugins are Debian's, mode 0755, listed in /opt/cni/SHA256SUMS" \
  bash -c 'diff <(ls -A "$1") <(ls -A "$2") && [ -z "$(find "$2" -type f ! -perm 0755)" ] && (cd "$2" && sha256sum --quiet -c ../SHA256SUMS) && [ "$(wc -l <"$2/../SHA256SUMS")" = "$(ls -A "$2" | wc -l)" ]' _ "$DEBIAN_PLUGINS" "$IMG_BIN"
check "image: a shell cannot be run in it" \
  bash -c '! "$@" >/dev/null 2>&1' _ "${RUN[@]}" --entrypoint /bin/sh "$IMAGE" -c true

# -- docker run --rm IMAGE → usage on stderr, exit 2
cli --
check "run without arguments: usage on stderr, nothing on stdout, exit 2" \
  bash -c '[ "$1" = 2 ] && grep -qi "usage" "$2/err" && [ ! -s "$2/out" ]' _ "$RC" "$WORK"

# -- version
cli -- version
check "version prints $VERSION, exit 0" bash -c '[ "$1" = 0 ] && grep -qF -- "$2" "$3/out"' _ "$RC" "$VERSION" "$WORK"

# -- list → plugin names, sorted, one per line
cli -- list
expected_list=$(ls -A "$IMG_BIN" | LC_ALL=C sort)
check "list: the image's plugins, sorted, one per line, exit 0" \
  bash -c '[ "$1" = 0 ] && [ "$(cat "$2/out")" = "$3" ]' _ "$RC" "$WORK" "$expected_list"

# -- install --plugins=bridge,ipvlan with -v HOST/bin:/host/opt/cni/bin
H=$WORK/host
mkdir -p "$H/bin" "$H/net.d" "$WORK/tpl"
VBIN=(-v "$H/bin:/host/opt/cni/bin")
cli "${VBIN[@]}" -- install --plugins=bridge,ipvlan
check "install --plugins=bridge,ipvlan: exit 0" test "$RC" = 0
check "install: bridge and ipvlan on the node, mode 0755, bytes equal to the image's" \
  bash -c 'for p in bridge ipvlan; do [ "$(stat -c %a "$1/$p")" = 755 ] && cmp -s "$1/$p" "$2/$p" || exit 1; done' _ "$H/bin" "$IMG_BIN"
check "install: no other plugin installed, no temporary file left" \
  bash -c '[ "$(node_files "$1")" = "bridge ipvlan " ]' _ "$H/bin"
before_bridge=$(stamp "$H/bin/bridge"); before_ipvlan=$(stamp "$H/bin/ipvlan")
sleep 0.05
cli "${VBIN[@]}" -- install --plugins=bridge,ipvlan
check "install again: exit 0, files untouched (same inode, mtime, size)" \
  bash -c '[ "$1" = 0 ] && [ "$(stat -c "%i %y %s" "$2/bridge")" = "$3" ] && [ "$(stat -c "%i %y %s" "$2/ipvlan")" = "$4" ]' \
  _ "$RC" "$H/bin" "$before_bridge" "$before_ipvlan"

# -- install --configs=05-multus.conf,10-ipvlan.conf with templates mounted into /etc/cni/net.d
cat >"$H/net.d/10-calico.conflist" <<'EOF'
{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "datastore_type": "kubernetes",
      "nodename": "node-1",
      "ipam": { "type": "calico-ipam" },
      "policy": { "type": "k8s" },
      "kubernetes": { "kubeconfig": "/etc/cni/net.d/calico-kubeconfig" }
    },
    { "type": "portmap", "snat": true, "capabilities": { "portMappings": true } }
  ]
}
EOF
cat >"$WORK/tpl/multus.conf" <<'EOF'
{
  "cniVersion": "0.3.1",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
  "delegates": [
    __10-calico.conflist__
  ]
}
EOF
cat >"$WORK/tpl/ipvlan.conf" <<'EOF'
{
  "cniVersion": "0.3.1",
  "name": "ipvlan-net",
  "type": "ipvlan",
  "master": "eth0",
  "ipam": { "type": "host-local", "subnet": "192.168.50.0/24" }
}
EOF
calico_before=$(stamp "$H/net.d/10-calico.conflist")
VCONF=(-v "$H/net.d:/host/etc/cni/net.d" -v "$WORK/tpl/multus.conf:/etc/cni/net.d/05-multus.conf:ro" -v "$WORK/tpl/ipvlan.conf:/etc/cni/net.d/10-ipvlan.conf:ro")
cli "${VCONF[@]}" -- install --configs=05-multus.conf,10-ipvlan.conf
check "install --configs=05-multus.conf,10-ipvlan.conf: exit 0" test "$RC" = 0
check "05-multus.conf: valid JSON, mode 0644, pointer replaced by 10-calico.conflist's content" \
  bash -c 'jq -e . "$1/05-multus.conf" >/dev/null && [ "$(stat -c %a "$1/05-multus.conf")" = 644 ] \
    && ! grep -q "__" "$1/05-multus.conf" \
    && [ "$(jq -cS ".delegates[0]" "$1/05-multus.conf")" = "$(jq -cS . "$1/10-calico.conflist")" ] \
    && [ "$(jq -r .type "$1/05-multus.conf")" = multus ]' _ "$H/net.d"
check "10-ipvlan.conf: installed as written, mode 0644" \
  bash -c 'cmp -s "$2" "$1/10-ipvlan.conf" && [ "$(stat -c %a "$1/10-ipvlan.conf")" = 644 ]' _ "$H/net.d" "$WORK/tpl/ipvlan.conf"
check "10-calico.conflist (the pointer target) untouched" test "$(stamp "$H/net.d/10-calico.conflist")" = "$calico_before"

# -- apply --plugins=macvlan,bridge:host-device,bridge,ipvlan
#    (the original's multus-cni,macvlan:host-device,multus-cni,ipvlan with bridge in
#    the role of multus-cni, which Debian does not ship)
cli "${VBIN[@]}" -- install --plugins=host-device
check "install --plugins=host-device (the 'current' state of the apply example): exit 0" test "$RC" = 0
bridge_before=$(stamp "$H/bin/bridge")
sleep 0.05
cli "${VBIN[@]}" -- apply --plugins=macvlan,bridge:host-device,bridge,ipvlan
check "apply --plugins=macvlan,bridge:host-device,bridge,ipvlan: exit 0" test "$RC" = 0
check "apply: macvlan installed (mode 0755, image's bytes), ipvlan and host-device removed" \
  bash -c 'cmp -s "$1/macvlan" "$2/macvlan" && [ "$(stat -c %a "$1/macvlan")" = 755 ] && [ ! -e "$1/ipvlan" ] && [ ! -e "$1/host-device" ]' _ "$H/bin" "$IMG_BIN"
check "apply: bridge not touched (same inode, mtime, size)" test "$(stamp "$H/bin/bridge")" = "$bridge_before"
check "apply: node plugins dir is exactly bridge, macvlan" \
  bash -c '[ "$(node_files "$1")" = "bridge macvlan " ]' _ "$H/bin"

# -- uninstall
cli "${VBIN[@]}" -- uninstall --plugins=macvlan,bridge
check "uninstall --plugins=macvlan,bridge: exit 0, both removed" \
  bash -c '[ "$1" = 0 ] && [ ! -e "$2/macvlan" ] && [ ! -e "$2/bridge" ] && [ -z "$(node_files "$2")" ]' _ "$RC" "$H/bin"
cli "${VCONF[@]}" -- uninstall --configs=05-multus.conf,10-ipvlan.conf
check "uninstall --configs=05-multus.conf,10-ipvlan.conf: exit 0, both removed, 10-calico.conflist kept" \
  bash -c '[ "$1" = 0 ] && [ ! -e "$2/05-multus.conf" ] && [ ! -e "$2/10-ipvlan.conf" ] && [ "$(stat -c "%i %y %s" "$2/10-calico.conflist")" = "$3" ]' \
  _ "$RC" "$H/net.d" "$calico_before"

# -- errors reach the user with the right exit codes
cli "${VBIN[@]}" -- install --plugins=no-such-plugin
check "install --plugins=no-such-plugin: exit 1, message names it, node dir unchanged" \
  bash -c '[ "$1" = 1 ] && grep -q no-such-plugin "$2/err" && [ -z "$(node_files "$3")" ]' _ "$RC" "$WORK" "$H/bin"
cli -- install --no-such-option
check "unknown option: 'Unknown option: --no-such-option', exit 2" \
  bash -c '[ "$1" = 2 ] && grep -qF "Unknown option: --no-such-option" "$2/err"' _ "$RC" "$WORK"

# -- kube-watch entry point
cli --entrypoint /nodejs/bin/node -- /app/bin/kube-watch version
check "kube-watch entry point (/app/bin/kube-watch version): exit 0" test "$RC" = 0

# -- --pause: the container keeps running after the action, stops on SIGTERM within 2 s, exit 0
mkdir -p "$H/bin-pause"
PAUSE_NAME=cni-node-image-test-$$-pause
CONTAINERS+=("$PAUSE_NAME")
"${PODMAN[@]}" run -d --name "$PAUSE_NAME" --network none "${LIMITS[@]}" -v "$H/bin-pause:/host/opt/cni/bin" \
  "$IMAGE" install --plugins=bridge --pause >/dev/null
ok=""
for _ in $(seq 1 100); do
  if [ -e "$H/bin-pause/bridge" ]; then ok=1; break; fi
  sleep 0.1
done
state=$("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$PAUSE_NAME" 2>/dev/null || echo gone)
LAST_CMD="podman run -d … IMAGE install --plugins=bridge --pause"; RC="(running)"
"${PODMAN[@]}" logs "$PAUSE_NAME" >"$WORK/out" 2>"$WORK/err" || true
check "--pause: the action is done and the container keeps running" test "${ok:-0}:$state" = "1:running"
sleep 0.3
was=$("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$PAUSE_NAME" 2>/dev/null || echo gone)
t_stop=$(date +%s%N)
"${PODMAN[@]}" stop -t 10 "$PAUSE_NAME" >/dev/null 2>&1 || true
stop_ms=$(ms_since "$t_stop")
exit_code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$PAUSE_NAME" 2>/dev/null || echo unknown)
"${PODMAN[@]}" logs "$PAUSE_NAME" >"$WORK/out" 2>"$WORK/err" || true
RC=$exit_code
check "--pause: podman stop (SIGTERM) of the running container returns within 2 s (took ${stop_ms} ms), exit code 0 (was $exit_code)" \
  test "$was" = running -a "$stop_ms" -le 2000 -a "$exit_code" = 0
"${PODMAN[@]}" rm -f -t 0 "$PAUSE_NAME" >/dev/null 2>&1 || true

# ---------------------------------------------------------------------------
TOTAL_MS=$(ms_since "$T0")
printf '\nImage: %s\n' "$IMAGE"
printf 'Image size: %s bytes (%s MB)\n' "$SIZE" "$(awk -v s="$SIZE" 'BEGIN { printf "%.1f", s / 1000000 }')"
printf 'Base images: %s (%s ms), build: %s ms (BUNDLE_SOURCE=%s), total: %s ms\n' \
  "$KEY" "$BASES_MS" "$BUILD_MS" "$BUNDLE_MODE" "$TOTAL_MS"
printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
[ "$FAILED" = 0 ]
