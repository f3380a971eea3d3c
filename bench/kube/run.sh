#!/usr/bin/env bash
# 500 simulated nodeagent reporters vs kubelet's default write rate, against a real
# kube-apiserver and etcd (tests/k8s/control-plane.sh, free 127.0.0.1 ports, a temp dir).
# Writes are counted from the apiserver's audit log.
# Usage: bench/kube/run.sh [extra reporter_bench args, e.g. --minutes 5 --nodes 500]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake --build "$build" --target kube_reporter_bench -j2 >/dev/null
dir="$(mktemp -d /tmp/nodeagent-kubebench-XXXXXX)"
cleanup() { bash "$root/tests/k8s/control-plane.sh" stop "$dir" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
bash "$root/tests/k8s/control-plane.sh" start "$dir" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
"$build/bench/kube/kube_reporter_bench" --server "$APISERVER_URL" --ca "$CA_FILE" --token-file "$AGENT_TOKEN_FILE" \
  --admin-cert "$CP_DIR/pki/admin.crt" --admin-key "$CP_DIR/pki/admin.key" --audit-log "$AUDIT_LOG" \
  --agent-user "$AGENT_SA" "$@"
