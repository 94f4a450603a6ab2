#!/usr/bin/env bash
# The README's setup command. On a fresh Debian 12 machine, as root:
#   - Debian packages the tests use (real CNI plugins, iproute2, etcd, podman, …)
#   - Node.js 24 (what the image ships) first on PATH, so the suite runs on it
#   - Kubernetes 1.20.2 (the test kube-apiserver and the single-node test cluster:
#     control plane, kubelet, kube-proxy, kubectl), built once per machine from
#     Debian's source package
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
image_bases() { bash scripts/image-bases.sh >/dev/null; }
# The native build exactly as scripts/image-build.sh makes it for the image (so the
# image build reuses its layers), and the other architecture as image-test.sh does.
warm_plugins() {
  local other=arm64
  [ "$(uname -m)" != aarch64 ] || other=amd64
  bash scripts/image-build.sh --tag localhost/cni-node-cache:plugins-native --target plugins >/dev/null
  bash scripts/image-build.sh --tag "localhost/cni-node-cache:plugins-$other" --target plugins --platform "linux/$other" >/dev/null
}

step "Debian packages" bash scripts/provision.sh
step "Node.js 24" bash scripts/provision-node.sh
step "Kubernetes 1.20.2 (6 binaries)" bash scripts/test-cluster.sh provision
step "image base images" image_bases
step "image Go plugins (native + cross)" warm_plugins
step "npm ci" npm ci --no-audit --no-fund
echo "setup.sh: done. Run the tests with: npm test"
