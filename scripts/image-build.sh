#!/usr/bin/env bash
# Builds the repository's Dockerfile, its default path, offline with podman, and
# prints the image reference on stdout (logs go to stderr):
#
#   sudo scripts/image-build.sh [--tag REF]       → REF
#
# REF: --tag, else $CNI_NODE_IMAGE, else localhost/cni-node:dev.
#
# What makes it offline, without changing what the Dockerfile builds:
#  - the base images are the local stand-ins made by scripts/image-bases.sh
#    (scripts/setup.sh runs it); this script only checks they exist;
#  - the pinned plugin sources come from the vendor-src tarballs, given as the
#    `vendor-src` build context: $CNI_NODE_VENDOR_SRC, else ../shared/vendor-src next
#    to the repository, else /work/shared/vendor-src. The Dockerfile verifies them
#    (sha256 and commit) exactly as it would verify a clone. With no such dir the
#    build clones from GitHub, as `docker build .` does.
#  - the bundle: npm ci + npm run build inside the build (the default) when the npm
#    registry is reachable from a build container (the host's CA bundle is passed in,
#    for TLS-intercepting proxies); otherwise, said loudly, the host's own
#    `npm run build` output (BUNDLE_SOURCE=prebuilt). Force either with
#    CNI_NODE_IMAGE_BUNDLE=npm|prebuilt.
#
# Unchanged sources rebuild nothing (podman's layer cache) and take a few seconds.
# The Go build cache is a cache mount shared by all builds on the machine.
#
# For the image tests, also:
#   --target STAGE           build only up to that stage (e.g. plugin-src, plugins)
#   --platform linux/ARCH    another target architecture (amd64, arm64); Go cross-compiles
#   --vendor-src DIR         another vendor-src context (e.g. a tampered copy)
#   -- ARGS…                 more `podman build` arguments (e.g. --build-arg PIN=…)
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
CACHE_ROOT=${CNI_NODE_TEST_CACHE:-/var/cache/cni-node-test}
PODMAN=(podman --runtime runc)
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

log() { printf 'image-build: %s\n' "$*" >&2; }
die() { printf 'image-build: error: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: scripts/image-build.sh [--tag REF] [--target STAGE] [--platform linux/ARCH] [--vendor-src DIR] [-- PODMAN-BUILD-ARGS…]"; }

IMAGE=${CNI_NODE_IMAGE:-localhost/cni-node:dev}
TARGET=""
PLATFORM=""
VENDOR_SRC=""
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || usage; IMAGE=$2; shift 2 ;;
    --tag=*) IMAGE=${1#*=}; shift ;;
    --target) [ $# -ge 2 ] || usage; TARGET=$2; shift 2 ;;
    --platform) [ $# -ge 2 ] || usage; PLATFORM=$2; shift 2 ;;
    --vendor-src) [ $# -ge 2 ] || usage; VENDOR_SRC=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) usage ;;
  esac
done
[ -n "$IMAGE" ] || die "empty image reference"

[ "$(id -u)" = 0 ] || die "must run as root (podman builds); run: sudo $0"
for cmd in podman runc; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is missing; run: sudo scripts/provision.sh"
done

# Base images: made by setup, never here.
if ! BASES=$(bash "$REPO/scripts/image-bases.sh" --check); then
  die "the local base images are missing (above); run: sudo scripts/image-bases.sh (or scripts/setup.sh)"
fi
eval "$BASES" # BUILD_BASE, RUNTIME_BASE, GO_BASE

if [ -z "$VENDOR_SRC" ]; then
  for d in "${CNI_NODE_VENDOR_SRC:-}" "$REPO/../shared/vendor-src" /work/shared/vendor-src; do
    if [ -n "$d" ] && compgen -G "$d/*.tar.gz" >/dev/null; then VENDOR_SRC=$(cd "$d" && pwd); break; fi
  done
fi
SRC_ARGS=()
if [ -n "$VENDOR_SRC" ]; then
  [ -d "$VENDOR_SRC" ] || die "--vendor-src $VENDOR_SRC is not a directory"
  SRC_ARGS=(--build-context "vendor-src=$VENDOR_SRC")
  log "plugin sources: the tarballs in $VENDOR_SRC (build context vendor-src)"
else
  log "plugin sources: NO vendor-src dir found (set CNI_NODE_VENDOR_SRC): the build clones them from GitHub"
fi

host_arch=$(uname -m)
case "$host_arch" in x86_64) host_arch=amd64 ;; aarch64) host_arch=arm64 ;; esac
# docker buildx predefines BUILDPLATFORM; podman 4.3 does not for FROM lines.
PLATFORM_ARGS=(--build-arg "BUILDPLATFORM=linux/$host_arch")
[ -z "$PLATFORM" ] || PLATFORM_ARGS+=(--platform "$PLATFORM")
TARGET_ARGS=()
[ -z "$TARGET" ] || TARGET_ARGS=(--target "$TARGET")

WORK=$(mktemp -d /var/tmp/cni-node-image-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

CA_ARGS=()
ca_file=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca_file" ]; then
  CA_ARGS=(-v "$ca_file:/run/extra-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/extra-ca.crt)
fi

# The JS bundle (not needed for the plugin stages).
BUNDLE_ARGS=()
case "$TARGET" in
  vendor-src|plugin-src|plugins) ;;
  *)
    BUNDLE_MODE=${CNI_NODE_IMAGE_BUNDLE:-auto}
    if [ "$BUNDLE_MODE" = auto ]; then
      registry=$(cd "$REPO" && npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
      probe_ca=()
      [ -f "$ca_file" ] && probe_ca=(-v "$ca_file:/run/extra-ca.crt:ro" -e NODE_EXTRA_CA_CERTS=/run/extra-ca.crt)
      if "${PODMAN[@]}" run --rm "${LIMITS[@]}" "${probe_ca[@]}" "$BUILD_BASE" \
           timeout 20 node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
           "${registry%/}/yaml" >/dev/null 2>&1; then
        BUNDLE_MODE=npm
      else
        BUNDLE_MODE=prebuilt
        log "*** the npm registry is NOT reachable from a build container: the bundle is the host's"
        log "*** npm run build output (BUNDLE_SOURCE=prebuilt), not npm ci inside the build"
      fi
    fi
    case "$BUNDLE_MODE" in
      npm) ;;
      prebuilt)
        # The project's own build (scripts/build.mjs) on the host, run in a copy of
        # the sources so that the work tree's dist/ and build/ are left alone.
        [ -d "$REPO/node_modules" ] || die "BUNDLE_SOURCE=prebuilt builds on the host and needs node_modules: run npm ci first"
        pre=$WORK/prebuilt
        mkdir -p "$pre/scripts"
        cp -a "$REPO/package.json" "$REPO/package-lock.json" "$REPO/tsconfig.json" "$REPO/src" "$REPO/bin" "$pre/"
        cp "$REPO/scripts/build.mjs" "$pre/scripts/"
        ln -s "$REPO/node_modules" "$pre/node_modules"
        (cd "$pre" && node scripts/build.mjs >"$WORK/prebuilt.log" 2>&1) \
          || { tail -n 30 "$WORK/prebuilt.log" >&2; die "the host build (scripts/build.mjs) failed"; }
        BUNDLE_ARGS=(--build-context "prebuilt=$pre") ;;
      *) die "CNI_NODE_IMAGE_BUNDLE must be npm, prebuilt or auto, not '$BUNDLE_MODE'" ;;
    esac
    BUNDLE_ARGS+=(--build-arg "BUNDLE_SOURCE=$BUNDLE_MODE")
    log "bundle: BUNDLE_SOURCE=$BUNDLE_MODE"
    ;;
esac

VERSION=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then REVISION="$REVISION-dirty"; fi
SOURCE=$(git -C "$REPO" config --get remote.origin.url 2>/dev/null || echo "file://$REPO")
# buildah 1.28 reuses a cached LABEL layer even when the ARG it expands changed
# (a new commit would keep the old revision label), so the same values are also
# given as --label, which podman applies after the cached steps.
LABEL_ARGS=(--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE"
  --label "org.opencontainers.image.version=$VERSION" --label "org.opencontainers.image.revision=$REVISION"
  --label "org.opencontainers.image.source=$SOURCE")

LOG_DIR=$CACHE_ROOT/image-build
mkdir -p "$LOG_DIR"
BUILD_LOG=$LOG_DIR/$(printf '%s' "$IMAGE" | tr -c 'A-Za-z0-9._-' '_').log
OLD_ID=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

log "podman build -t $IMAGE${TARGET:+ --target $TARGET}${PLATFORM:+ --platform $PLATFORM} (log: $BUILD_LOG)"
t0=$(date +%s%N)
if ! "${PODMAN[@]}" build "${LIMITS[@]}" --layers -f "$REPO/Dockerfile" -t "$IMAGE" \
    "${PLATFORM_ARGS[@]}" "${TARGET_ARGS[@]}" \
    --build-arg "BUILD_IMAGE=$BUILD_BASE" --build-arg "GO_IMAGE=$GO_BASE" --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
    "${SRC_ARGS[@]}" "${BUNDLE_ARGS[@]}" "${CA_ARGS[@]}" "${LABEL_ARGS[@]}" "${EXTRA[@]}" \
    "$REPO" >"$BUILD_LOG" 2>&1; then
  grep -h '^REFUSED ' "$BUILD_LOG" >&2 || tail -n 30 "$BUILD_LOG" >&2
  die "podman build of $IMAGE failed (full log: $BUILD_LOG)"
fi
NEW_ID=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE")
# The previous image of this tag is now untagged; drop it unless something else uses it.
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
  "${PODMAN[@]}" rmi "$OLD_ID" >/dev/null 2>&1 || true
fi
log "built $IMAGE (${NEW_ID:0:12}) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
printf '%s\n' "$IMAGE"
