#!/usr/bin/env bash
# Builds the DaemonSet's container image from deploy/Containerfile: the Debian package made
# from a build directory (`cpack -G DEB`, the same .deb a node installs) on a local Debian
# 12 base (scripts/debian-image.sh; no registry needed), and prints its tag; the size goes
# to stderr.
#   deploy/build-image.sh [TAG]      (default nodeagent:<project version>, as daemonset.yaml uses)
# BUILD_DIR (default build/) must hold a build of nodeagentd and nodeagentctl
# (scripts/build.sh); nothing is compiled here.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${BUILD_DIR:-$root/build}" && pwd)"
version="$(sed -nE 's/^project\(nodeagent VERSION ([0-9.]+).*/\1/p' "$root/CMakeLists.txt")"
tag="${1:-nodeagent:$version}"
for bin in nodeagentd nodeagentctl; do
  [ -x "$build/bin/$bin" ] || { echo "build-image.sh: no $build/bin/$bin; run scripts/build.sh first (or set BUILD_DIR)" >&2; exit 1; }
done
ctx="$(mktemp -d /tmp/nodeagent-image-ctx-XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$ctx/out" >"$ctx/cpack.log" 2>&1 ||
  { cat "$ctx/cpack.log" >&2; exit 1; }
mv "$ctx/out/nodeagent_${version}_amd64.deb" "$ctx/nodeagent.deb" ||
  { echo "build-image.sh: cpack made no nodeagent_${version}_amd64.deb" >&2; exit 1; }
cp "$root/deploy/Containerfile" "$ctx/Containerfile"
rm -rf "$ctx/out" "$ctx/cpack.log"
base="$(bash "$root/scripts/debian-image.sh")"
# The classic builder: it needs no buildx plugin, and the Containerfile uses nothing newer.
DOCKER_BUILDKIT=0 docker build -q -f "$ctx/Containerfile" --build-arg "BASE=$base" -t "$tag" "$ctx" >/dev/null
size="$(docker image inspect -f '{{.Size}}' "$tag")"
echo "build-image.sh: $tag on $base, $((size / 1000000)) MB ($size bytes)" >&2
echo "$tag"
