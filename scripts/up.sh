#!/usr/bin/env bash
# One command per target: runs Yelb with stage control on and the QR code
# pointing where phones can go, then prints the audience URL, the console
# and the admin token.
#   scripts/up.sh [--dry-run] compose|swarm|kind|minikube|k3d
#   scripts/up.sh [--dry-run] down compose|swarm|kind|minikube|k3d
# --dry-run prints the commands instead of running them.
#
# - The token: $YELB_ADMIN_TOKEN, or the one in target/up/admin-token from an
#   earlier run, or a new 128-bit one (written there, mode 600). Never
#   committed, never in a manifest.
# - The audience URL: $YELB_UI_PUBLIC_URL, or http://<this machine's LAN
#   address, the interface of the default route>:<port>/.
# - compose, swarm: the images are built from this checkout unless
#   YELB_REGISTRY/YELB_TAG name published ones (docker-compose.yml).
# - kind, minikube, k3d: builds the four images for this machine's
#   architecture and loads them into the cluster (kind through an image
#   archive, which works with Docker's containerd image store where `kind
#   load docker-image` does not), creates the Secret yelb-admin and the
#   ConfigMap yelb-ui, applies the NodePort overlay and waits for it; the
#   audience URL is then the port-forward this prints.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=""
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
action=up
if [ "${1:-}" = down ]; then action=down; shift; fi
target=${1:-}
case "$target" in compose | swarm | kind | minikube | k3d) ;; *) sed -n '5,7p' "$0" >&2; exit 2 ;; esac

run() {
  if [ -n "$dry" ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

tag=${YELB_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}
port=${YELB_UI_HOST_PORT:-8080}
state=target/up
mkdir -p "$state"

if [ "$action" = down ]; then
  case "$target" in
    compose) run docker compose down --remove-orphans ;;
    swarm) run docker stack rm yelb ;;
    kind | minikube | k3d)
      run kubectl delete -k deploy/kubernetes/overlays/nodeport --ignore-not-found
      run kubectl delete secret yelb-admin --ignore-not-found
      run kubectl delete configmap yelb-ui --ignore-not-found
      ;;
  esac
  exit 0
fi

token=${YELB_ADMIN_TOKEN:-$(cat "$state/admin-token" 2>/dev/null || od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
(umask 077 && printf '%s\n' "$token" > "$state/admin-token")
lan=$(ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
public=${YELB_UI_PUBLIC_URL:-http://${lan:-localhost}:$port/}
export YELB_ADMIN_TOKEN="$token" YELB_UI_PUBLIC_URL="$public" YELB_TAG="$tag"

case "$target" in
  compose)
    run docker compose up -d --wait --wait-timeout 180 ${YELB_COMPOSE_FLAGS:-}
    ;;
  swarm)
    run docker stack deploy --detach=true -c deploy/swarm/stack.yml yelb
    ;;
  kind | minikube | k3d)
    for image in yelb-ui yelb-appserver yelb-db yelb-cache; do
      case "$image" in
        yelb-ui) args=(-f ui/Dockerfile .) ;;
        yelb-appserver) args=(-f appserver/Dockerfile .) ;;
        yelb-db) args=(deploy/db) ;;
        yelb-cache) args=(deploy/cache) ;;
      esac
      run docker build -q -t "$image:$tag" "${args[@]}"
      case "$target" in
        kind)
          run docker save -o "$state/$image.tar" "$image:$tag"
          run kind load image-archive "$state/$image.tar"
          ;;
        minikube) run minikube image load "$image:$tag" ;;
        k3d) run k3d image import "$image:$tag" ;;
      esac
    done
    # Created (or updated) from the command line: never in a file.
    if [ -n "$dry" ]; then
      echo "+ kubectl create secret generic yelb-admin --from-literal=token=<the token> --dry-run=client -o yaml | kubectl apply -f -"
      echo "+ kubectl create configmap yelb-ui --from-literal=public-url=$public --dry-run=client -o yaml | kubectl apply -f -"
    else
      kubectl create secret generic yelb-admin --from-literal=token="$token" --dry-run=client -o yaml | kubectl apply -f -
      kubectl create configmap yelb-ui --from-literal=public-url="$public" --dry-run=client -o yaml | kubectl apply -f -
    fi
    run kubectl apply -k deploy/kubernetes/overlays/nodeport
    for deployment in yelb-db redis-server yelb-appserver yelb-ui; do
      run kubectl rollout status "deploy/$deployment" --timeout=300s
    done
    ;;
esac

if [ "$target" = swarm ] && [ -z "$dry" ]; then
  # Every service at its replica count.
  for _ in $(seq 1 120); do
    [ "$(docker service ls --format '{{.Replicas}}' | awk -F/ '$1 != $2' | wc -l)" = 0 ] && break
    sleep 1
  done
fi

echo
echo "Yelb $tag is up on $target."
case "$target" in
  kind | minikube | k3d)
    echo "  reach it:      kubectl port-forward --address 0.0.0.0 svc/yelb-ui $port:80"
    ;;
esac
echo "  audience URL:  $public  (the QR code's; YELB_UI_PUBLIC_URL overrides it)"
echo "  presenter:     http://localhost:$port/present"
echo "  console:       http://localhost:$port/console"
# Masked: the terminal is often on the projector.
echo "  admin token:   ${token:0:4}…${token: -2} in $state/admin-token (cat it; sign in at the console)"
echo "  stop it:       scripts/up.sh down $target"
