#!/bin/bash
# The agent as the node's service proxy (ipvs.source kubernetes) inside the VM, against the
# real kube-apiserver on the host, through two faults (issue 12):
#  1. the API server stopped for 60 s and started again (tests/ipvs/kube-vm.sh's control
#     channel): nothing is flushed and no rule changes while it is away, through periodic
#     resyncs of the kernel. While it is away etcd is compacted past every version the agent
#     saw, so the restarted API server answers its watches 410 Gone: the Services and
#     EndpointSlices are relisted, and the relist re-programs nothing. Then a change reaches
#     the kernel through the watch, re-programming nothing else;
#  2. kill -9 of the agent during a burst of EndpointSlice updates, started again at once:
#     no owned service is missing from the kernel at any sample, and the kernel converges
#     to the final objects.
# (tests/ipvs/kube_source_apiserver_test.cpp checks the 410 relist on the source alone.)
source /opt/nodeagent/lib.sh
source /opt/nodeagent/cp.env
kc() { kubectl --kubeconfig /opt/nodeagent/admin-guest.kubeconfig --request-timeout 60s "$@"; }
N=${N:-100}
check "the apiserver answers from the guest" wait_for 60 kc get --raw /readyz

# N ClusterIP services f1..fN at 10.96.1.I:80 with one slice of two endpoints each; slices
# GEN makes generation GEN of the endpoints (10.245.GEN.I and 10.245.GEN+1.I).
services() {
  printf 'apiVersion: v1\nkind: Node\nmetadata: {name: vm-node}\n'
  for i in $(seq 1 "$N"); do
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: f%s, namespace: default}\n' "$i"
    printf 'spec: {clusterIP: 10.96.1.%s, ports: [{name: http, port: 80, targetPort: 8080}]}\n' "$i"
  done
}
slices() {
  local gen="$1" i
  for i in $(seq 1 "$N"); do
    printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
    printf 'metadata: {name: f%s-1, namespace: default, labels: {kubernetes.io/service-name: f%s}}\n' "$i" "$i"
    printf 'addressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n'
    printf '  - {addresses: [10.245.%s.%s], conditions: {ready: true}}\n' "$gen" "$i"
    printf '  - {addresses: [10.245.%s.%s], conditions: {ready: true}}\n' "$((gen + 1))" "$i"
  done
}
# The table kube-proxy's IPVS mode has for generation GEN (ipvsadm -Sn, our services only).
expected() {
  local i
  for i in $(seq 1 "$N"); do
    echo "-A -t 10.96.1.$i:80 -s rr"
    echo "-a -t 10.96.1.$i:80 -r 10.245.$1.$i:8080 -m -w 1"
    echo "-a -t 10.96.1.$i:80 -r 10.245.$(($1 + 1)).$i:8080 -m -w 1"
  done | sort
}
ours() { ipvsadm -Sn | grep ' 10\.96\.1\.' | sort; }
owned_count() { ipvsadm -Ln | grep -c '^TCP  10\.96\.1\.'; }
# Relists (410 Gone) of the Services and the EndpointSlices watch, summed.
relists() {
  nodeagentctl status -o json | tr -d ' \n' | grep -oE '"(services|endpointslices)_watch":\{[^}]*' |
    grep -oE '"relists":[0-9]+' | cut -d: -f2 | { n=0; while read -r r; do n=$((n + r)); done; echo "$n"; }
}
services > /tmp/na/services.yaml
slices 1 > /tmp/na/slices1.yaml
slices 3 > /tmp/na/slices3.yaml
check "$N services and slices created with kubectl" kc create -f /tmp/na/services.yaml -f /tmp/na/slices1.yaml

write_kube_config vm-node 200ms "  resync_interval: 15s" "  drain_timeout: 10m"
start_agent
expected 1 > /tmp/na/expected1
check "services programmed from the API" wait_for 180 bash -c "$(declare -f ours); diff -q /tmp/na/expected1 <(ours)"

# --- 1. the API server away for 60 s ------------------------------------------------------
ipvsadm -Sn | sort > /tmp/na/before
echo "---- outage ----" >> /tmp/na/agent.log
check "the host stopped the API server" host_ctl stop-apiserver
check "the API server is gone" bash -c "! kc get --raw /readyz --request-timeout 3s"
relists_before="$(relists)"
check "etcd compacted while the API server is away" host_ctl compact-etcd
changed=0; samples=0
end=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$end" ]; do
  ipvsadm -Sn | sort > /tmp/na/now
  cmp -s /tmp/na/before /tmp/na/now || { changed=$((changed + 1)); diff /tmp/na/before /tmp/na/now | head -5; }
  samples=$((samples + 1))
  sleep 2
done
echo "outage: $samples samples of the whole table, $changed differed"
check "nothing flushed or changed in 60 s without the API server ($samples samples, 4 resyncs)" [ "$changed" -eq 0 ]
check "the agent kept running" kill -0 "$agent_pid"
outage_log="$(sed -n '/---- outage ----/,$p' /tmp/na/agent.log)"
check "no IPVS operation while the API server was away" bash -c "! grep -qE 'ipvsadm -[AEDaed] ' <<< \"\$1\"" _ "$outage_log"
check "the agent saw the API server go" bash -c "grep -qiE 'refused|unreachable|connect|failed' <<< \"\$1\"" _ "$outage_log"
echo "---- back ----" >> /tmp/na/agent.log
check "the host started the API server again" host_ctl start-apiserver
check "the API server answers again" wait_for 120 kc get --raw /readyz
check "the watches got 410 Gone and relisted (Services and EndpointSlices)" wait_for 120 bash -c \
  "$(declare -f relists); [ \"\$(relists)\" -ge $((relists_before + 2)) ]"
check "the agent in sync after the relist" wait_for 30 ipvs_in_sync
sleep 2  # ten of the agent's min_interval: a pass the relist caused would have run
relist_log="$(sed -n '/---- back ----/,$p' /tmp/na/agent.log)"
grep -E 'ipvsadm -[AEDaed] ' <<< "$relist_log" | head -5
check "the relist re-programmed nothing (no IPVS operation since the API server came back)" \
  bash -c "! grep -qE 'ipvsadm -[AEDaed] ' <<< \"\$1\"" _ "$relist_log"
ipvsadm -Sn | sort > /tmp/na/now
check "the table after the relist is the table before the outage" cmp -s /tmp/na/before /tmp/na/now
kc patch endpointslice f7-1 --type=json \
  -p '[{"op":"replace","path":"/endpoints/0/addresses/0","value":"10.245.9.7"}]' >/dev/null
check "the watch is back: a change made after the outage reaches the kernel" wait_for 120 bash -c \
  "ipvsadm -Ln -t 10.96.1.7:80 | grep -q '10.245.9.7:8080'"
back_log="$(sed -n '/---- back ----/,$p' /tmp/na/agent.log)"
grep -E 'ipvsadm -[AEDaed] ' <<< "$back_log" | head -5
check "after the outage only the changed service was touched" bash -c \
  "[ -n \"\$(grep -E 'ipvsadm -[AEDaed] ' <<< \"\$1\")\" ] && ! grep -E 'ipvsadm -[AEDaed] ' <<< \"\$1\" | grep -qv '10\.96\.1\.7:80'" _ "$back_log"
nodeagentctl status -o json | grep -oE '"(lists|relists|resumes|watches)": *[0-9]+' | tr '\n' ' '; echo

# --- 2. kill -9 during a burst of updates -------------------------------------------------
# The endpoints of f7 back to generation 1 first, so the burst moves every slice.
kc patch endpointslice f7-1 --type=json \
  -p '[{"op":"replace","path":"/endpoints/0/addresses/0","value":"10.245.1.7"}]' >/dev/null
check "f7 back to its first endpoints" wait_for 60 bash -c "$(declare -f ours); diff -q /tmp/na/expected1 <(ours)"
( while :; do echo "$(owned_count)"; sleep 0.2; done ) > /tmp/na/samples &
sampler=$!
sleep 1
kc replace -f /tmp/na/slices3.yaml > /tmp/na/burst.out 2>&1 &
burst=$!
# Mid-burst: once the agent has applied some of it, not all.
wait_for 120 bash -c "ipvsadm -Ln | grep -q '10\.245\.3\.'"
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null
done_before="$(ipvsadm -Ln | grep -c '10\.245\.3\.' || true)"
echo "killed with $done_before of $N services' new endpoints in the kernel"
echo "---- restart ----" >> /tmp/na/agent.log
start_agent
check "the burst's writes all succeeded" wait "$burst"
check "killed mid-burst (some, not all, of the burst in the kernel)" bash -c "[ '$done_before' -gt 0 ] && [ '$done_before' -lt $N ]"
expected 3 > /tmp/na/expected3
check "the restarted agent converges to the final objects" wait_for 180 bash -c "$(declare -f ours); diff -q /tmp/na/expected3 <(ours)"
sleep 1
kill "$sampler"; wait "$sampler" 2>/dev/null
min=$(sort -n /tmp/na/samples | head -1); count=$(wc -l < /tmp/na/samples)
echo "samples: $count, fewest owned services seen: $min of $N"
check "no owned service missing at any of $count samples" [ "$min" -eq "$N" ]
restart_log="$(sed -n '/---- restart ----/,$p' /tmp/na/agent.log)"
check "the restarted agent deleted no service" bash -c "! grep -qE 'ipvsadm -D ' <<< \"\$1\"" _ "$restart_log"

kill "$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null
[ "$fails" -eq 0 ] || show_log
echo "kube faults: $fails failures"
exit "$fails"
