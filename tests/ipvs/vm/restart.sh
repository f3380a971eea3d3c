#!/bin/bash
# kill -9 and restart with 1,000 services: no owned service missing at any sampled moment
# and no netlink changes from the restarted agent.
source /opt/nodeagent/lib.sh
n=${1:-1000}
gen() {  # gen FIRST: FIRST is the endpoint list of service 0
  echo "services:"
  echo "  - {address: 10.97.0.1, port: 80, endpoints: [$1]}"
  for i in $(seq 1 $((n - 1))); do
    echo "  - {address: 10.97.$((i / 250)).$((i % 250 + 1)), port: 80, endpoints: [{address: 10.244.0.1, port: 80}, {address: 10.244.0.2, port: 80, weight: 2}]}"
  done
}
gen "{address: 10.244.0.1, port: 80}, {address: 10.244.0.2, port: 80, weight: 2}" > /tmp/na/services.yaml
ipvsadm -A -t 10.1.1.1:80 -s rr   # not ours
write_config 60s 10m
start_agent
check "$n services programmed" wait_for 120 bash -c "[ \$(ipvsadm -Ln | grep -c '^TCP  10.97') -eq $n ]"
sleep 1
( while :; do echo "$(ipvsadm -Ln | grep -c '^TCP  10.97')"; sleep 0.2; done ) > /tmp/samples &
sampler=$!
sleep 1
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null
echo "---- restart ----" >> /tmp/na/agent.log
# It died while draining an endpoint (weight 0 already set, endpoint no longer desired):
# the restarted agent must finish that drain, not forget it.
ipvsadm -e -t 10.97.0.1:80 -r 10.244.0.2:80 -m -w 0
gen "{address: 10.244.0.1, port: 80}" > /tmp/na/services.yaml
sleep 1
start_agent
check "restarted agent in sync" wait_for 120 ipvs_in_sync
sleep 1
kill "$sampler"; wait "$sampler" 2>/dev/null
min=$(sort -n /tmp/samples | head -1); count=$(wc -l < /tmp/samples)
echo "samples: $count, minimum owned services seen: $min"
check "no owned service missing at any of $count samples" [ "$min" -eq "$n" ]
after="$(sed -n '/---- restart ----/,$p' /tmp/na/agent.log)"
check "restart made no service deletes or adds" bash -c "! grep -qE 'ipvsadm -(D|A) ' <<< \"\$1\"" _ "$after"
check "weight-0 leftover deleted by the restarted agent" wait_for 10 bash -c "! ipvsadm -Ln -t 10.97.0.1:80 | grep -q 10.244.0.2"
grep -E 'ipvsadm -' <<< "$after" | head -5
check "the only change after restart is finishing the drain" bash -c "[ \"\$(grep -oE 'ipvsadm -[a-zA-Z] .*' <<< \"\$1\" | sort -u)\" = 'ipvsadm -d -t 10.97.0.1:80 -r 10.244.0.2:80' ]" _ "$after"
check "foreign service untouched" bash -c "ipvsadm -Ln | grep -q '10.1.1.1:80'"
kill "$agent_pid"; wait "$agent_pid"
if [ "$fails" -ne 0 ]; then echo "---- restarted agent's log ----"; grep -v ' debug ' <<< "$after" | head -40; fi
echo "restart: $fails failures"
exit "$fails"
