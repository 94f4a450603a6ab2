#!/usr/bin/env bash
# Installs, from Debian's packages, everything the test suite needs on a fresh
# Debian 12 machine: the real CNI plugins, iproute2 for network namespaces, the
# tools that build Kubernetes and the container image, and what the single-node
# test cluster runs on (scripts/test-cluster.sh): containerd and runc, iptables and
# conntrack for kube-proxy, gcc and the static libc for the pause container,
# busybox-static for the test image, curl for the README's commands.
# Idempotent: safe to run again; apt skips what is already there.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "provision.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# kube-apiserver is built from Debian's source package, so apt must see deb-src.
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ] && grep -q '^Types: deb$' "$src"; then
  sed -i 's/^Types: deb$/Types: deb deb-src/' "$src"
fi

# bookworm-backports, as ../shared/RECIPES.md describes it ("A newer Go"): the same
# mirror and key as the bookworm entry. The image's Go base gets golang-1.23-go from
# there through its own apt sources (scripts/image-bases.sh); this host source lets
# `apt-cache policy golang-1.23-go` show what that base gets, and keeps a fresh
# machine like the ones this was developed on. Nothing from it is installed here.
bp=/etc/apt/sources.list.d/bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(awk '/^URIs:/ { print $2; exit }' "$src" 2>/dev/null || true)
  key=$(awk '/^Signed-By:/ { print $2; exit }' "$src" 2>/dev/null || true)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "${uri:-http://deb.debian.org/debian}" "${key:-/usr/share/keyrings/debian-archive-keyring.gpg}" >"$bp.tmp"
  mv "$bp.tmp" "$bp"
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  containernetworking-plugins iproute2 \
  etcd-server openssl golang-go rsync jq golang-github-modern-go-reflect2-dev \
  podman runc debootstrap ca-certificates git \
  containerd iptables conntrack gcc libc6-dev busybox-static curl \
  >/dev/null
echo "provision.sh: Debian packages installed"
