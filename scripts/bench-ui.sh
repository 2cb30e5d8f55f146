#!/usr/bin/env bash
# The UI benchmark: builds the browser bundle and the servers (release), then
# prints page weight, first render, time to interactive and the latency from
# a vote on one screen to the change on another, as recorded in BENCHMARKS.md.
# Installs Chromium, ChromeDriver, Postgres and Redis if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/packages.sh
ensure_packages postgres redis chromium
./scripts/build-ui.sh
exec cargo bench --locked -q -p yelb-ui --bench ui
