#!/usr/bin/env bash
# Configures and builds into build/ (BUILD_DIR overrides). Extra args go to cmake.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODEAGENT_WERROR="$werror" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
