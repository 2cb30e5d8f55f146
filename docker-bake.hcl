# Multi-platform builds of the four images (amd64 and arm64):
#   REGISTRY=registry.example.com/yelb/ TAG=0.1.0 docker buildx bake --push
# or, for one platform and the local engine, `docker compose build`.
# The UI and app-server Dockerfiles pick their musl target from TARGETARCH.

variable "REGISTRY" {
  default = ""
}

variable "TAG" {
  default = "latest"
}

group "default" {
  targets = ["yelb-ui", "yelb-appserver", "yelb-db", "yelb-cache", "yelb-loadgen"]
}

target "_platforms" {
  platforms = ["linux/amd64", "linux/arm64"]
}

target "yelb-ui" {
  inherits   = ["_platforms"]
  context    = "."
  dockerfile = "ui/Dockerfile"
  tags       = ["${REGISTRY}yelb-ui:${TAG}"]
}

target "yelb-appserver" {
  inherits   = ["_platforms"]
  context    = "."
  dockerfile = "appserver/Dockerfile"
  tags       = ["${REGISTRY}yelb-appserver:${TAG}"]
}

target "yelb-db" {
  inherits = ["_platforms"]
  context  = "deploy/db"
  tags     = ["${REGISTRY}yelb-db:${TAG}"]
}

target "yelb-cache" {
  inherits = ["_platforms"]
  context  = "deploy/cache"
  tags     = ["${REGISTRY}yelb-cache:${TAG}"]
}

# The audience simulator (a Kubernetes Job: deploy/kubernetes/extras).
target "yelb-loadgen" {
  inherits   = ["_platforms"]
  context    = "."
  dockerfile = "loadgen/Dockerfile"
  tags       = ["${REGISTRY}yelb-loadgen:${TAG}"]
}
