#!/usr/bin/env bash
# Property-based fuzzing of both APIs from their OpenAPI document
# (schemathesis): every generated request, valid or not, must get a
# documented status and body, never a 5xx. Runs the debug binary in embedded
# mode on a free loopback port (input validation does not depend on the
# backend) and stops it by PID.
#
# Left out: /api/v1/events (an endless stream), /api/hostname (bare text
# labelled application/json on purpose, as the original does; its exact
# answer is tested in appserver/tests/api/original_api.rs) and / (the index:
# its links, such as /api/openapi.json, make schemathesis's stateful phase
# infer a link to /api/{restaurant} with restaurant=openapi.json, a path the
# more specific route answers; the index is tested in tests/api/ops.rs).
#
# Stage control is on, with a token schemathesis is not given: every admin
# request it makes must get the documented 401 (the fault layer runs too).
# Given the token it would set crash and 30 s latency faults on the very
# server it fuzzes; the admin API's behaviour is tested in tests/api/stage.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

# schemathesis lives in a venv of our own (Debian's Python refuses system-wide
# pip installs, PEP 668); Debian needs python3-venv for that.
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi
# YELB_APPSERVER_BIN: a binary already built (scripts/test.sh hands in the one
# `cargo test --no-run` made, which a `cargo build -p yelb-appserver` would
# compile again with other dependency features: 74 crates, about 50 s).
bin=${YELB_APPSERVER_BIN:-}
if [ -z "$bin" ]; then
  cargo build --locked -q -p yelb-appserver
  bin=target/debug/yelb-appserver
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
YELB_LISTEN_ADDR=127.0.0.1 YELB_PORT="$port" YELB_ADMIN_TOKEN="$token" RUST_LOG=warn "$bin" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

"$venv/bin/st" run "http://127.0.0.1:$port/api/openapi.json" \
  --exclude-path /api/v1/events --exclude-path /api/hostname --exclude-path / \
  --max-examples 50 --request-timeout 5 --seed 20261123
