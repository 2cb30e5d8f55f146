#!/usr/bin/env bash
# The build steps of the Rust images (appserver/, ui/ and loadgen/Dockerfile),
# written once.
# Runs inside the build stage, on the builder's own platform (BUILDPLATFORM):
#
#   image-build.sh toolchain              zig, cargo-zigbuild and the Rust
#                                         targets, each only if missing
#   image-build.sh compile PKG ARCH OUT   the static musl binary of PKG for
#                                         ARCH (amd64 or arm64) into OUT/
#   image-build.sh bundle-tools           node and the bundle's tools
#                                         (scripts/build-ui.sh --tools-only)
#   image-build.sh bundle SITE            the browser bundle into SITE/pkg
#
# Cross-compiling: cargo-zigbuild links with zig (ziglang from PyPI), which
# carries a C cross compiler and musl for every target, so mimalloc's C code
# builds for arm64 on amd64 (and the other way round) with no emulation.
#
# Offline: when the build context has a vendor/ folder (scripts/vendor.sh),
# crates come from it and nothing is fetched. The tools are fetched only when
# the Rust image lacks them (the project's CI hands in an image that has them).
set -euo pipefail

zig_version=0.15.2
zigbuild_version=0.24.1

# Crates from ./vendor when the context carries one: cargo's own source
# replacement, written where only this build sees it.
use_vendor() {
  if [ -d vendor ]; then
    mkdir -p .cargo
    [ ! -e .cargo/config.toml ] || { echo "refusing to overwrite .cargo/config.toml" >&2; exit 1; }
    printf '[source.crates-io]\nreplace-with = "vendored"\n\n[source.vendored]\ndirectory = "vendor"\n' > .cargo/config.toml
    echo "crates: vendor/ (offline)"
  fi
}

case "${1:-}" in
  toolchain)
    # Both from PyPI as prebuilt wheels (seconds, where `cargo install
    # cargo-zigbuild` compiles for minutes).
    wheels=()
    command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1 || wheels+=("ziglang==$zig_version")
    command -v cargo-zigbuild >/dev/null || wheels+=("cargo-zigbuild==$zigbuild_version")
    if [ ${#wheels[@]} -gt 0 ]; then
      command -v pip3 >/dev/null || {
        apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
      }
      pip3 install --no-cache-dir --break-system-packages "${wheels[@]}"
    fi
    rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl wasm32-unknown-unknown
    ;;
  compile)
    package=$2 arch=$3 out=$4
    case "$arch" in
      amd64) triple=x86_64-unknown-linux-musl ;;
      arm64) triple=aarch64-unknown-linux-musl ;;
      *) echo "unsupported architecture: $arch (amd64 and arm64 are)" >&2; exit 1 ;;
    esac
    use_vendor
    cargo zigbuild --release --locked --target "$triple" -p "$package"
    mkdir -p "$out"
    cp "target/$triple/release/$package" "$out/"
    ;;
  bundle-tools)
    # wasm-opt (npm's binaryen) runs on node; npm is needed only to install it.
    wasm_opt="${YELB_TOOLS:?}/npm/node_modules/.bin/wasm-opt"
    if ! command -v node >/dev/null || { [ ! -x "$wasm_opt" ] && ! command -v npm >/dev/null; }; then
      apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
    fi
    ./scripts/build-ui.sh --tools-only
    ;;
  bundle)
    use_vendor
    YELB_UI_SITE_ROOT="$2" ./scripts/build-ui.sh
    ;;
  *)
    echo "usage: $0 toolchain | compile PACKAGE ARCH OUT | bundle-tools | bundle SITE" >&2
    exit 2
    ;;
esac
