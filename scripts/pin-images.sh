#!/usr/bin/env bash
# Pins the client images of deploy/docker/Dockerfile by digest: each `ARG *_IMAGE=name:tag` becomes
# `name:tag@sha256:…` as the registry serves it now (a multi-arch index digest, so amd64 and arm64 builds
# both stay pinned). Needs Docker with buildx and access to the registries. Review the diff, then commit.
# Usage: scripts/pin-images.sh [Dockerfile]
set -euo pipefail
file=${1:-"$(dirname "$0")/../deploy/docker/Dockerfile"}
command -v docker >/dev/null || { echo "error: docker (with buildx) is needed to ask the registries" >&2; exit 1; }
grep -E '^ARG [A-Z_]+_IMAGE=' "$file" | grep -v RUST_IMAGE | while IFS='=' read -r arg ref; do
  name=${arg#ARG }
  tagged=${ref%@*}
  digest=$(docker buildx imagetools inspect "$tagged" --format '{{json .Manifest}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
  [[ $digest == sha256:* ]] || { echo "error: no digest for $tagged" >&2; exit 1; }
  sed -i "s|^ARG $name=.*|ARG $name=$tagged@$digest|" "$file"
  echo "$name = $tagged@$digest"
done
