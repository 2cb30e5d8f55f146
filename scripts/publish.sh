#!/usr/bin/env bash
# Builds the four images for amd64 and arm64 and pushes them:
#   scripts/publish.sh REGISTRY TAG        e.g. scripts/publish.sh ghcr.io/me/yelb 0.2.0
# gives REGISTRY/yelb-ui:TAG, REGISTRY/yelb-appserver:TAG, REGISTRY/yelb-db:TAG
# and REGISTRY/yelb-cache:TAG, each a multi-platform image (a manifest list).
# Then run them with YELB_REGISTRY=REGISTRY/ YELB_TAG=TAG (Compose, Swarm),
# image.registry/image.tag (Helm), or kustomize's `images:`.
#
# With `docker buildx` this is `docker buildx bake --push` (docker-bake.hcl).
# Without it (the project's CI has none), each platform is built by the
# engine's own BuildKit (Docker 20.10's CLI carries it; set DOCKER to that
# CLI), pushed as TAG-amd64 and TAG-arm64, and joined by `docker manifest`.
# Either way the Rust build stage cross-compiles: no emulation is needed.
#
# Environment: PLATFORMS (default linux/amd64,linux/arm64), IMAGES (default the
# four, plus yelb-loadgen, the audience simulator), CONTEXT (default the repository; a copy with vendor/ builds offline),
# DOCKER (default docker). Build-time figures are printed per image/platform.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
registry=${1%/} tag=$2
platforms=${PLATFORMS:-linux/amd64,linux/arm64}
images=${IMAGES:-yelb-ui yelb-appserver yelb-db yelb-cache yelb-loadgen}
context=${CONTEXT:-$PWD}
docker=${DOCKER:-docker}

if [ -z "${CONTEXT:-}" ] && "$docker" buildx version >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  REGISTRY="$registry/" TAG="$tag" exec "$docker" buildx bake --push --set "*.platform=$platforms" $images
fi

# The Dockerfile and context of each image (as in docker-bake.hcl).
source_of() {
  case "$1" in
    yelb-ui) echo "$context/ui/Dockerfile $context" ;;
    yelb-appserver) echo "$context/appserver/Dockerfile $context" ;;
    yelb-loadgen) echo "$context/loadgen/Dockerfile $context" ;;
    yelb-db) echo "$context/deploy/db/Dockerfile $context/deploy/db" ;;
    yelb-cache) echo "$context/deploy/cache/Dockerfile $context/deploy/cache" ;;
    *) echo "unknown image: $1" >&2; exit 2 ;;
  esac
}
# `docker manifest` talks to the registry itself: plain HTTP only for a local one.
insecure=()
case "$registry" in localhost:* | localhost/* | 127.*) insecure=(--insecure) ;; esac

for image in $images; do
  read -r dockerfile dir <<<"$(source_of "$image")"
  ref="$registry/$image:$tag"
  parts=()
  for platform in ${platforms//,/ }; do
    arch=${platform#*/}
    start=$(date +%s.%N)
    DOCKER_BUILDKIT=1 "$docker" build -q --platform "$platform" -t "$ref-$arch" -f "$dockerfile" "$dir" >/dev/null
    printf 'built %-15s %-12s in %5.1f s\n' "$image" "$platform" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')"
    "$docker" push -q "$ref-$arch" >/dev/null
    parts+=("$ref-$arch")
  done
  "$docker" manifest rm "$ref" >/dev/null 2>&1 || true
  "$docker" manifest create "${insecure[@]}" "$ref" "${parts[@]}" >/dev/null
  "$docker" manifest push "${insecure[@]}" --purge "$ref" >/dev/null
  echo "pushed $ref (${platforms})"
done
