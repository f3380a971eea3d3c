#!/usr/bin/env bash
# IPVS benchmarks in the QEMU VM (real IPVS; TCG makes absolute times slow: the ratios
# are the figures). Each phase boots a fresh VM (see guest.sh for why).
#   bench/ipvs/run.sh            10,000 services x 10 endpoints, 1,000 changes
#   N=2000 bench/ipvs/run.sh     smaller
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
N="${N:-10000}"; D="${D:-10}"; K="${K:-1000}"; KE="${KE:-200}"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j2 --target ipvs_bench nodeagentd >/dev/null
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
phase() {  # phase NAME [VAR=VALUE...]
  local name="$1"; shift
  "$root/tests/vm/run-vm.sh" --timeout 3000 --mem 2048 \
    --bin "$build/bench/ipvs/ipvs_bench" --bin "$build/agent/nodeagentd" \
    --file "$root/bench/ipvs/guest.sh:/opt/nodeagent/bench.sh" \
    -- env PHASE="$name" N="$N" D="$D" K="$K" KE="$KE" "$@" bash /opt/nodeagent/bench.sh \
    | tr -d '\r' | grep -E '^BENCH|rror|did not' | tee -a "$out"
}
echo "IPVS benchmarks: $N services x $D endpoints, $K changes ($KE via ipvsadm -e), QEMU TCG"
phase restore
phase program
phase latency LN=1000
phase latency LN="$N"
phase ipvsadm-e
phase rss
awk '
  /restore/ {base = $(NF-1)}
  /^BENCH program/ {ours = $(NF-1)}
  /^BENCH latency with 1000 / {for (i = 1; i <= NF; i++) if ($i == "p50") l1 = $(i+1)}
  /^BENCH latency with/ && !/with 1000 / {for (i = 1; i <= NF; i++) {if ($i == "p50") l2 = $(i+1); if ($i == "p99") l2p = $(i+1)}}
  /^BENCH ipvsadm-e/ {for (i = 1; i <= NF; i++) if ($i == "p50") e = $(i+1)}
  /^BENCH kernel-only with 1000 / {for (i = 1; i <= NF; i++) if ($i == "p50") k1 = $(i+1)}
  /^BENCH kernel-only with/ && !/with 1000 / {for (i = 1; i <= NF; i++) if ($i == "p50") k2 = $(i+1)}
  END {
    if (base > 0 && ours > 0) printf "RATIO program from empty, nodeagent / ipvsadm -R: %.3f (target <= 0.5)\n", ours / base
    if (l1 > 0 && l2 > 0) printf "RATIO change p50, large table / 1,000 services: %.2f (target <= 1.2)\n", l2 / l1
    if (e > 0 && l2 > 0) printf "RATIO change p50, nodeagent / ipvsadm -e: %.4f (target <= 0.1)\n", l2 / e
    if (k1 > 0 && k2 > 0) printf "INFO kernel alone (one prebuilt IPVS_CMD_SET_DEST), large table / 1,000 services: %.2f\n", k2 / k1
  }' "$out"
