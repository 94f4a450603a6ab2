#!/usr/bin/env bash
# The container image, for real: builds the Dockerfile's default path offline
# (scripts/image-build.sh: local base images, the pinned plugin sources from the
# vendor-src tarballs), then checks
#   - what is in the image: multus, multus-cni (a hard link), the 18 reference
#     plugins, /opt/cni/SHA256SUMS, x86-64 ELF, no shell;
#   - from inside the image: every plugin answers CNI_COMMAND=VERSION, the reference
#     plugins report the pinned v1.7.1 and `multus -version` the pinned v4.2.2;
#   - the arm64 cross-build of the plugins stage: the same plugins, aarch64 ELF;
#   - the source verification: a tampered tarball, a tarball of another commit and a
#     clone of another commit are refused, naming the file; a clone of the pinned
#     commit gives the same tree as the tarball;
#   - the original cni-node README's `docker run` examples against temporary host
#     directories: files, modes, rendered pointers, exit codes;
#   - --pause: SIGUSR1 opens no inspector, SIGTERM stops it at once with exit 0.
#
#   sudo scripts/image-test.sh     (after sudo scripts/setup.sh, once)
#
# CNI_NODE_IMAGE: the tag to build (default localhost/cni-node:image-test); derived
# tags (…-plugins-arm64, …-src, …-clone) are made next to it.
# Prints PASS/FAIL per check, the image size and its parts, timings, and ends with
# "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

T0=$(date +%s%N)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
log() { printf '==> %s\n' "$*"; }
die() { printf 'image-test: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
IMAGE=${CNI_NODE_IMAGE:-localhost/cni-node:image-test}
PODMAN=(podman --runtime runc)
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
RUN=("${PODMAN[@]}" run --rm --network none "${LIMITS[@]}")
# The pins, as the Dockerfile states them (ARG NAME=value before the first FROM).
pin() {
  local v
  v=$(sed -n "s/^ARG $1=\(.*\)\$/\1/p" "$REPO/Dockerfile" | head -n1)
  [ -n "$v" ] || die "no 'ARG $1=' line in the Dockerfile"
  echo "$v"
}
MULTUS_VERSION=$(pin MULTUS_VERSION)
MULTUS_COMMIT=$(pin MULTUS_COMMIT)
MULTUS_TARBALL_SHA256=$(pin MULTUS_TARBALL_SHA256)
CNI_PLUGINS_VERSION=$(pin CNI_PLUGINS_VERSION)
CNI_PLUGINS_COMMIT=$(pin CNI_PLUGINS_COMMIT)
MULTUS_TARBALL=multus-cni-$MULTUS_VERSION.tar.gz
CNI_PLUGINS_TARBALL=cni-plugins-$CNI_PLUGINS_VERSION.tar.gz
REFERENCE_PLUGINS="bandwidth bridge dhcp dummy firewall host-device host-local ipvlan loopback macvlan portmap ptp sbr static tap tuning vlan vrf"
EXPECTED_PLUGINS=$(printf '%s\n' $REFERENCE_PLUGINS multus multus-cni | LC_ALL=C sort)


# ---------------------------------------------------------------------------
# Preflight: tell the user what is missing instead of failing obscurely.
[ "$(id -u)" = 0 ] || die "must run as root (podman builds and bind mounts); run: sudo $0"
missing=()
for cmd in podman runc jq git nsenter ss od sha256sum node; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; run: sudo scripts/setup.sh"
VENDOR_SRC=""
for d in "${CNI_NODE_VENDOR_SRC:-}" "$REPO/../shared/vendor-src" /work/shared/vendor-src; do
  if [ -n "$d" ] && [ -f "$d/$MULTUS_TARBALL" ] && [ -f "$d/$CNI_PLUGINS_TARBALL" ]; then
    VENDOR_SRC=$(cd "$d" && pwd); break
  fi
done
[ -n "$VENDOR_SRC" ] || die "the pinned source tarballs ($MULTUS_TARBALL, $CNI_PLUGINS_TARBALL) were not found; set CNI_NODE_VENDOR_SRC to their dir"

# IMAGE with SUFFIX appended to its tag.
derived() {
  case "${IMAGE##*/}" in
    *:*) echo "$IMAGE-$1" ;;
    *) echo "$IMAGE:latest-$1" ;;
  esac
}
ARM_IMAGE=$(derived plugins-arm64)
SRC_IMAGE=$(derived src)
CLONE_IMAGE=$(derived clone)

WORK=$(mktemp -d /var/tmp/cni-node-image-test.XXXXXX)
CONTAINERS=()
MOUNTED=()
cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  for c in "${MOUNTED[@]}"; do "${PODMAN[@]}" image unmount "$c" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
  if "$@"; then pass "$name"; else fail "$name" "command: ${LAST_CMD:-}" "exit: ${RC:-}" "stdout: $(head -c 1200 "$WORK/out" 2>/dev/null)" "stderr: $(head -c 1200 "$WORK/err" 2>/dev/null)"; fi
}
# build NAME ARGS… : scripts/image-build.sh ARGS…; sets RC, stdout/stderr in $WORK/out, $WORK/err.
build() {
  LAST_CMD="scripts/image-build.sh $*"
  set +e
  bash "$REPO/scripts/image-build.sh" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  set -e
}
mount_image() { # IMAGE → prints its mounted rootfs
  local root
  root=$("${PODMAN[@]}" image mount "$1")
  MOUNTED+=("$1")
  echo "$root"
}
# elf_machine FILE → x86-64 | aarch64 | other:<hex> | not-elf | not-64-bit-le
elf_machine() {
  local h
  h=$(od -An -tx1 -N20 "$1" | tr -d ' \n')
  [ "${h:0:8}" = 7f454c46 ] || { echo not-elf; return; }
  [ "${h:8:4}" = 0201 ] || { echo not-64-bit-le; return; }
  case "${h:36:4}" in 3e00) echo x86-64 ;; b700) echo aarch64 ;; *) echo "other:${h:36:4}" ;; esac
}
export -f elf_machine
jqc() { jq -e "$@" >/dev/null; }
# all_elf DIR MACHINE: every file in DIR is a 64-bit LE ELF for MACHINE.
all_elf() {
  local f ok=0
  for f in "$1"/*; do
    if [ "$(elf_machine "$f")" != "$2" ]; then echo "$(basename "$f"): $(elf_machine "$f")" >>"$WORK/err"; ok=1; fi
  done
  return $ok
}

# ---------------------------------------------------------------------------
# Build: the default path, the same script the cluster tests use.
log "scripts/image-build.sh --tag $IMAGE (vendor-src: $VENDOR_SRC)"
T_BUILD=$(date +%s%N)
if ! CNI_NODE_VENDOR_SRC=$VENDOR_SRC bash "$REPO/scripts/image-build.sh" --tag "$IMAGE" >"$WORK/ref"; then
  die "scripts/image-build.sh failed (above)"
fi
BUILD_MS=$(ms_since "$T_BUILD")
[ "$(cat "$WORK/ref")" = "$IMAGE" ] || die "scripts/image-build.sh printed '$(cat "$WORK/ref")', not $IMAGE"
SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
VERSION=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then REVISION="$REVISION-dirty"; fi
SOURCE=$(git -C "$REPO" config --get remote.origin.url 2>/dev/null || echo "file://$REPO")
log "built $IMAGE in ${BUILD_MS} ms"

ROOT=$(mount_image "$IMAGE")
IMG_BIN=$ROOT/opt/cni/bin

# -- the image itself
LAST_CMD="podman image inspect IMAGE"; RC=""
: >"$WORK/out"; : >"$WORK/err"
check "image: ENTRYPOINT is exec-form node --disable-sigusr1 + the footprint's V8 flags on the bundle, CMD empty" \
  test "$("${PODMAN[@]}" image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$IMAGE")" \
  = '["/nodejs/bin/node","--disable-sigusr1","--no-opt","--no-maglev","--no-sparkplug","--max-semi-space-size=1","/app/dist/cni-node.mjs"] null'
check "image: no shell, no apt/dpkg, no npm, no node_modules" \
  bash -c '! compgen -G "$1/bin/*sh" >/dev/null && ! compgen -G "$1/usr/bin/*sh" >/dev/null && for f in usr/bin/apt-get usr/bin/dpkg usr/bin/apt bin/sh usr/bin/npm usr/local/bin/npm app/node_modules; do [ ! -e "$1/$f" ] && [ ! -L "$1/$f" ] || exit 1; done' _ "$ROOT"
check "image: /app holds only dist/, bin/, package.json" \
  test "$(cd "$ROOT/app" && ls -A | tr '\n' ' ')" = "bin dist package.json "
check "image: /opt holds only cni/bin and cni/SHA256SUMS" \
  test "$(cd "$ROOT/opt" && find . -mindepth 1 -maxdepth 2 | LC_ALL=C sort | tr '\n' ' ')" = "./cni ./cni/SHA256SUMS ./cni/bin "
check "image: OCI labels version/revision/source" \
  test "$("${PODMAN[@]}" image inspect --format '{{index .Labels "org.opencontainers.image.version"}}|{{index .Labels "org.opencontainers.image.revision"}}|{{index .Labels "org.opencontainers.image.source"}}' "$IMAGE")" \
  = "$VERSION|$REVISION|$SOURCE"
ls -A "$IMG_BIN" | LC_ALL=C sort >"$WORK/out"
check "image: /opt/cni/bin is exactly multus, multus-cni and the 18 reference plugins" \
  test "$(cat "$WORK/out")" = "$EXPECTED_PLUGINS"
check "image: multus-cni is a hard link to multus (one inode, 2 links: no second copy in the layer)" \
  bash -c '[ "$(stat -c "%i %h" "$1/multus")" = "$(stat -c "%i %h" "$1/multus-cni")" ] && [ "$(stat -c %h "$1/multus")" = 2 ]' _ "$IMG_BIN"
check "image: every plugin a regular file, root:root, mode 0755" \
  bash -c '[ -z "$(find "$1" -mindepth 1 \( ! -type f -o ! -perm 0755 -o ! -user 0 -o ! -group 0 \))" ]' _ "$IMG_BIN"
check "image: /opt/cni/SHA256SUMS lists every plugin once and matches" \
  bash -c '(cd "$1" && sha256sum --quiet --strict -c ../SHA256SUMS) && [ "$(awk "{ print \$2 }" "$1/../SHA256SUMS" | LC_ALL=C sort)" = "$2" ]' _ "$IMG_BIN" "$EXPECTED_PLUGINS"
: >"$WORK/err"
check "image: every plugin is an x86-64 ELF (amd64 build)" all_elf "$IMG_BIN" x86-64
check "image: multus is the size of a stripped Go binary (30–60 MB), not a stub" \
  bash -c 's=$(stat -c %s "$1/multus"); [ "$s" -gt 30000000 ] && [ "$s" -lt 60000000 ]' _ "$IMG_BIN"
check "image: a shell cannot be run in it" \
  bash -c '! "$@" >/dev/null 2>&1' _ "${RUN[@]}" --entrypoint /bin/sh "$IMAGE" -c true

# -- from inside the image: every plugin's VERSION answer and version string
cat >"$WORK/versions.js" <<'EOF'
// Runs in the image (no shell there): each plugin with CNI_COMMAND=VERSION, each
// without CNI_COMMAND (its "about" line on stderr), and `multus -version`.
const { spawnSync } = require('node:child_process');
const { readdirSync } = require('node:fs');
const dir = '/opt/cni/bin';
const run = (file, args, env) => {
  const r = spawnSync(`${dir}/${file}`, args, { env, input: '', timeout: 10000, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, error: r.error?.message };
};
const out = {};
for (const name of readdirSync(dir).sort()) {
  out[name] = {
    version: run(name, [], { CNI_COMMAND: 'VERSION' }),
    about: run(name, [], {}),
    flag: name.startsWith('multus') ? run(name, ['-version'], {}) : undefined,
  };
}
console.log(JSON.stringify(out));
EOF
LAST_CMD="podman run --entrypoint /nodejs/bin/node -v versions.js IMAGE /versions.js"
set +e
"${RUN[@]}" --entrypoint /nodejs/bin/node -v "$WORK/versions.js:/versions.js:ro" "$IMAGE" /versions.js >"$WORK/out" 2>"$WORK/err"
RC=$?
set -e
cp "$WORK/out" "$WORK/versions.json"
check "inside the image: the version probe ran (node spawning every plugin), exit 0" \
  bash -c '[ "$1" = 0 ] && jq -e . "$2" >/dev/null' _ "$RC" "$WORK/versions.json"
check "inside the image: every plugin answers CNI_COMMAND=VERSION (exit 0, JSON, supports CNI 1.0.0 and 1.1.0)" \
  jqc --argjson n 20 '(keys | length) == $n and all(.[]; .version.status == 0
    and (.version.stdout | fromjson | (.supportedVersions | index("1.0.0") != null and index("1.1.0") != null)))' "$WORK/versions.json"
check "inside the image: the 18 reference plugins say 'CNI <name> plugin $CNI_PLUGINS_VERSION'" \
  jqc --arg v "$CNI_PLUGINS_VERSION" --arg names "$REFERENCE_PLUGINS" \
    '. as $root | all($names | split(" ")[]; . as $p | $root[$p].about.stderr | test("^CNI " + $p + " plugin " + $v + "\n"))' "$WORK/versions.json"
check "inside the image: multus -version reports $MULTUS_VERSION at commit $MULTUS_COMMIT (multus-cni the same)" \
  jqc --arg v "$MULTUS_VERSION" --arg c "$MULTUS_COMMIT" \
    'all(.multus, .["multus-cni"]; .flag.status == 0 and (.flag.stdout | test("^multus: version:" + $v + "\\(clean,released\\), commit:" + $c + ", date:20")))' "$WORK/versions.json"
for p in bridge multus; do
  printf '     %s: %s' "$p" "$(jq -r --arg p "$p" '.[$p] | (.about.stderr | split("\n")[0]) + " | " + (.flag.stdout // "" | rtrimstr("\n")) + " | VERSION " + (.version.stdout | rtrimstr("\n"))' "$WORK/versions.json")"
  echo
done

# ---------------------------------------------------------------------------
# arm64: the plugins stage cross-built on this amd64 machine (pure Go, no emulation).
log "arm64 cross-build: --platform linux/arm64 --target plugins → $ARM_IMAGE"
T_ARM=$(date +%s%N)
build --tag "$ARM_IMAGE" --platform linux/arm64 --target plugins --vendor-src "$VENDOR_SRC"
ARM_MS=$(ms_since "$T_ARM")
check "arm64: the plugins stage cross-builds (scripts/image-build.sh --platform linux/arm64 --target plugins)" test "$RC" = 0
if [ "$RC" = 0 ]; then
  ARM_BIN=$(mount_image "$ARM_IMAGE")/out/opt/cni/bin
  ls -A "$ARM_BIN" | LC_ALL=C sort >"$WORK/out"; : >"$WORK/err"
  check "arm64: the same plugin names as the amd64 image" test "$(cat "$WORK/out")" = "$EXPECTED_PLUGINS"
  check "arm64: every plugin is an aarch64 ELF" all_elf "$ARM_BIN" aarch64
  check "arm64: SHA256SUMS matches, multus-cni a hard link, and no binary equal to its amd64 twin" \
    bash -c '(cd "$1" && sha256sum --quiet --strict -c ../SHA256SUMS) && [ "$(stat -c %i "$1/multus")" = "$(stat -c %i "$1/multus-cni")" ] \
      && for f in "$1"/*; do ! cmp -s "$f" "$2/$(basename "$f")" || exit 1; done' _ "$ARM_BIN" "$IMG_BIN"
fi

# ---------------------------------------------------------------------------
# Source verification: only the plugin-src stage is built (seconds), without the
# layer cache so that the check really runs every time.
log "source verification (target plugin-src)"
T_SRC=$(date +%s%N)
build --tag "$SRC_IMAGE" --target plugin-src --vendor-src "$VENDOR_SRC"
check "source: the pinned tarballs pass verification (target plugin-src)" test "$RC" = 0

mkdir -p "$WORK/tampered"
cp "$VENDOR_SRC/$MULTUS_TARBALL" "$VENDOR_SRC/$CNI_PLUGINS_TARBALL" "$WORK/tampered/"
tf=$WORK/tampered/$MULTUS_TARBALL
chmod u+w "$tf"
off=$(( $(stat -c %s "$tf") / 2 ))
byte=$(od -An -tu1 -j "$off" -N1 "$tf" | tr -d ' ')
printf "$(printf '\\%03o' $(( byte ^ 1 )))" | dd of="$tf" bs=1 seek="$off" conv=notrunc status=none
build --tag "$(derived refused)" --target plugin-src --vendor-src "$WORK/tampered" -- --no-cache --layers=false
check "source: a tarball with one byte changed is refused; the message names the file and its sha256" \
  bash -c '[ "$1" != 0 ] && grep -q "^REFUSED $3: sha256 is [0-9a-f]\{64\}, pinned $4\$" "$2"' _ "$RC" "$WORK/err" "$MULTUS_TARBALL" "$MULTUS_TARBALL_SHA256"

# A tarball of another commit, its sha256 pinned: only the commit check can stop it.
mkdir -p "$WORK/other-commit"
other=$(echo "$CNI_PLUGINS_COMMIT" | rev)
node -e '
  const zlib = require("node:zlib"), fs = require("node:fs");
  const [src, dst, from, to] = process.argv.slice(1);
  const tar = zlib.gunzipSync(fs.readFileSync(src));
  const at = tar.indexOf(Buffer.from(from));
  if (at < 0 || at > 1024) throw new Error("commit id not in the pax header");
  Buffer.from(to).copy(tar, at);
  fs.writeFileSync(dst, zlib.gzipSync(tar));' \
  "$VENDOR_SRC/$CNI_PLUGINS_TARBALL" "$WORK/other-commit/$CNI_PLUGINS_TARBALL" "$CNI_PLUGINS_COMMIT" "$other"
cp "$VENDOR_SRC/$MULTUS_TARBALL" "$WORK/other-commit/"
other_sha=$(sha256sum <"$WORK/other-commit/$CNI_PLUGINS_TARBALL" | cut -d' ' -f1)
build --tag "$(derived refused)" --target plugin-src --vendor-src "$WORK/other-commit" -- --no-cache --layers=false --build-arg "CNI_PLUGINS_TARBALL_SHA256=$other_sha"
check "source: a tarball of another commit is refused even with its sha256 pinned; the message names the file and both commits" \
  bash -c '[ "$1" != 0 ] && grep -qF "REFUSED $5: git archive commit is $3, pinned $4 ($6)" "$2"' \
  _ "$RC" "$WORK/err" "$other" "$CNI_PLUGINS_COMMIT" "$CNI_PLUGINS_TARBALL" "$CNI_PLUGINS_VERSION"

# The clone path, offline: a git repository made from the tarball's tree, tag v1.7.1,
# served as file:// from the build context; no plugins tarball there, so the
# Dockerfile clones it. Its commit is not the pinned one: refused. With that commit
# pinned instead, it passes, and the tree is the tarball's.
mkdir -p "$WORK/clone-ctx" "$WORK/clone-work"
cp "$VENDOR_SRC/$MULTUS_TARBALL" "$WORK/clone-ctx/"
tar -xzf "$VENDOR_SRC/$CNI_PLUGINS_TARBALL" -C "$WORK/clone-work"
(
  cd "$WORK/clone-work"/*/
  export GIT_AUTHOR_NAME=image-test GIT_AUTHOR_EMAIL=image-test@localhost GIT_COMMITTER_NAME=image-test \
    GIT_COMMITTER_EMAIL=image-test@localhost GIT_AUTHOR_DATE=@1700000000 GIT_COMMITTER_DATE=@1700000000
  git init -q && git add -A -f && git commit -q -m "$CNI_PLUGINS_VERSION" && git tag "$CNI_PLUGINS_VERSION"
  git clone -q --bare . "$WORK/clone-ctx/plugins.git"
)
local_commit=$(git -C "$WORK/clone-ctx/plugins.git" rev-parse "$CNI_PLUGINS_VERSION^{commit}")
build --tag "$(derived refused)" --target plugin-src --vendor-src "$WORK/clone-ctx" -- --no-cache --layers=false --build-arg CNI_PLUGINS_REPO=file:///vendor-src/plugins.git
check "source: a clone whose tag is not the pinned commit is refused; the message names the repository and both commits" \
  bash -c '[ "$1" != 0 ] && grep -qF "REFUSED file:///vendor-src/plugins.git: tag $5 is commit $3, pinned $4" "$2"' \
  _ "$RC" "$WORK/err" "$local_commit" "$CNI_PLUGINS_COMMIT" "$CNI_PLUGINS_VERSION"
build --tag "$CLONE_IMAGE" --target plugin-src --vendor-src "$WORK/clone-ctx" -- --no-cache --layers=false \
  --build-arg CNI_PLUGINS_REPO=file:///vendor-src/plugins.git --build-arg "CNI_PLUGINS_COMMIT=$local_commit"
clone_rc=$RC
build_log=$(sed -n 's/.*(log: \(.*\))$/\1/p' "$WORK/err" | tail -n1)
check "source: a clone of the pinned commit is taken (git clone --depth 1 --branch, HEAD verified); multus still from its tarball" \
  bash -c '[ "$1" = 0 ] && grep -qx "plugins: git clone --depth 1 --branch $4 file:///vendor-src/plugins.git" "$2" \
    && grep -qx "plugins: $4, commit $3, verified" "$2" && grep -qx "multus: $5 from the vendor-src build context" "$2"' \
  _ "$RC" "$build_log" "$local_commit" "$CNI_PLUGINS_VERSION" "$MULTUS_TARBALL"
if [ "$clone_rc" = 0 ] && "${PODMAN[@]}" image exists "$SRC_IMAGE"; then
  a=$(mount_image "$SRC_IMAGE")/src/plugins b=$(mount_image "$CLONE_IMAGE")/src/plugins
  LAST_CMD="diff -r <tarball tree> <clone tree>"; RC=""
  diff -rq "$a" "$b" >"$WORK/out" 2>"$WORK/err" || true
  check "source: the cloned tree and the tarball's tree are the same files, byte for byte (the steps after are one path)" \
    bash -c '[ ! -s "$1" ] && [ "$(find "$2" -type f | wc -l)" -gt 1000 ]' _ "$WORK/out" "$a"
fi
SRC_MS=$(ms_since "$T_SRC")

# ---------------------------------------------------------------------------
# The original README's docker-run examples.

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

# -- docker run --rm IMAGE → usage on stderr, exit 2
cli --
check "run without arguments: usage on stderr, nothing on stdout, exit 2" \
  bash -c '[ "$1" = 2 ] && grep -qi "usage" "$2/err" && [ ! -s "$2/out" ]' _ "$RC" "$WORK"

# -- version
cli -- version
check "version prints $VERSION, exit 0" bash -c '[ "$1" = 0 ] && grep -qF -- "$2" "$3/out"' _ "$RC" "$VERSION" "$WORK"

# -- list → plugin names, sorted, one per line
cli -- list
check "list: multus, multus-cni and the 18 plugins, sorted, one per line, exit 0" \
  bash -c '[ "$1" = 0 ] && [ "$(cat "$2/out")" = "$3" ]' _ "$RC" "$WORK" "$EXPECTED_PLUGINS"

H=$WORK/host
mkdir -p "$H/bin" "$H/net.d" "$WORK/tpl"
VBIN=(-v "$H/bin:/host/opt/cni/bin")

# -- install --plugins=flannel,ipvlan: the original's words; flannel is not a
#    reference plugin any more (Flannel ships its own), so nothing is installed.
cli "${VBIN[@]}" -- install --plugins=flannel,ipvlan
check "install --plugins=flannel,ipvlan (the original's example): exit 1, names flannel, node dir unchanged" \
  bash -c '[ "$1" = 1 ] && grep -q flannel "$2/err" && [ -z "$(node_files "$3")" ]' _ "$RC" "$WORK" "$H/bin"

# -- install --plugins=bridge,ipvlan with -v HOST/bin:/host/opt/cni/bin
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
"$H/bin/bridge" >"$WORK/out" 2>"$WORK/err" </dev/null || true
LAST_CMD="HOST/bin/bridge (no CNI_COMMAND)"; RC=""
check "install: the bridge on the node runs on the host and says $CNI_PLUGINS_VERSION" grep -q "^CNI bridge plugin $CNI_PLUGINS_VERSION\$" "$WORK/err"
cli "${VBIN[@]}" -- uninstall --plugins=bridge,ipvlan
check "uninstall --plugins=bridge,ipvlan: exit 0, node dir empty" \
  bash -c '[ "$1" = 0 ] && [ -z "$(node_files "$2")" ]' _ "$RC" "$H/bin"

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

# -- apply --plugins=multus-cni,macvlan:host-device,multus-cni,ipvlan (the original's example, word for word)
cli "${VBIN[@]}" -- install --plugins=host-device,multus-cni,ipvlan
check "install --plugins=host-device,multus-cni,ipvlan (the 'current' state of the apply example): exit 0" test "$RC" = 0
check "install: multus-cni on the node is a regular file, mode 0755, the image's multus bytes" \
  bash -c '[ -f "$1/multus-cni" ] && [ ! -L "$1/multus-cni" ] && [ "$(stat -c %a "$1/multus-cni")" = 755 ] && cmp -s "$1/multus-cni" "$2/multus"' _ "$H/bin" "$IMG_BIN"
"$H/bin/multus-cni" -version >"$WORK/out" 2>"$WORK/err" </dev/null || true
LAST_CMD="HOST/bin/multus-cni -version"; RC=""
check "install: the multus-cni on the node runs on the host and says $MULTUS_VERSION" grep -q "^multus: version:$MULTUS_VERSION(" "$WORK/out"
multus_before=$(stamp "$H/bin/multus-cni")
sleep 0.05
cli "${VBIN[@]}" -- apply --plugins=multus-cni,macvlan:host-device,multus-cni,ipvlan
check "apply --plugins=multus-cni,macvlan:host-device,multus-cni,ipvlan: exit 0" test "$RC" = 0
check "apply: macvlan installed (mode 0755, image's bytes), ipvlan and host-device removed" \
  bash -c 'cmp -s "$1/macvlan" "$2/macvlan" && [ "$(stat -c %a "$1/macvlan")" = 755 ] && [ ! -e "$1/ipvlan" ] && [ ! -e "$1/host-device" ]' _ "$H/bin" "$IMG_BIN"
check "apply: multus-cni not touched (same inode, mtime, size)" test "$(stamp "$H/bin/multus-cni")" = "$multus_before"
check "apply: node plugins dir is exactly macvlan, multus-cni" \
  bash -c '[ "$(node_files "$1")" = "macvlan multus-cni " ]' _ "$H/bin"

# -- uninstall
cli "${VBIN[@]}" -- uninstall --plugins=multus-cni,macvlan
check "uninstall --plugins=multus-cni,macvlan: exit 0, both removed" \
  bash -c '[ "$1" = 0 ] && [ ! -e "$2/macvlan" ] && [ ! -e "$2/multus-cni" ] && [ -z "$(node_files "$2")" ]' _ "$RC" "$H/bin"
cli "${VCONF[@]}" -- uninstall --configs=05-multus.conf,10-ipvlan.conf
check "uninstall --configs=05-multus.conf,10-ipvlan.conf: exit 0, both removed, 10-calico.conflist kept" \
  bash -c '[ "$1" = 0 ] && [ ! -e "$2/05-multus.conf" ] && [ ! -e "$2/10-ipvlan.conf" ] && [ "$(stat -c "%i %y %s" "$2/10-calico.conflist")" = "$3" ]' \
  _ "$RC" "$H/net.d" "$calico_before"

# -- errors reach the user with the right exit codes
cli -- install --no-such-option
check "unknown option: 'Unknown option: --no-such-option', exit 2" \
  bash -c '[ "$1" = 2 ] && grep -qF "Unknown option: --no-such-option" "$2/err"' _ "$RC" "$WORK"

# -- kube-watch entry point
cli --entrypoint /nodejs/bin/node -- /app/bin/kube-watch version
check "kube-watch entry point (/app/bin/kube-watch version): exit 0" test "$RC" = 0

# -- --pause: the container keeps running after the action; SIGUSR1 opens no
#    inspector (and does not stop it); SIGTERM stops it within 2 s, exit 0.
# listeners PID → the TCP ports listening in that process's network namespace.
listeners() { nsenter -t "$1" -n ss -Hltn 2>/dev/null | awk '{ print $4 }' | tr '\n' ' '; }
# First, that the probe sees an inspector when there is one.
INSPECT_NAME=cni-node-image-test-$$-inspect
CONTAINERS+=("$INSPECT_NAME")
"${PODMAN[@]}" run -d --name "$INSPECT_NAME" --network none "${LIMITS[@]}" --entrypoint /nodejs/bin/node \
  "$IMAGE" --inspect=127.0.0.1:9229 -e 'setInterval(() => {}, 1000)' >/dev/null
seen=""
for _ in $(seq 1 50); do
  pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$INSPECT_NAME" 2>/dev/null || echo 0)
  [ "$pid" -gt 0 ] && seen=$(listeners "$pid") && case "$seen" in *:9229*) break ;; esac
  sleep 0.1
done
LAST_CMD="nsenter -t PID -n ss -Hltn (container with node --inspect)"; RC=""; echo "$seen" >"$WORK/out"; : >"$WORK/err"
check "control: the listener probe sees node --inspect on 127.0.0.1:9229 in a container" \
  bash -c 'case "$1" in *127.0.0.1:9229*) exit 0 ;; *) exit 1 ;; esac' _ "$seen"
"${PODMAN[@]}" rm -f -t 0 "$INSPECT_NAME" >/dev/null 2>&1 || true

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
pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$PAUSE_NAME" 2>/dev/null || echo 0)
"${PODMAN[@]}" kill --signal USR1 "$PAUSE_NAME" >/dev/null 2>&1 || true
sleep 1.5
after_usr1=$("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$PAUSE_NAME" 2>/dev/null || echo gone)
open=""; [ "$pid" -gt 0 ] && open=$(listeners "$pid")
"${PODMAN[@]}" logs "$PAUSE_NAME" >"$WORK/out" 2>"$WORK/err" || true
LAST_CMD="podman kill --signal USR1 (pid $pid); ss: '$open'"; RC="$after_usr1"
check "--pause: SIGUSR1 opens no inspector (nothing listens in the container, no 'Debugger listening') and the container keeps running" \
  bash -c '[ "$1" = running ] && [ -z "$2" ] && ! grep -qi "debugger listening" "$3/out" "$3/err"' _ "$after_usr1" "$open" "$WORK"
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
# What the image is made of (for BENCHMARKS.md).
part() { # NAME PATH…  (sizes of regular files; a hard link counted once)
  local name=$1; shift
  printf 'Image part: %-48s %7.2f MB\n' "$name" "$(find "$@" -type f -printf '%i %s\n' 2>/dev/null | sort -u | awk '{ s += $2 } END { print s / 1000000 }')"
}
TOTAL_MS=$(ms_since "$T0")
printf '\nImage: %s\n' "$IMAGE"
printf 'Image size: %s bytes (%s MB)\n' "$SIZE" "$(awk -v s="$SIZE" 'BEGIN { printf "%.1f", s / 1000000 }')"
part "node (/nodejs/bin/node)" "$ROOT/nodejs"
part "multus (+ multus-cni, a hard link)" "$IMG_BIN/multus"
part "18 reference plugins" $(for p in $REFERENCE_PLUGINS; do echo "$IMG_BIN/$p"; done)
part "cni-node bundle (/app/dist, bin, package.json)" "$ROOT/app"
part "  of which loaded at start (dist/cni-node.mjs)" "$ROOT/app/dist/cni-node.mjs"
part "shared libraries (/lib, /usr/lib …)" "$ROOT/lib" "$ROOT/lib64" "$ROOT/usr"
part "everything else (/etc, SHA256SUMS …)" "$ROOT/etc" "$ROOT/opt/cni/SHA256SUMS" "$ROOT/home" "$ROOT/root" "$ROOT/tmp" "$ROOT/var"
printf 'Timings: build %s ms, arm64 plugins %s ms, source checks %s ms, total %s ms\n' "$BUILD_MS" "$ARM_MS" "$SRC_MS" "$TOTAL_MS"
printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
[ "$FAILED" = 0 ]
