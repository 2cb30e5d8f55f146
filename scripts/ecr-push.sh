#!/usr/bin/env bash
# Gets the five images into Amazon ECR for deploy/ecs (or EKS):
#   scripts/ecr-push.sh [--dry-run] REGION [TAG]     e.g. scripts/ecr-push.sh eu-west-1
# Creates the repositories that are missing (yelb-ui, yelb-appserver, yelb-db,
# yelb-cache, yelb-loadgen; scan on push, immutable tags), logs Docker in to
# the account's registry, pushes with scripts/publish.sh, and prints the
# ImageRegistry/ImageTag to give the stack. TAG defaults to the crate
# version. Needs the AWS CLI with credentials for the account; --dry-run
# prints the commands instead (scripts/test-deploy.sh checks them).
set -euo pipefail
cd "$(dirname "$0")/.."
dry=
[ "${1:-}" = --dry-run ] && { dry=1; shift; }
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '3p' "$0" >&2; exit 2; }
region=$1
[[ "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || { echo "not an AWS region: $region (e.g. eu-west-1)" >&2; exit 2; }
tag=${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
images=(yelb-ui yelb-appserver yelb-db yelb-cache yelb-loadgen)
run() { if [ -n "$dry" ]; then echo "+ $*"; else "$@"; fi; }

if [ -n "$dry" ]; then
  account=123456789012
else
  account=$(aws sts get-caller-identity --query Account --output text)
fi
registry="$account.dkr.ecr.$region.amazonaws.com"
for image in "${images[@]}"; do
  if [ -n "$dry" ] || ! aws ecr describe-repositories --region "$region" --repository-names "$image" >/dev/null 2>&1; then
    run aws ecr create-repository --region "$region" --repository-name "$image" \
      --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true
  fi
done
if [ -n "$dry" ]; then
  echo "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry"
else
  aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
fi
run env IMAGES="${images[*]}" scripts/publish.sh "$registry" "$tag"
echo
echo "${dry:+(dry run) }Pushed to $registry, tags are immutable (push a new TAG to change an image). Deploy with:"
echo "  aws cloudformation deploy ... --parameter-overrides ImageRegistry=$registry/ ImageTag=$tag ..."
