#!/usr/bin/env bash
# The benchmark command: installs wrk and the Postgres/Redis server packages if
# missing, builds in release mode and prints the figures recorded in BENCHMARKS.md
# (the app server under load, then many open event streams through the UI,
# then a keynote audience: screens and keyed votes through the UI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/packages.sh
ensure_packages wrk postgres redis
cargo build --release --locked -p yelb-appserver -p yelb-ui -p yelb-bench -p yelb-loadgen
./target/release/yelb-bench
# Many open event streams: memory per stream and after they close.
./target/release/bench-streams
# A keynote: thousands of screens through one UI while the room votes.
exec ./target/release/bench-keynote
