# Multi-platform builds of the five images (amd64 and arm64):
#   REGISTRY=registry.example.com/yelb/ TAG=0.1.0 docker buildx bake --push
# LATEST=true also tags each `:latest` (release.yml does); SOURCE and
# REVISION fill the OCI labels (org.opencontainers.image.*).
# or, for one platform and the local engine, `docker compose build`.
# The UI and app-server Dockerfiles pick their musl target from TARGETARCH.

variable "REGISTRY" {
  default = ""
}

variable "TAG" {
  default = "0.1.0"
}

variable "LATEST" {
  default = "false"
}

# The repository the images are built from, and its commit.
variable "SOURCE" {
  default = ""
}

variable "REVISION" {
  default = ""
}

# Every name an image is pushed under: REGISTRY/NAME:TAG, and :latest when asked.
function "image_tags" {
  params = [name]
  result = LATEST == "true" ? ["${REGISTRY}${name}:${TAG}", "${REGISTRY}${name}:latest"] : ["${REGISTRY}${name}:${TAG}"]
}

# The OCI labels of every image, with its own title and description.
function "image_labels" {
  params = [name, description]
  result = {
    "org.opencontainers.image.title"       = name
    "org.opencontainers.image.description" = description
    "org.opencontainers.image.version"     = TAG
    "org.opencontainers.image.revision"    = REVISION
    "org.opencontainers.image.source"      = SOURCE
    "org.opencontainers.image.licenses"    = "Apache-2.0"
  }
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
  tags       = image_tags("yelb-ui")
  labels     = image_labels("yelb-ui", "Yelb's web UI (Leptos, server-rendered and hydrated) and its /api forwarder")
}

target "yelb-appserver" {
  inherits   = ["_platforms"]
  context    = "."
  dockerfile = "appserver/Dockerfile"
  tags       = image_tags("yelb-appserver")
  labels     = image_labels("yelb-appserver", "Yelb's stateless API server (axum), naming its hostname on every answer")
}

target "yelb-db" {
  inherits = ["_platforms"]
  context  = "deploy/db"
  tags     = image_tags("yelb-db")
  labels   = image_labels("yelb-db", "Postgres with Yelb's schema")
}

target "yelb-cache" {
  inherits = ["_platforms"]
  context  = "deploy/cache"
  tags     = image_tags("yelb-cache")
  labels   = image_labels("yelb-cache", "Redis configured for Yelb's page views and live events")
}

# The audience simulator (a Kubernetes Job: deploy/kubernetes/extras).
target "yelb-loadgen" {
  inherits   = ["_platforms"]
  context    = "."
  dockerfile = "loadgen/Dockerfile"
  tags       = image_tags("yelb-loadgen")
  labels     = image_labels("yelb-loadgen", "Yelb's audience simulator and load generator")
}
