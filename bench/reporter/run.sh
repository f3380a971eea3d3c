#!/usr/bin/env bash
# 500 simulated nodeagent reporters vs kubelet's default write rate, against the project's
# kube API test server (TLS with a throw-away CA) on a free 127.0.0.1 port.
# Usage: bench/reporter/run.sh [extra reporter_bench args, e.g. --minutes 5 --nodes 500]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake --build "$build" --target reporter_bench -j2 >/dev/null
dir="$(mktemp -d /tmp/nodeagent-kubebench-XXXXXX)"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
cd "$dir"
bash "$root/tests/kube/make_certs.sh" "$PWD"
echo bench-token > token
python3 "$root/tests/kube/kube_api_server.py" --cert s.crt --key s.key --port-file port --token bench-token \
  --bookmark-interval 60 --no-log-bodies > server.log 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.1; done
"$build/bench/reporter/reporter_bench" --server "https://127.0.0.1:$(cat port)" --ca ca.crt --token-file token "$@"
