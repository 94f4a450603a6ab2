#!/usr/bin/env bash
# The README's setup command. On a fresh Debian 12 machine, as root:
#   - Debian packages the tests use (real CNI plugins, iproute2, etcd, podman, …)
#   - Node.js 24 (what the image ships) first on PATH, so the suite runs on it
#   - the test kube-apiserver, built once per machine from Debian's source package
#   - the local base images of the image build (Debian + Node 24, a distroless-like
#     runtime, Debian + Go 1.23), made once per machine with debootstrap
#   - the image's Go plugins (Multus + the reference plugins, amd64 and arm64), built
#     once per machine into podman's layer cache, so `npm test` checks them quickly
#   - the project's npm dependencies and build (npm ci runs `npm run build`)
# Safe to run again: every step skips what is already done. Each step's time is
# printed (cold times on a 2-core machine: see BENCHMARKS.md, "Setting up").
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
  local name=$1 t0=$SECONDS; shift
  "$@"
  echo "setup.sh: $name: $((SECONDS - t0)) s"
}
warm_plugins() {
  local arch
  for arch in amd64 arm64; do
    bash scripts/image-build.sh --tag "localhost/cni-node-cache:plugins-$arch" --target plugins --platform "linux/$arch" >/dev/null
  done
}

step "Debian packages" bash scripts/provision.sh
step "Node.js 24" bash scripts/provision-node.sh
step "test kube-apiserver" bash scripts/test-cluster.sh provision
step "image base images" bash scripts/image-bases.sh >/dev/null
step "image Go plugins (amd64, arm64)" warm_plugins
step "npm ci" npm ci --no-audit --no-fund
echo "setup.sh: done. Run the tests with: npm test"
