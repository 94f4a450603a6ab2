#!/usr/bin/env bash
# Installs, from Debian's packages, everything the test suite needs on a fresh
# Debian 12 machine: the real CNI plugins, iproute2 for network namespaces, and
# the tools that build the test kube-apiserver and the container image.
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

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  containernetworking-plugins iproute2 \
  etcd-server openssl golang-go rsync jq golang-github-modern-go-reflect2-dev \
  podman runc debootstrap ca-certificates \
  >/dev/null
echo "provision.sh: Debian packages installed"
