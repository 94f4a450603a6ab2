# cni-node container image.
#
#   docker build -t cni-node .
#   docker run --rm cni-node list
#
# Stages:
#   build    – npm ci + npm run build; keeps only dist/ (the self-contained esbuild
#              bundle), bin/ and package.json. No node_modules reach the image.
#   plugins  – the CNI plugin binaries for TARGETARCH: by default the pinned
#              containernetworking/plugins release and the pinned Multus CNI release
#              (thin plugin), each verified with `sha256sum -c` against the values
#              pinned below; with PLUGINS_SOURCE=local, binaries from a local dir.
#              NOTE: the Multus sha256 values are still empty (see that stage), so a
#              release build stops there until they are pinned, or MULTUS_VERSION=none.
#   final    – RUNTIME_IMAGE (distroless Node.js 20: no shell, no package manager)
#              + /opt/cni/bin + /app. ENTRYPOINT is node on the bundle, so the
#              original's `docker run IMAGE <command> …` examples work unchanged.
#
# Build arguments (all optional):
#   BUILD_IMAGE     image with node ≥ 20 + npm + a POSIX shell (default node:20-bookworm-slim)
#   RUNTIME_IMAGE   image with node ≥ 20 at /nodejs/bin/node (default distroless nodejs20)
#   PLUGINS_SOURCE  release (default) | local
#   BUNDLE_SOURCE   npm (default: npm ci + npm run build inside the build) |
#                   prebuilt (copy an already built dist/ from the named context
#                   `prebuilt`, for machines whose builds cannot reach the npm registry)
#   VERSION, REVISION, SOURCE  → OCI labels org.opencontainers.image.{version,revision,source}
#   NODE_EXTRA_CA_CERTS  path of an extra CA bundle *inside the build container*, for
#                   builds behind a TLS-intercepting proxy (mount the file with
#                   `podman build -v HOSTFILE:/run/extra-ca.crt:ro` and pass that path)
#
# Offline / local build (what scripts/image-test.sh does; podman or docker buildx):
#   podman build \
#     --build-arg BUILD_IMAGE=localhost/… --build-arg RUNTIME_IMAGE=localhost/… \
#     --build-arg PLUGINS_SOURCE=local --build-context local-plugins=/path/to/plugins \
#     [--build-arg BUNDLE_SOURCE=prebuilt --build-context prebuilt=/path/containing/dist] .
#   The named contexts override the empty stages of the same name below; without
#   them those stages are empty and unused.
#
# Plugin names. The original image shipped Multus as `multus-cni`, and its users'
# ConfigMaps and `apply --plugins=multus-cni,…` lists use that name; current Multus
# releases call the thin plugin `multus`. The image ships both names: `multus-cni`
# is a hard link to `multus`, so the second name costs no space in the layer (a copy
# would add the whole binary again), and unlike a symbolic link it is an ordinary
# regular file to every reader, so `install --plugins=multus-cni` puts a real binary
# on the node under the name the user asked for.

ARG BUILD_IMAGE=docker.io/library/node:20-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12

# Empty unless replaced with `--build-context local-plugins=DIR` (PLUGINS_SOURCE=local).
FROM scratch AS local-plugins
# Empty unless replaced with `--build-context prebuilt=DIR`, DIR holding dist/ (BUNDLE_SOURCE=prebuilt).
FROM scratch AS prebuilt

# ---------------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
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
FROM ${BUILD_IMAGE} AS plugins
ARG TARGETARCH
ARG PLUGINS_SOURCE=release
ARG NODE_EXTRA_CA_CERTS
# containernetworking/plugins release. sha256 of the release tarballs
# cni-plugins-linux-{amd64,arm64}-v1.6.2.tgz. The release assets could not be
# fetched where this was written; both values were cross-checked against three
# independent projects that pin the same files (kubespray's checksums among them).
ARG CNI_PLUGINS_VERSION=v1.6.2
ARG CNI_PLUGINS_SHA256_AMD64=b8e811578fb66023f90d2e238d80cec3bdfca4b44049af74c374d4fae0f9c090
ARG CNI_PLUGINS_SHA256_ARM64=01e0e22acc7f7004e4588c1fe1871cc86d7ab562cd858e1761c4641d89ebfaa4
# Multus CNI release (k8snetworkplumbingwg/multus-cni); only the thin plugin binary
# `multus` is taken from multus-cni_<version>_linux_<arch>.tar.gz.
# The sha256 values are NOT pinned yet: they could not be verified from the machine
# this was written on (no access to the release assets). Take them from the release's
# checksums.txt, check them independently, and fill them in; until then a release
# build stops here with a message rather than installing an unverified binary.
# Build without Multus: --build-arg MULTUS_VERSION=none.
ARG MULTUS_VERSION=4.1.4
ARG MULTUS_SHA256_AMD64=
ARG MULTUS_SHA256_ARM64=
COPY --from=local-plugins / /tmp/local-plugins/
RUN set -eu; \
    out=/out/opt/cni/bin; mkdir -p "$out"; \
    case "$PLUGINS_SOURCE" in \
    local) \
      if [ -z "$(ls -A /tmp/local-plugins)" ]; then \
        echo "PLUGINS_SOURCE=local needs --build-context local-plugins=DIR with the plugin binaries" >&2; exit 1; \
      fi; \
      cp -a /tmp/local-plugins/. "$out/" ;; \
    release) \
      arch="${TARGETARCH:-$(dpkg --print-architecture 2>/dev/null || uname -m)}"; \
      case "$arch" in \
        amd64|x86_64) arch=amd64; cni_sha=$CNI_PLUGINS_SHA256_AMD64; multus_sha=$MULTUS_SHA256_AMD64 ;; \
        arm64|aarch64) arch=arm64; cni_sha=$CNI_PLUGINS_SHA256_ARM64; multus_sha=$MULTUS_SHA256_ARM64 ;; \
        *) echo "unsupported TARGETARCH '$arch' (amd64, arm64)" >&2; exit 1 ;; \
      esac; \
      mtgz="multus-cni_${MULTUS_VERSION}_linux_${arch}.tar.gz"; \
      if [ "$MULTUS_VERSION" != none ] && [ -z "$multus_sha" ]; then \
        echo "No sha256 pinned for ${mtgz}: set MULTUS_SHA256_$(echo "$arch" | tr a-z A-Z) in the Dockerfile (or --build-arg), or build with --build-arg MULTUS_VERSION=none" >&2; \
        exit 1; \
      fi; \
      fetch() { node -e ' \
        const [url, file] = process.argv.slice(1); \
        fetch(url).then(async (r) => { \
          if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`); \
          require("fs").writeFileSync(file, Buffer.from(await r.arrayBuffer())); \
        }).catch((e) => { console.error(`download failed: ${e.message}${e.cause ? ` (${e.cause.code || e.cause.message})` : ""}`); process.exit(1); });' "$1" "$2"; }; \
      mkdir -p /tmp/dl; cd /tmp/dl; \
      tgz="cni-plugins-linux-${arch}-${CNI_PLUGINS_VERSION}.tgz"; \
      fetch "https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/${tgz}" "$tgz"; \
      echo "${cni_sha}  ${tgz}" | sha256sum -c -; \
      tar -xzf "$tgz" -C "$out" --no-same-owner; \
      if [ "$MULTUS_VERSION" != none ]; then \
        fetch "https://github.com/k8snetworkplumbingwg/multus-cni/releases/download/v${MULTUS_VERSION}/${mtgz}" "$mtgz"; \
        echo "${multus_sha}  ${mtgz}" | sha256sum -c -; \
        mkdir m; tar -xzf "$mtgz" -C m --no-same-owner; \
        bin=$(find m -type f -name multus | head -n1); \
        [ -n "$bin" ] || { echo "no multus binary in ${mtgz}" >&2; exit 1; }; \
        cp "$bin" "$out/multus"; \
      fi; \
      cd /; rm -rf /tmp/dl ;; \
    *) echo "PLUGINS_SOURCE must be release or local, not '$PLUGINS_SOURCE'" >&2; exit 1 ;; \
    esac; \
    rm -f "$out/LICENSE" "$out/README.md"; \
    bad=$(find "$out" -mindepth 1 ! -type f); \
    if [ -n "$bad" ]; then echo "not regular files among the plugins: $bad" >&2; exit 1; fi; \
    chown -R 0:0 /out; chmod 0755 "$out"; chmod 0755 "$out"/*; \
    if [ -f "$out/multus" ]; then rm -f "$out/multus-cni"; ln "$out/multus" "$out/multus-cni"; fi; \
    (cd "$out" && sha256sum -- * > ../SHA256SUMS); \
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
# /opt/cni/bin: the plugins (multus-cni hard-linked to multus, when Multus is there);
# /opt/cni/SHA256SUMS: their digests, computed once at build time.
COPY --from=plugins /out/opt/cni/ /opt/cni/
COPY --from=build /app/ /app/
WORKDIR /
# Exec form, no shell: `docker run IMAGE list` runs `node …/cni-node.mjs list`.
# kube-watch: `docker run IMAGE watch …` (or --entrypoint /nodejs/bin/node IMAGE /app/bin/kube-watch …).
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cni-node.mjs"]
CMD []
