#!/bin/bash
# Runs inside the QEMU VM (run.sh, through tests/ipvs/kube-vm.sh): the real agent with
# ipvs.source kubernetes against the host's kube-apiserver, N services x D endpoints made by
# the host beforehand. Prints lines starting "BENCH":
#   the paged lists alone (the baseline), then the agent from its start until all services
#   are in IPVS, C changes API write -> kernel beside API write -> bare watch event, and the
#   agent's RSS, anonymous memory and CPU seconds.
source /opt/nodeagent/lib.sh
source /opt/nodeagent/cp.env
N=${N:-1000}; D=${D:-10}; C=${C:-100}
kubeconfig=/opt/nodeagent/admin-guest.kubeconfig
base="$(proxy_kube_bench baseline --kubeconfig "$KUBECONFIG_AGENT_GUEST")" || { echo "baseline failed"; exit 1; }
write_kube_config bench-node 1s  # the agent's default min_interval
since="$EPOCHREALTIME"
nodeagentd --config /tmp/na/config.yaml --log-level info >> /tmp/na/agent.log 2>&1 &
agent_pid=$!
proxy_kube_bench kernel --kubeconfig "$kubeconfig" --services "$N" --endpoints "$D" --changes "$C" \
  --agent-pid "$agent_pid" --since "$since" --baseline-ms "$base"
rc=$?
kill "$agent_pid"; wait "$agent_pid"
# The agent's passes, for where a slow change waited (a full read of the table).
grep -E 'IPVS changes|nothing to change' /tmp/na/agent.log | sed 's/^/BENCH agent log: /' | tail -n 60
[ "$rc" -eq 0 ] || show_log
exit "$rc"
