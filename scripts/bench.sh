#!/usr/bin/env bash
# The benchmark command: installs wrk and the Postgres/Redis server packages if
# missing, builds in release mode and prints the figures recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v wrk >/dev/null || need+=(wrk)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --locked -p yelb-appserver -p yelb-bench
exec ./target/release/yelb-bench
