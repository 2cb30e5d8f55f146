#!/usr/bin/env bash
# Builds the UI's two browser bundles into target/site/pkg, each a .js, a
# _bg.wasm and their .gz: yelb-ui (the voting page, what every phone
# downloads) and yelb-present (the same crate with the presenter view's code,
# feature `present`, loaded only by /present). Each is the hydrate build of
# the yelb-ui crate, wasm-bindgen, then wasm-opt. Installs what it needs on first use, into
# target/tools, from the crate registry and npm only:
#   - the wasm32 target (rustup);
#   - wasm-bindgen-cli at exactly the version in Cargo.lock (they must match);
#   - wasm-opt from npm's binaryen@132 (Debian's binaryen 108 breaks hydration);
#   - npm's @gfx/zopfli, for .gz files 5% smaller than gzip -9 writes.
# YELB_TOOLS moves target/tools (the image build keeps them in a layer of
# their own); `--tools-only` installs them and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${YELB_TOOLS:-$PWD/target/tools}"
site="${YELB_UI_SITE_ROOT:-$PWD/target/site}"

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$("$tools/bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  echo "installing wasm-bindgen-cli $bindgen_version (about a minute and a half, once)"
  # Without --locked: its own lockfile pins a crate this registry lacks.
  # --debug: it compiles in 83 s instead of 180 here and turns the bundle
  # around in 1.0 s instead of 0.2, byte for byte the same output.
  cargo install -q --debug wasm-bindgen-cli --version "$bindgen_version" --root "$tools"
fi

wasm_opt="$tools/npm/node_modules/.bin/wasm-opt"
if [ ! -x "$wasm_opt" ] || [ ! -f "$tools/npm/node_modules/@gfx/zopfli/package.json" ]; then
  echo "installing binaryen@132 (wasm-opt) and @gfx/zopfli@1.0.15 from npm"
  mkdir -p "$tools/npm"
  npm install --silent --no-audit --no-fund --prefix "$tools/npm" binaryen@132 @gfx/zopfli@1.0.15 >/dev/null
fi
[ "${1:-}" != --tools-only ] || exit 0

mkdir -p "$site/pkg"
# bundle NAME FEATURES
bundle() {
  cargo build -q --locked -p yelb-ui --lib --target wasm32-unknown-unknown \
    --no-default-features --features "$2" --profile wasm-release
  "$tools/bin/wasm-bindgen" --target web --no-typescript --out-name "$1" --out-dir "$site/pkg" \
    target/wasm32-unknown-unknown/wasm-release/yelb_ui.wasm
  "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types \
    "$site/pkg/$1_bg.wasm" -o "$site/pkg/$1_bg.wasm"
  NODE_PATH="$tools/npm/node_modules" node scripts/lib/zopfli-gzip.js "$site/pkg/$1_bg.wasm" "$site/pkg/$1.js"
  echo "UI bundle $1: $(du -b "$site/pkg/$1_bg.wasm" | cut -f1) bytes wasm, $(du -b "$site/pkg/$1_bg.wasm.gz" | cut -f1) gzipped"
}
bundle yelb-ui hydrate
bundle yelb-present hydrate,present
