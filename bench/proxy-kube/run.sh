#!/usr/bin/env bash
# The Kubernetes service source against the real kube-apiserver (tests/k8s/control-plane.sh,
# loopback only): 1,000 then N (10,000) services x D (10) endpoints created through the
# API; for each size a fresh measuring process reports the time until every service is
# translated (against the same paged lists without decoding, in the same run), 100
# single-endpoint changes API-write-to-desired-state p50/p99, RSS, anonymous memory and CPU.
# The kernel side (IPVS programming of 10,000 x 10) is bench/ipvs (QEMU VM).
#   bench/proxy-kube/run.sh        N=2000 bench/proxy-kube/run.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
N="${N:-10000}"; D="${D:-10}"; C="${C:-100}"
[ -x "$build/bench/proxy-kube/proxy_kube_bench" ] || cmake --build "$build" --target proxy_kube_bench -j2 >/dev/null
work="$(mktemp -d /tmp/nodeagent-proxy-bench.XXXXXX)"
trap '"$root/tests/k8s/control-plane.sh" stop "$work/cp" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$root/tests/k8s/control-plane.sh" start "$work/cp" >/dev/null
source "$work/cp/env"
b="$build/bench/proxy-kube/proxy_kube_bench"
echo "Kubernetes service source: services x $D endpoints, $C changes, real kube-apiserver $APISERVER_URL"
# The baseline (paged lists, bodies thrown away) in its own process, then the source.
measure() {
  local base
  base="$("$b" baseline --kubeconfig "$KUBECONFIG_AGENT")"
  "$b" measure --kubeconfig "$KUBECONFIG_AGENT" --admin "$KUBECONFIG_ADMIN" --services "$1" --changes "$C" --baseline-ms "$base"
}
"$b" create --kubeconfig "$KUBECONFIG_ADMIN" --from 0 --to 1000 --endpoints "$D"
measure 1000
if [ "$N" -gt 1000 ]; then
  t0=$(date +%s)
  "$b" create --kubeconfig "$KUBECONFIG_ADMIN" --from 1000 --to "$N" --endpoints "$D"
  echo "created $N services and slices in $(( $(date +%s) - t0 )) s"
  measure "$N"
fi
