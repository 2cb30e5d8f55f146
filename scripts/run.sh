#!/usr/bin/env bash
# The run command: builds the app server, the UI server and the UI's browser
# bundle, then runs both servers on this machine until Ctrl-C. The app server
# runs in embedded mode (votes and page views in memory; no Postgres or Redis)
# unless YELB_DATABASE_URL / YELB_REDIS_URL / RACK_ENV say otherwise; every
# YELB_* variable is honoured. Set YELB_APPSERVER_ENDPOINT to put the UI in
# front of an app server that runs elsewhere (then none is started here).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p yelb-appserver -p yelb-ui
./scripts/build-ui.sh

pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; }
trap stop EXIT INT TERM

if [ -z "${YELB_APPSERVER_ENDPOINT:-}" ]; then
  ./target/release/yelb-appserver &
  pids+=($!)
  export YELB_APPSERVER_ENDPOINT="http://127.0.0.1:${YELB_PORT:-4567}"
fi
YELB_UI_SITE_ROOT="${YELB_UI_SITE_ROOT:-$PWD/target/site}" ./target/release/yelb-ui &
pids+=($!)

echo
echo "Yelb is running: open http://localhost:${YELB_UI_PORT:-8080}/  (Ctrl-C stops it)"
echo "  app server: ${YELB_APPSERVER_ENDPOINT}  (API docs at /api/openapi.json)"
echo
wait -n "${pids[@]}"
