#!/usr/bin/env bash
# Builds the UI's browser bundle into target/site/pkg (yelb-ui.js,
# yelb-ui_bg.wasm, and their .gz): the hydrate build of the yelb-ui crate,
# wasm-bindgen, then wasm-opt. Installs what it needs on first use, into
# target/tools, from the crate registry and npm only:
#   - the wasm32 target (rustup);
#   - wasm-bindgen-cli at exactly the version in Cargo.lock (they must match);
#   - wasm-opt from npm's binaryen@132 (Debian's binaryen 108 breaks hydration).
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
if [ ! -x "$wasm_opt" ]; then
  echo "installing binaryen@132 (wasm-opt) from npm"
  mkdir -p "$tools/npm"
  npm install --silent --no-audit --no-fund --prefix "$tools/npm" binaryen@132 >/dev/null
fi
[ "${1:-}" != --tools-only ] || exit 0

cargo build -q --locked -p yelb-ui --lib --target wasm32-unknown-unknown \
  --no-default-features --features hydrate --profile wasm-release

mkdir -p "$site/pkg"
"$tools/bin/wasm-bindgen" --target web --no-typescript --out-name yelb-ui --out-dir "$site/pkg" \
  target/wasm32-unknown-unknown/wasm-release/yelb_ui.wasm
"$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types \
  "$site/pkg/yelb-ui_bg.wasm" -o "$site/pkg/yelb-ui_bg.wasm"
for f in "$site/pkg/yelb-ui_bg.wasm" "$site/pkg/yelb-ui.js"; do
  gzip -9 -k -f "$f"
done
echo "UI bundle: $site/pkg ($(du -b "$site/pkg/yelb-ui_bg.wasm" | cut -f1) bytes wasm, $(du -b "$site/pkg/yelb-ui_bg.wasm.gz" | cut -f1) gzipped)"
