#!/bin/bash
# Runs inside the VM (see run.sh). Prints each figure on a line starting with "BENCH".
set -euo pipefail
N=${N:-10000}; D=${D:-10}; K=${K:-1000}; KE=${KE:-200}
now() { echo "$EPOCHREALTIME"; }
echo "BENCH setup: $N services x $D endpoints, $K changes ($KE for ipvsadm -e)"

# 1. Program N x D from empty: ipvsadm -R (baseline) vs nodeagent's reconciler.
ipvs_bench rules "$N" "$D" > /tmp/rules
ipvsadm -C
t0=$(now); ipvsadm -R < /tmp/rules; t1=$(now)
base=$(echo "$t1 $t0" | awk '{printf "%.3f", $1 - $2}')
[ "$(ipvsadm -Ln | grep -c '^TCP')" -eq "$N" ] || { echo "ipvsadm -R did not program $N services"; exit 1; }
ipvsadm -C
out=$(ipvs_bench program "$N" "$D")
ours=$(echo "$out" | awk '{print $(NF-1)}')
[ "$(ipvsadm -Ln | grep -c '^TCP')" -eq "$N" ] || { echo "nodeagent did not program $N services"; exit 1; }
echo "BENCH program ${N}x${D}: ipvsadm -R ${base} s, nodeagent ${ours} s, ratio $(echo "$ours $base" | awk '{printf "%.3f", $1 / $2}')"

# 2. One endpoint change: 1,000 vs N services present, and vs running ipvsadm -e.
for n in 1000 "$N"; do
  ipvsadm -C
  echo "BENCH $(ipvs_bench latency "$n" "$D" "$K")"
done
ipvsadm -C
echo "BENCH $(ipvs_bench ipvsadm-e "$N" "$D" "$KE")"

# 3. Daemon RSS with N x D programmed.
ipvsadm -C
mkdir -p /tmp/na/state
ipvs_bench services "$N" "$D" > /tmp/na/services.yaml
cat > /tmp/na/config.yaml <<CFG
agent: {state_dir: /tmp/na/state}
control: {socket: /tmp/na/agent.sock}
sysctl: {enabled: false}
ipvs: {enabled: true, services_file: /tmp/na/services.yaml, bind_vips: true}
CFG
t0=$(now)
nodeagentd --config /tmp/na/config.yaml > /tmp/na/agent.log 2>&1 &
pid=$!
for i in $(seq 1 1200); do
  [ "$(ipvsadm -Ln | grep -c '^TCP')" -eq "$N" ] && grep -q "applied" /tmp/na/agent.log && break
  sleep 1
done
t1=$(now)
sleep 3
echo "BENCH daemon: ${N}x${D} programmed from a services file in $(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}') s; $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ' ')"
grep -E "applied|error" /tmp/na/agent.log | head -3
kill $pid; wait $pid || true
