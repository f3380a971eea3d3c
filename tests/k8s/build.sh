#!/usr/bin/env bash
# Builds the pinned Kubernetes components (kube-apiserver, kube-proxy, kubectl, etcd) from
# tests/k8s/go.mod into a cache folder outside the work tree and prints that bin folder
# (the only line on stdout; progress goes to stderr).
#
#   tests/k8s/build.sh [COMPONENT...]     default: all four
#
# Cache: ${NODEAGENT_CACHE:-/var/cache/nodeagent}/k8s/v<version>/bin, with GOMODCACHE and
# GOCACHE under ${NODEAGENT_CACHE}/go. A warm run is a hash check (< 1 s): a binary is
# rebuilt only when go.mod, go.sum, its main.go, the Go version or this script changed.
# K8S_VERSION=1.34.5 builds another Kubernetes patch release (see tests/k8s/README.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${NODEAGENT_CACHE:-/var/cache/nodeagent}"
export GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}"
export GOFLAGS="${GOFLAGS:-} -mod=readonly" GOTOOLCHAIN=local
export PATH="$PATH:/usr/local/go/bin"
all=(kube-apiserver kube-proxy kubectl etcd)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${all[@]}")
for c in "${want[@]}"; do
  [[ " ${all[*]} " == *" $c "* ]] || { echo "build.sh: unknown component '$c' (one of: ${all[*]})" >&2; exit 2; }
done
command -v go >/dev/null || { echo "build.sh: go not found (expected Go >= 1.24 at /usr/local/go)" >&2; exit 1; }

pinned="$(sed -n 's/^\tk8s.io\/kubernetes v1\.\([0-9.]*\)$/1.\1/p' "$here/go.mod" | head -1)"
[ -n "$pinned" ] || { echo "build.sh: cannot find the k8s.io/kubernetes version in $here/go.mod" >&2; exit 1; }
version="${K8S_VERSION:-$pinned}"
version="${version#v}"
[[ "$version" =~ ^1\.[0-9]+\.[0-9]+$ ]] || { echo "build.sh: K8S_VERSION must look like 1.34.4, got '$version'" >&2; exit 2; }
out="$cache/k8s/v$version"
mkdir -p "$out/bin"
exec 9>"$out/.lock"
flock 9  # parallel callers (test binaries, helpers) wait for one build

src="$here"
if [ "$version" != "$pinned" ]; then
  # Another release: a scratch copy of the module with every k8s.io pin moved to it. The
  # committed go.mod/go.sum stay as they are; copy the scratch pair back to make it the default.
  src="$out/src"
  minor="0.${version#1.}"
  if [ ! -f "$src/.ready" ] || ! cmp -s "$here/go.mod" "$src/go.mod.orig"; then
    echo "build.sh: preparing a module for Kubernetes v$version in $src" >&2
    rm -rf "$src" && mkdir -p "$src"
    cp -r "$here/go.mod" "$here/go.sum" "$here/cmd" "$src/"
    cp "$here/go.mod" "$src/go.mod.orig"
    (cd "$src"
     go mod edit -require="k8s.io/kubernetes@v$version"
     for m in $(sed -n 's/^\t\(k8s.io\/[a-z0-9-]*\) => k8s.io\/[a-z0-9-]* v0\.[0-9.]*$/\1/p' go.mod); do
       go mod edit -replace="$m=$m@v$minor"
     done
     grep -q "^\tk8s.io/component-base v" go.mod && go mod edit -require="k8s.io/component-base@v$minor"
     GOFLAGS=-mod=mod go mod tidy >&2)
    touch "$src/.ready"
  fi
fi

ldflags="-s -w"
for kv in "gitVersion=v$version" "gitMajor=1" "gitMinor=$(cut -d. -f2 <<<"$version")" "gitTreeState=clean"; do
  ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
key() {  # what a binary depends on, besides the module cache contents that go.sum pins
  { go version; echo "$ldflags"; cat "$src/go.mod" "$src/go.sum" "$src/cmd/$1/main.go" "$here/build.sh"; } | sha256sum | cut -c1-64
}
todo=()
for c in "${want[@]}"; do
  k="$(key "$c")"
  if [ -x "$out/bin/$c" ] && [ "$(cat "$out/bin/.$c.key" 2>/dev/null)" = "$k" ]; then continue; fi
  todo+=("$c")
done
if [ ${#todo[@]} -gt 0 ]; then
  echo "build.sh: building ${todo[*]} (Kubernetes v$version) into $out/bin; a cold build takes a while" >&2
  start=$(date +%s)
  pkgs=()
  for c in "${todo[@]}"; do pkgs+=("./cmd/$c"); done
  (cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$out/bin/" "${pkgs[@]}")
  for c in "${todo[@]}"; do key "$c" >"$out/bin/.$c.key"; done
  echo "build.sh: built ${todo[*]} in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/bin"
