#!/usr/bin/env bash
# The Kubernetes service source against the real kube-apiserver (tests/k8s/control-plane.sh,
# loopback only): 1,000 then N (10,000) services x D (10) endpoints created through the
# API. For each size:
#   host: a fresh measuring process reports the time until every service is translated
#     (against the same paged lists without decoding, in the same run), C single-endpoint
#     changes API-write-to-desired-state p50/p99, RSS, anonymous memory and CPU of the source;
#   VM (real IPVS, QEMU TCG): the real agent from its start until every service is in the
#     kernel (against the paged lists alone, in the same VM), C changes API write to kernel
#     beside API write to a bare watch event, the agent's RSS, anonymous memory and CPU.
# Then the decode comparison: the same lists as JSON and as protobuf (decode_bench.cpp).
#   bench/proxy-kube/run.sh        N=2000 bench/proxy-kube/run.sh        VM=0 (host only)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
N="${N:-10000}"; D="${D:-10}"; C="${C:-100}"; VM="${VM:-1}"
cmake --build "$build" --target proxy_kube_bench proxy_kube_decode_bench nodeagentd -j2 >/dev/null
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
  [ "$VM" = 1 ] || return 0
  "$root/tests/ipvs/kube-vm.sh" --cp-dir "$work/cp" --timeout 3000 --mem 2048 \
    --bin "$build/bin/nodeagentd" --bin "$b" --file "$root/bench/proxy-kube/guest.sh:/opt/nodeagent/bench.sh" \
    -- env N="$1" D="$D" C="$C" bash /opt/nodeagent/bench.sh | tr -d '\r' | grep -E '^BENCH|rror|FAIL|did not'  || echo "VM phase at $1 services failed"
}
"$b" create --kubeconfig "$KUBECONFIG_ADMIN" --from 0 --to 1000 --endpoints "$D"
measure 1000
if [ "$N" -gt 1000 ]; then
  t0=$(date +%s)
  "$b" create --kubeconfig "$KUBECONFIG_ADMIN" --from 1000 --to "$N" --endpoints "$D"
  echo "created $N services and slices in $(( $(date +%s) - t0 )) s"
  measure "$N"
fi
# The same lists as JSON and as protobuf (one request each, no paging), decoded both ways.
get() {  # get PATH ACCEPT OUT
  curl -sS --fail --cacert "$CA_FILE" --cert "$CP_DIR/pki/admin.crt" --key "$CP_DIR/pki/admin.key" \
    -H "Accept: $2" -o "$3" "$APISERVER_URL$1"
}
for kind in services:/api/v1/services slices:/apis/discovery.k8s.io/v1/endpointslices; do
  get "${kind#*:}" application/json "$work/${kind%%:*}.json"
  get "${kind#*:}" application/vnd.kubernetes.protobuf "$work/${kind%%:*}.pb"
done
"$build/bench/proxy-kube/proxy_kube_decode_bench" --json-services "$work/services.json" --pb-services "$work/services.pb" \
  --json-slices "$work/slices.json" --pb-slices "$work/slices.pb"
