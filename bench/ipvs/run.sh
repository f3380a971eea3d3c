#!/usr/bin/env bash
# IPVS benchmarks in the QEMU VM (real IPVS; TCG makes absolute times slow, ratios are the
# figures that matter). Builds the needed targets, boots the VM, prints the results.
#   bench/ipvs/run.sh            10,000 services x 10 endpoints, 1,000 changes
#   N=2000 bench/ipvs/run.sh     smaller
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j2 --target ipvs_bench nodeagentd >/dev/null
"$root/tests/vm/run-vm.sh" --timeout 3000 --mem 2048 \
  --bin "$build/bench/ipvs/ipvs_bench" --bin "$build/agent/nodeagentd" \
  --file "$root/bench/ipvs/guest.sh:/opt/nodeagent/bench.sh" \
  -- env N="${N:-10000}" D="${D:-10}" K="${K:-1000}" KE="${KE:-200}" bash /opt/nodeagent/bench.sh | grep -E '^BENCH|rror|FAIL|did not'
