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

token_file="$PWD/target/admin-token"
if [ -z "${YELB_APPSERVER_ENDPOINT:-}" ]; then
  # Stage control with a fresh 128-bit token, unless one is given. It goes
  # to a file only this user can read, not to the (often projected) screen.
  export YELB_ADMIN_TOKEN="${YELB_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
  (umask 077 && printf '%s\n' "$YELB_ADMIN_TOKEN" > "$token_file")
  # The UI is its only client: wrong tokens are throttled per browser.
  export YELB_TRUSTED_PROXIES="${YELB_TRUSTED_PROXIES:-127.0.0.1}"
  ./target/release/yelb-appserver &
  pids+=($!)
  export YELB_APPSERVER_ENDPOINT="http://127.0.0.1:${YELB_PORT:-4567}"
fi
YELB_UI_SITE_ROOT="${YELB_UI_SITE_ROOT:-$PWD/target/site}" ./target/release/yelb-ui &
pids+=($!)

echo
echo "Yelb is running: open http://localhost:${YELB_UI_PORT:-8080}/  (Ctrl-C stops it)"
echo "  audience URL: $(./target/release/yelb-ui audience-url)  (the QR code's; YELB_UI_PUBLIC_URL overrides it)"
echo "  presenter view: http://localhost:${YELB_UI_PORT:-8080}/present"
echo "  app server: ${YELB_APPSERVER_ENDPOINT}  (API docs at /api/openapi.json)"
if [ -n "${YELB_ADMIN_TOKEN:-}" ] && [ -f "$token_file" ]; then
  echo "  stage control: http://localhost:${YELB_UI_PORT:-8080}/console  token ${YELB_ADMIN_TOKEN:0:4}…${YELB_ADMIN_TOKEN: -2} in $token_file"
  echo "    reset:  curl -X POST -H \"Authorization: Bearer \$(cat $token_file)\" ${YELB_APPSERVER_ENDPOINT}/api/v1/admin/reset"
fi
echo
wait -n "${pids[@]}"
