#!/usr/bin/env bash
# IPVS benchmarks in the QEMU VM (real IPVS; TCG makes absolute times slow: the ratios
# are the figures). Each phase boots a fresh VM (see guest.sh for why).
#   bench/ipvs/run.sh            10,000 services x 10 endpoints, 1,000 changes, 3 latency rounds
#   N=2000 bench/ipvs/run.sh     smaller
#   LR=5 bench/ipvs/run.sh       more latency rounds (their median is the ratio)
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
    --bin "$build/bench/ipvs/ipvs_bench" --bin "$build/bin/nodeagentd" \
    --file "$root/bench/ipvs/guest.sh:/opt/nodeagent/bench.sh" \
    -- env PHASE="$name" N="$N" D="$D" K="$K" KE="$KE" "$@" bash /opt/nodeagent/bench.sh \
    | tr -d '\r' | grep -E '^BENCH|rror|did not' | tee -a "$out"
}
echo "IPVS benchmarks: $N services x $D endpoints, $K changes ($KE via ipvsadm -e), QEMU TCG"
phase restore
phase program
# One-change latency: each round boots a VM, measures with 1,000 services, grows the table
# to N and measures again (same VM, same method, back to back); LR rounds show the noise.
for r in $(seq 1 "${LR:-3}"); do phase latency; done
phase ipvsadm-e
phase rss
awk '
  function p50(line,   i, n, f) { n = split(line, f, " "); for (i = 1; i <= n; i++) if (f[i] == "p50") return f[i+1] }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  /restore/ {base = $(NF-1)}
  /^BENCH program/ {ours = $(NF-1)}
  /^BENCH latency with 1000 / {l1[++n1] = p50($0)}
  /^BENCH latency with/ && !/with 1000 / {l2[++n2] = p50($0)}
  /^BENCH kernel-only with 1000 / {k1[++m1] = p50($0)}
  /^BENCH kernel-only with/ && !/with 1000 / {k2[++m2] = p50($0)}
  /^BENCH ipvsadm-e/ {e = p50($0)}
  END {
    if (base > 0 && ours > 0) printf "RATIO program from empty, nodeagent / ipvsadm -R: %.3f (target <= 0.5)\n", ours / base
    for (i = 1; i <= n2 && i <= n1; i++) {
      r[i] = l2[i] / l1[i]; kr[i] = (i <= m2 && i <= m1) ? k2[i] / k1[i] : 0; ok[i] = kr[i] > 0 ? r[i] / kr[i] : 0
      printf "round %d: change p50 %s us (1,000) / %s us (large): %.2f; kernel alone %s / %s us: %.2f\n", i, l1[i], l2[i], r[i], k1[i], k2[i], kr[i]
    }
    if (n2 > 0) {
      printf "RATIO change p50, large table / 1,000 services: %.2f (median of %d rounds; target <= 1.2)\n", median(r, n2), n2
      printf "INFO kernel alone (one prebuilt IPVS_CMD_SET_DEST), large table / 1,000 services: %.2f (median)\n", median(kr, n2)
      printf "INFO agent path over kernel alone, large table / 1,000 services: %.2f (median; 1.0: the agent adds no growth)\n", median(ok, n2)
      for (i = 1; i <= n2; i++) c[i] = l2[i]
      if (e > 0) printf "RATIO change p50, nodeagent / ipvsadm -e: %.4f (median large-table p50 %.1f us; target <= 0.1)\n", median(c, n2) / e, median(c, n2)
    }
  }' "$out"
