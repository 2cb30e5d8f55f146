#!/usr/bin/env bash
# The UI benchmark: builds the browser bundle and the servers (release), then
# prints page weight, first render, time to interactive and the latency from
# a vote on one screen to the change on another, as recorded in BENCHMARKS.md.
# Installs Chromium, ChromeDriver, Postgres and Redis if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
./scripts/build-ui.sh
exec cargo bench --locked -q -p yelb-ui --bench ui
