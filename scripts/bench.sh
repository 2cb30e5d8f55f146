#!/usr/bin/env bash
# The benchmark command: installs wrk and the Postgres/Redis server packages if
# missing, builds in release mode and prints the figures recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/packages.sh
ensure_packages wrk postgres redis
cargo build --release --locked -p yelb-appserver -p yelb-bench
exec ./target/release/yelb-bench
