#!/usr/bin/env bash
# The README's setup command. On a fresh Debian 12 machine, as root:
#   - Debian packages the tests use (real CNI plugins, iproute2, etcd, podman, …)
#   - Node.js 24 (what the image ships) first on PATH, so the suite runs on it
#   - the test kube-apiserver, built once per machine from Debian's source package
#   - the project's npm dependencies and build (npm ci runs `npm run build`)
# Safe to run again: every step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision.sh
bash scripts/provision-node.sh
bash scripts/test-cluster.sh provision
npm ci --no-audit --no-fund
echo "setup.sh: done. Run the tests with: npm test"
