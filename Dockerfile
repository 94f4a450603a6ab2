# syntax=docker/dockerfile:1
# cni-node container image.
#
#   docker build -t cni-node .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/cni-node .
#   docker run --rm cni-node list
#
# Stages:
#   vendor-src  empty, unless replaced with `--build-context vendor-src=DIR`: DIR holds
#               the pinned upstream source tarballs, for builds with no internet.
#   build       npm ci + npm run build; keeps only dist/ (the self-contained esbuild
#               bundle), bin/ and package.json. No node_modules reach the image.
#   plugin-src  the pinned upstream sources of Multus and of the reference CNI plugins,
#               verified: from vendor-src when the tarball is there, else by git clone.
#   plugins     builds them from that source with Go for TARGETARCH; one path whatever
#               the source came from.
#   (final)     RUNTIME_IMAGE (distroless Node.js 24: no shell, no package manager)
#               + /opt/cni + /app. ENTRYPOINT is node on the bundle, so the original's
#               `docker run IMAGE <command> …` examples work unchanged.
#
# Two architectures: the build, plugin-src and plugins stages run on BUILDPLATFORM
# and Go cross-compiles for TARGETARCH (amd64, arm64); the final stage only copies
# files, so a multi-platform build needs no emulation.
#
# Build arguments (all optional; the defaults are the published build):
#   BUILD_IMAGE     node 24 + npm + a POSIX shell (default node:24-bookworm-slim)
#   GO_IMAGE        Go ≥ 1.23.4 + git + a POSIX shell (default golang:1.23-bookworm)
#   RUNTIME_IMAGE   node 24 at /nodejs/bin/node (default distroless nodejs24-debian12)
#   BUNDLE_SOURCE   npm (default: npm ci + npm run build inside the build) |
#                   prebuilt (copy an already built dist/ from the named context
#                   `prebuilt`, for machines whose builds cannot reach the npm registry)
#   VERSION, REVISION, SOURCE  → OCI labels org.opencontainers.image.{version,revision,source}
#   NODE_EXTRA_CA_CERTS  path of an extra CA bundle *inside the build container*, for
#                   builds behind a TLS-intercepting proxy (mount the file with
#                   `podman build -v HOSTFILE:/run/extra-ca.crt:ro` and pass that path)
#   The pins below (MULTUS_*, CNI_PLUGINS_*): see docs/image.md, "Bumping a pinned version".
#
# Offline build (what scripts/image-build.sh does):
#   podman build --build-context vendor-src=/path/to/vendor-src \
#     --build-arg BUILD_IMAGE=localhost/… --build-arg GO_IMAGE=localhost/… \
#     --build-arg RUNTIME_IMAGE=localhost/… .
#   The tarballs are named multus-cni-<MULTUS_VERSION>.tar.gz and
#   cni-plugins-<CNI_PLUGINS_VERSION>.tar.gz, each made by `git archive` of the tag.
#
# Plugin names. The original image shipped Multus as `multus-cni`, and its users'
# ConfigMaps and `apply --plugins=multus-cni,…` lists use that name; current Multus
# releases call the thin plugin `multus`. The image ships both names: `multus-cni`
# is a hard link to `multus`, so the second name costs no space in the layer (a copy
# would add the whole binary again), and unlike a symbolic link it is an ordinary
# regular file to every reader, so `install --plugins=multus-cni` puts a real binary
# on the node under the name the user asked for.

ARG BUILD_IMAGE=docker.io/library/node:24-bookworm-slim
ARG GO_IMAGE=docker.io/library/golang:1.23-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12

# The pins. A source is used only if it is exactly this commit: a clone must check
# out MULTUS_COMMIT at tag MULTUS_VERSION, and a tarball must have the sha256
# MULTUS_TARBALL_SHA256 and carry MULTUS_COMMIT as its `git archive` commit id.
# Multus v4.2.2 and plugins v1.7.1 are the newest tags that build with Go 1.23.
ARG MULTUS_REPO=https://github.com/k8snetworkplumbingwg/multus-cni.git
ARG MULTUS_VERSION=v4.2.2
ARG MULTUS_COMMIT=00adf22482945de41ff702258593aaf867a48e2d
ARG MULTUS_TARBALL_SHA256=a3abbca82f5ad449d5dd03caa285fbaa530e49f7d9e3bf1dca8da797e08a61cf
ARG CNI_PLUGINS_REPO=https://github.com/containernetworking/plugins.git
ARG CNI_PLUGINS_VERSION=v1.7.1
ARG CNI_PLUGINS_COMMIT=a5d507e2b884d8bd6a001c9e5a9118113ffef444
ARG CNI_PLUGINS_TARBALL_SHA256=2ddfed29f36dca32f52fc9058ad608433408d3e2a4399ae3354fe5d741bcedf5

# Empty unless replaced with `--build-context vendor-src=DIR` (offline source tarballs).
FROM scratch AS vendor-src
# Empty unless replaced with `--build-context prebuilt=DIR`, DIR holding dist/ (BUNDLE_SOURCE=prebuilt).
FROM scratch AS prebuilt

# ---------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM ${BUILD_IMAGE} AS build
ARG BUNDLE_SOURCE=npm
ARG NODE_EXTRA_CA_CERTS
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script would run the whole build once more;
# esbuild finds its platform binary without its postinstall step.
RUN if [ "$BUNDLE_SOURCE" = npm ]; then \
      npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn; \
    fi
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/
COPY src/ src/
COPY bin/ bin/
COPY --from=prebuilt / /tmp/prebuilt/
RUN set -eu; \
    case "$BUNDLE_SOURCE" in \
      npm) npm run build ;; \
      prebuilt) \
        if [ ! -f /tmp/prebuilt/dist/cni-node.mjs ]; then \
          echo "BUNDLE_SOURCE=prebuilt needs --build-context prebuilt=DIR with DIR/dist/cni-node.mjs" >&2; exit 1; \
        fi; \
        rm -rf dist; cp -a /tmp/prebuilt/dist dist ;; \
      *) echo "BUNDLE_SOURCE must be npm or prebuilt, not '$BUNDLE_SOURCE'" >&2; exit 1 ;; \
    esac; \
    mkdir -p /app; \
    cp -a dist bin package.json /app/; \
    find /app/dist -name '*.map' -delete; \
    chmod -R a+rX,go-w /app; \
    node /app/dist/cni-node.mjs version >/dev/null

# ---------------------------------------------------------------------------
# The pinned sources, verified, as plain trees in /src/{multus,plugins} with the
# commit and its date in /src/*.source (`get NAME REPO TAG COMMIT TARBALL SHA256`).
# Nothing after this stage knows or cares whether a tree came from a tarball or a
# clone.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS plugin-src
ARG MULTUS_REPO
ARG MULTUS_VERSION
ARG MULTUS_COMMIT
ARG MULTUS_TARBALL_SHA256
ARG CNI_PLUGINS_REPO
ARG CNI_PLUGINS_VERSION
ARG CNI_PLUGINS_COMMIT
ARG CNI_PLUGINS_TARBALL_SHA256
COPY --from=vendor-src / /vendor-src/
RUN set -eu; \
    refuse() { echo "REFUSED $1: $2" >&2; exit 1; }; \
    get() { \
      name=$1 repo=$2 tag=$3 commit=$4 file=$5 sha=$6 dest=/src/$1; \
      if [ -e "/vendor-src/$file" ]; then \
        echo "$name: $file from the vendor-src build context"; \
        [ -f "/vendor-src/$file" ] || refuse "$file" "not a regular file"; \
        actual=$(sha256sum <"/vendor-src/$file" | cut -d' ' -f1); \
        [ "$actual" = "$sha" ] || refuse "$file" "sha256 is $actual, pinned $sha"; \
        id=$(gzip -dc <"/vendor-src/$file" | git get-tar-commit-id) || id=""; \
        [ "$id" = "$commit" ] || refuse "$file" "git archive commit is ${id:-(none)}, pinned $commit ($tag)"; \
        mkdir -p /tmp/x; tar -xzf "/vendor-src/$file" -C /tmp/x --no-same-owner; \
        set -- /tmp/x/*; \
        [ $# = 1 ] && [ -d "$1" ] || refuse "$file" "expected one top-level directory"; \
        mv "$1" "$dest"; rmdir /tmp/x; \
        epoch=$(stat -c %Y "$dest"); \
      else \
        echo "$name: git clone --depth 1 --branch $tag $repo"; \
        git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$tag" -- "$repo" "$dest" \
          || refuse "$repo" "git clone of $tag failed; without internet, give the source tarballs with --build-context vendor-src=DIR"; \
        head=$(git -C "$dest" rev-parse HEAD); \
        [ "$head" = "$commit" ] || refuse "$repo" "tag $tag is commit $head, pinned $commit"; \
        epoch=$(git -C "$dest" show -s --format=%ct HEAD); \
        rm -rf "$dest/.git"; \
      fi; \
      printf 'COMMIT=%s\nSOURCE_DATE_EPOCH=%s\n' "$commit" "$epoch" >"/src/$name.source"; \
      echo "$name: $tag, commit $commit, verified"; \
    }; \
    mkdir -p /src; \
    get multus "$MULTUS_REPO" "$MULTUS_VERSION" "$MULTUS_COMMIT" \
      "multus-cni-$MULTUS_VERSION.tar.gz" "$MULTUS_TARBALL_SHA256"; \
    get plugins "$CNI_PLUGINS_REPO" "$CNI_PLUGINS_VERSION" "$CNI_PLUGINS_COMMIT" \
      "cni-plugins-$CNI_PLUGINS_VERSION.tar.gz" "$CNI_PLUGINS_TARBALL_SHA256"

# ---------------------------------------------------------------------------
# Multus thin plugin (cmd/multus) and the reference plugins (the repository's own
# build_linux.sh), static, for TARGETARCH, with the version strings the upstream
# releases stamp in, so `multus -version` and `CNI_COMMAND=VERSION` name the pins.
# Only the vendored dependencies are used (no module download, no toolchain
# download); the Go build cache lives in a cache mount, so a rebuild after a small
# change recompiles only what changed.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS plugins
ARG TARGETARCH
ARG MULTUS_VERSION
ARG CNI_PLUGINS_VERSION
ENV CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOCACHE=/root/.cache/go-build
COPY --from=plugin-src /src/ /src/
RUN --mount=type=cache,id=cni-node-go-build,target=/root/.cache/go-build \
    set -eu; \
    arch=${TARGETARCH:-$(go env GOHOSTARCH)}; \
    case "$arch" in \
      amd64) elf="3e 00" ;; \
      arm64) elf="b7 00" ;; \
      *) echo "unsupported TARGETARCH '$arch' (amd64, arm64)" >&2; exit 1 ;; \
    esac; \
    export GOOS=linux GOARCH="$arch"; \
    echo "$(go version), building for linux/$arch"; \
    out=/out/opt/cni/bin; mkdir -p "$out"; \
    . /src/multus.source; \
    m=gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus; \
    (cd /src/multus && go build -trimpath -o "$out/multus" -ldflags "-s -w \
      -X $m.version=$MULTUS_VERSION -X $m.commit=$COMMIT -X $m.gitTreeState=clean -X $m.releaseStatus=,released \
      -X $m.date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" ./cmd/multus); \
    (cd /src/plugins && GO=go sh build_linux.sh -trimpath -ldflags "-s -w \
      -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" >/dev/null); \
    cp /src/plugins/bin/* "$out/"; \
    for f in "$out"/*; do \
      [ "$(od -An -tx1 -j18 -N2 "$f" | tr -s ' ' | sed 's/^ //')" = "$elf" ] \
        || { echo "$f is not a $arch ELF binary" >&2; exit 1; }; \
    done; \
    chown -R 0:0 /out; chmod 0755 "$out" "$out"/*; \
    ln "$out/multus" "$out/multus-cni"; \
    (cd "$out" && sha256sum -- * >../SHA256SUMS); \
    chmod 0644 /out/opt/cni/SHA256SUMS; \
    ls -l "$out"

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="cni-node" \
      org.opencontainers.image.description="Installs CNI plugins, CNI configuration and Kubernetes objects onto a Kubernetes node" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
# /opt/cni/bin: multus (+ multus-cni, a hard link) and the reference plugins;
# /opt/cni/SHA256SUMS: their digests, computed once at build time.
COPY --from=plugins /out/opt/cni/ /opt/cni/
COPY --from=build /app/ /app/
WORKDIR /
# Exec form, no shell: `docker run IMAGE list` runs `node …/cni-node.mjs list`.
# --disable-sigusr1: SIGUSR1 must not open the Node.js inspector in a root process
# on the node's network (hostNetwork).
# V8 flags for a small daemon on every node (BENCHMARKS.md, "The daemon's footprint"):
# JavaScript runs in V8's interpreter only, with no compiler tier (--no-sparkplug,
# --no-maglev, --no-opt); their code pages and working memory are 8–11 MiB of an idle
# daemon's RSS, and cni-node spends its time in system calls and waits, not in hot
# JavaScript. --max-semi-space-size=1 keeps V8's young generation at 1 MiB per
# semi-space. Unlike --lite-mode/--jitless, WebAssembly (Node's fetch) still works.
# kube-watch: `docker run IMAGE watch …` (or --entrypoint /nodejs/bin/node IMAGE /app/bin/kube-watch …).
ENTRYPOINT ["/nodejs/bin/node", "--disable-sigusr1", "--no-opt", "--no-maglev", "--no-sparkplug", "--max-semi-space-size=1", "/app/dist/cni-node.mjs"]
CMD []
