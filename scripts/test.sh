#!/usr/bin/env bash
# The test command: installs the Postgres and Redis server binaries, Chromium
# and ChromeDriver if missing (the tests start and stop their own throwaway
# servers and browsers on 127.0.0.1), builds the UI's browser bundle, checks
# formatting and lints (server and browser builds), fuzzes both APIs from
# their OpenAPI document (scripts/fuzz-api.sh), proves the deployment files
# (scripts/test-deploy.sh: offline validators, then images and Docker Compose
# on a real engine) and runs every test in the workspace, the browser tests
# among them.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/packages.sh
source scripts/lib/disk.sh
ensure_packages postgres redis chromium
# The Debian packages start their own servers; the tests need none of them.
for svc in postgresql redis-server; do
  service "$svc" stop >/dev/null 2>&1 || true
done

# Each step says what it took and the disk left after it: CI runs all of
# this with a time budget, on machines whose free disk varies (README,
# "Tests").
timed() {
  local start=$SECONDS
  "$@"
  printf '== %d s: %s (%s GB free)\n' $((SECONDS - start)) "$*" "$(free_gb)"
}
free=$(free_gb)
echo "== $free GB free on the disk at the start"
# About 16 GB at the peak on a fresh clone (README): say so now rather than
# fail for want of space half an hour in.
if awk -v free="$free" 'BEGIN {exit !(free < 16)}'; then
  echo "== WARNING: the test command needs about 16 GB free at its peak (the image builds); a clone that has run it before needs less"
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
timed cargo fmt --all --check
timed cargo clippy --workspace --all-targets --locked -- -D warnings
timed ./scripts/build-ui.sh
# Both browser bundles: the voting page's, and the presenter's.
timed cargo clippy --locked -p yelb-ui --lib --target wasm32-unknown-unknown --no-default-features --features hydrate -- -D warnings
timed cargo clippy --locked -p yelb-ui --lib --target wasm32-unknown-unknown --no-default-features --features hydrate,present -- -D warnings
# The tests' build comes early: fuzz-api runs the app server binary it makes.
timed cargo test --workspace --locked --no-run
timed env YELB_APPSERVER_BIN=target/debug/yelb-appserver ./scripts/fuzz-api.sh
# Deployment files: offline validation, then images and compose on a real
# Docker engine in a network namespace (deploy/README.md).
timed ./scripts/test-deploy.sh
# Last, so its result lines close the output.
timed cargo test --workspace --locked
echo "== the whole test command: $((SECONDS / 60)) min $((SECONDS % 60)) s"
