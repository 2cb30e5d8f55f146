#!/usr/bin/env bash
# Copies every crate the build needs into ./vendor (or the folder given), so
# `docker build`, `docker compose up --build` and scripts/publish.sh work with
# no network, on conference Wi-Fi say: scripts/image-build.sh uses vendor/
# whenever the build context has one. Run it again after Cargo.lock changes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo vendor --locked --versioned-dirs -q "${1:-vendor}" >/dev/null
echo "vendored $(find "${1:-vendor}" -mindepth 1 -maxdepth 1 | wc -l) crates into ${1:-vendor}"
