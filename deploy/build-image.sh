#!/usr/bin/env bash
# Builds the DaemonSet's container image from deploy/Containerfile on a local Debian 12 base
# (scripts/debian-image.sh; no registry needed) and prints its size.
#   deploy/build-image.sh [TAG]      (default nodeagent:<project version>, as daemonset.yaml uses)
# Docker's layer cache keeps the package layers: a source change recompiles, nothing more.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -nE 's/^project\(nodeagent VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")"
tag="${1:-nodeagent:$version}"
base="$(bash "$root/scripts/debian-image.sh")"
# The classic builder: it needs no buildx plugin, and the Containerfile uses nothing newer.
DOCKER_BUILDKIT=0 docker build -q -f "$root/deploy/Containerfile" --build-arg "BASE=$base" -t "$tag" "$root" >/dev/null
size="$(docker image inspect -f '{{.Size}}' "$tag")"
echo "build-image.sh: $tag on $base, $((size / 1000000)) MB ($size bytes)" >&2
echo "$tag"
