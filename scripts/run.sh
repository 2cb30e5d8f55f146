#!/usr/bin/env bash
# The run command: builds and starts the app server in embedded mode (votes and
# page views in memory; no Postgres or Redis needed). Any YELB_* variable set in
# the environment is honoured, so the same command runs against real backends.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p yelb-appserver
echo "Yelb app server: http://localhost:${YELB_PORT:-4567}/  (API: /api/getvotes, /api/v1/votes; docs: /api/openapi.json)"
exec ./target/release/yelb-appserver "$@"
