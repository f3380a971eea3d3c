#!/bin/bash
# The agent as the node's service proxy (ipvs.source kubernetes) inside the VM, against the
# real kube-apiserver on the host (10.0.2.2). Services and EndpointSlices are created with
# kubectl (no kubelet or controllers run: the slices are written by hand, as the
# EndpointSlice controller would). Checks: the IPVS table read back with ipvsadm equals
# kube-proxy's IPVS mode for these objects; real TCP and UDP through ClusterIP, NodePort
# and an externalIP; externalTrafficPolicy Local keeps the client's address and its
# health-check port answers 200/503 as the local endpoint comes and goes; ClientIP affinity
# holds; a terminating endpoint keeps its established connection and gets no new ones.
source /opt/nodeagent/lib.sh
source /opt/nodeagent/cp.env
trap '' PIPE
kc() { kubectl --kubeconfig /opt/nodeagent/admin-guest.kubeconfig --request-timeout 60s "$@"; }
echo 1 > /proc/sys/net/ipv4/ip_forward
netns be1 10.244.1.2 10.244.1.1
netns be2 10.244.2.2 10.244.2.1
netns cl 10.0.0.2 10.0.0.1
ip netns exec cl ip route add 10.96.0.0/16 via 10.0.0.1 2>/dev/null
for b in be1 be2; do
  mkdir -p /tmp/www-$b/cgi-bin && echo "$b" > /tmp/www-$b/index.html
  # The client address as the backend sees it (SNAT or not).
  printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n' > /tmp/www-$b/cgi-bin/ip
  chmod +x /tmp/www-$b/cgi-bin/ip
  ip netns exec $b httpd -p 8080 -h /tmp/www-$b
done

check "the apiserver answers from the guest" wait_for 60 kc get --raw /readyz

# slice SERVICE PORT-NAME PORT PROTOCOL ENDPOINT...: an EndpointSlice as the controller
# would write it; ENDPOINT is ADDRESS@NODE.
slice() {
  local svc="$1" name="$2" port="$3" proto="$4"; shift 4
  printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n'
  printf 'metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n' "$svc" "$svc"
  printf 'addressType: IPv4\nports: [{name: %s, port: %s, protocol: %s}]\nendpoints:\n' "$name" "$port" "$proto"
  for e in "$@"; do
    printf '  - {addresses: [%s], nodeName: %s, conditions: {ready: true}}\n' "${e%@*}" "${e#*@}"
  done
}
{
cat <<'YAML'
apiVersion: v1
kind: Node
metadata: {name: vm-node, labels: {topology.kubernetes.io/zone: zone-a}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  externalIPs: [10.0.3.3]
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  clusterIP: 10.96.0.12
  ports: [{name: dns, port: 53, protocol: UDP, targetPort: 5353}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec:
  clusterIP: 10.96.0.13
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.14
  externalTrafficPolicy: Local
  healthCheckNodePort: 32000
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: drain, namespace: default}
spec:
  clusterIP: 10.96.0.15
  ports: [{name: tcp, port: 9000, targetPort: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: default}
spec:
  type: ExternalName
  externalName: db.example
YAML
slice web http 8080 TCP 10.244.1.2@vm-node 10.244.2.2@vm-node
slice dns dns 5353 UDP 10.244.1.2@vm-node
slice sticky http 8080 TCP 10.244.1.2@vm-node 10.244.2.2@vm-node
slice local http 8080 TCP 10.244.1.2@vm-node 10.244.2.2@other-node
slice drain tcp 9000 TCP 10.244.1.2@vm-node 10.244.2.2@vm-node
} > /tmp/na/objects.yaml
check "objects created with kubectl" kc apply -f /tmp/na/objects.yaml
check "load balancer ingress set (status subresource)" \
  kc patch service local --subresource=status --type=merge -p '{"status":{"loadBalancer":{"ingress":[{"ip":"10.0.4.4"}]}}}'

write_kube_config vm-node 200ms "  resync_interval: 60s" "  drain_timeout: 10m" "  kubernetes:" \
  "    cluster_cidr: [10.244.0.0/16]" "    nodeport_addresses: [10.0.0.0/24]" "    strict_arp: true"
start_agent
check "services programmed from the API" wait_for 120 bash -c "ipvsadm -Ln | grep -q '10.0.4.4:80'"
sleep 2

# kube-proxy's IPVS mode for these objects (ipvsadm -Sn, sorted): one virtual server per
# ClusterIP, NodePort on the node address in nodePortAddresses, externalIP and LB ingress
# port; weight 1, masquerading; persistence 600 s for ClientIP affinity; externalTraffic-
# Policy Local: only the local endpoint on NodePort and LB; headless and ExternalName
# services absent.
cat > /tmp/na/expected <<'EXP'
-A -t 10.0.0.1:30080 -s rr
-A -t 10.0.0.1:30081 -s rr
-A -t 10.0.3.3:80 -s rr
-A -t 10.0.4.4:80 -s rr
-A -t 10.96.0.10:80 -s rr
-A -t 10.96.0.13:80 -s rr -p 600
-A -t 10.96.0.14:80 -s rr
-A -t 10.96.0.15:9000 -s rr
-A -t 10.96.0.1:443 -s rr
-A -u 10.96.0.12:53 -s rr
-a -t 10.0.0.1:30080 -r 10.244.1.2:8080 -m -w 1
-a -t 10.0.0.1:30080 -r 10.244.2.2:8080 -m -w 1
-a -t 10.0.0.1:30081 -r 10.244.1.2:8080 -m -w 1
-a -t 10.0.3.3:80 -r 10.244.1.2:8080 -m -w 1
-a -t 10.0.3.3:80 -r 10.244.2.2:8080 -m -w 1
-a -t 10.0.4.4:80 -r 10.244.1.2:8080 -m -w 1
-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1
-a -t 10.96.0.10:80 -r 10.244.2.2:8080 -m -w 1
-a -t 10.96.0.13:80 -r 10.244.1.2:8080 -m -w 1
-a -t 10.96.0.13:80 -r 10.244.2.2:8080 -m -w 1
-a -t 10.96.0.14:80 -r 10.244.1.2:8080 -m -w 1
-a -t 10.96.0.14:80 -r 10.244.2.2:8080 -m -w 1
-a -t 10.96.0.15:9000 -r 10.244.1.2:9000 -m -w 1
-a -t 10.96.0.15:9000 -r 10.244.2.2:9000 -m -w 1
-a -u 10.96.0.12:53 -r 10.244.1.2:5353 -m -w 1
EXP
ipvsadm -Sn | sort > /tmp/na/actual
echo "---- ipvsadm -Ln ----"; ipvsadm -Ln
check "ipvsadm table equals kube-proxy's IPVS mode for the same objects" diff -u /tmp/na/expected /tmp/na/actual
check "nodeagentctl ipvs list names namespace/name:port" bash -c "nodeagentctl ipvs list | grep -q 'default/web:http'"
check "VIPs bound (ClusterIP, externalIP, LB), node address not" bash -c \
  "ip -br addr show dev nodeagent-ipvs0 | grep -q '10.96.0.10/32' && ip -br addr show dev nodeagent-ipvs0 | grep -q '10.0.4.4/32' && ! ip -br addr show dev nodeagent-ipvs0 | grep -q '10.0.0.1/'"
check "strict ARP (arp_ignore=1, arp_announce=2)" wait_for 20 bash -c \
  "[ \$(cat /proc/sys/net/ipv4/conf/all/arp_ignore) = 1 ] && [ \$(cat /proc/sys/net/ipv4/conf/all/arp_announce) = 2 ]"

in_cl() { ip netns exec cl bash -c "$(declare -f http_get); $*" 2>&1; }
ip netns exec cl ip route add 10.0.3.0/24 via 10.0.0.1
ip netns exec cl ip route add 10.0.4.0/24 via 10.0.0.1
seen=""; for i in 1 2 3 4 5 6; do seen="$seen $(in_cl http_get 10.96.0.10 80 /index.html)"; done
echo "ClusterIP responses:$seen"
both() { grep -q be1 <<< "$1" && grep -q be2 <<< "$1"; }
check "TCP through the ClusterIP reaches both backends" both "$seen"
check "TCP through the NodePort (10.0.0.1:30080)" grep -q be <<< "$(in_cl http_get 10.0.0.1 30080 /index.html)"
check "TCP through the externalIP (10.0.3.3:80)" grep -q be <<< "$(in_cl http_get 10.0.3.3 80 /index.html)"
# Hairpin: a pod reaching itself through its own service (kube-proxy's KUBE-LOOP-BACK
# masquerade); without it the pod gets a packet from its own address and drops it.
in_be1() { ip netns exec be1 bash -c "$(declare -f http_get); $*" 2>&1; }
hp=""; for i in 1 2 3 4; do hp="$hp $(in_be1 http_get 10.96.0.10 80 /index.html)"; done
echo "hairpin responses (from be1):$hp"
check "hairpin: a pod reaches itself through its ClusterIP" bash -c \
  "[ \$(grep -o be1 <<< '$hp' | wc -l) -ge 1 ] && [ \$(grep -oE 'be[12]' <<< '$hp' | wc -l) -eq 4 ]"
src_cluster="$(in_cl http_get 10.0.0.1 30080 /cgi-bin/ip | sed 's/^\[::ffff:\(.*\)\]$/\1/')"
src_local="$(in_cl http_get 10.0.0.1 30081 /cgi-bin/ip | sed 's/^\[::ffff:\(.*\)\]$/\1/')"
echo "client address seen: eTP Cluster '$src_cluster', eTP Local '$src_local'"
check "externalTrafficPolicy Cluster: the client's address is SNAT-ed" bash -c "[ '$src_cluster' != 10.0.0.2 ] && [ -n '$src_cluster' ]"
check "externalTrafficPolicy Local: the client's address is kept" bash -c "[ '$src_local' = 10.0.0.2 ]"

# UDP: busybox's nc has no -u, so socat serves (an echo server that prefixes its name) and
# asks; the reply coming back checks IPVS's reverse translation and the SNAT too.
ip netns exec be1 socat UDP4-RECVFROM:5353,fork SYSTEM:'read l; echo be1-$l' &
udp_ask() { ip netns exec cl sh -c 'echo udp-hello | socat -t 3 -T 3 - UDP4:10.96.0.12:53' 2>/dev/null; }
check "UDP through the ClusterIP (request and reply)" wait_for 10 bash -c "$(declare -f udp_ask); udp_ask | grep -q be1-udp-hello"
check "UDP conntrack entry through the service" bash -c "conntrack -L -p udp --orig-dst 10.96.0.12 2>/dev/null | grep -q 'src=10.244.1.2'"
# The UDP endpoint replaced: kube-proxy deletes it at once (no drain) and flushes its flows,
# so the client's next datagram is not stuck to a gone backend.
udp_ask >/dev/null
kc patch endpointslice dns-1 --type=json -p '[{"op":"replace","path":"/endpoints/0/addresses/0","value":"10.244.2.2"}]' >/dev/null
check "UDP endpoint gone: deleted from IPVS at once (no weight-0 drain)" wait_for 20 bash -c \
  "ipvsadm -Ln -u 10.96.0.12:53 | grep -q '10.244.2.2:5353' && ! ipvsadm -Ln -u 10.96.0.12:53 | grep -q '10.244.1.2:5353'"
check "its UDP conntrack entries flushed" bash -c "! conntrack -L -p udp --orig-dst 10.96.0.12 2>/dev/null | grep -q 'src=10.244.1.2'"

health() { ip netns exec cl bash -c "exec 3<>/dev/tcp/10.0.0.1/32000 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null; }
health_is() { health | grep "$1" >/dev/null; }
h="$(health)"; echo "$h"
check "health check answers 200" grep -q '200 OK' <<< "$h"
check "health check counts one local endpoint" grep -q '"localEndpoints": 1' <<< "$h"
kc patch endpointslice local-1 --type=json -p '[{"op":"replace","path":"/endpoints/0/conditions/ready","value":false}]' >/dev/null
check "health check 503 once the local endpoint is not ready" wait_for 30 health_is '503 Service Unavailable'
check "eTP Local frontends lose the endpoint (no remote fallback)" wait_for 10 bash -c \
  "ipvsadm -Sn | grep -q -- '-A -t 10.0.4.4:80' && ! ipvsadm -Sn | grep -q -- '-a -t 10.0.4.4:80'"
kc patch endpointslice local-1 --type=json -p '[{"op":"replace","path":"/endpoints/0/conditions/ready","value":true}]' >/dev/null
check "health check 200 again" wait_for 30 health_is '200 OK'

# loadBalancerSourceRanges: the load balancer address only, clients outside are dropped.
lb_ok() { grep -q be1 <<< "$(in_cl http_get 10.0.4.4 80 /index.html)"; }
lb_fns="$(declare -f in_cl http_get lb_ok)"
check "the load balancer address answers" wait_for 20 bash -c "$lb_fns; lb_ok"
kc patch service local --type=merge -p '{"spec":{"loadBalancerSourceRanges":["10.9.0.0/16"]}}' >/dev/null
check "loadBalancerSourceRanges: a client outside them is dropped" wait_for 30 bash -c "$lb_fns; ! lb_ok"
check "loadBalancerSourceRanges: the NodePort is not filtered" bash -c "$lb_fns; grep -q be1 <<< \"\$(in_cl http_get 10.0.0.1 30081 /index.html)\""
kc patch service local --type=merge -p '{"spec":{"loadBalancerSourceRanges":["10.0.0.0/24"]}}' >/dev/null
check "loadBalancerSourceRanges: a client inside them gets through" wait_for 30 bash -c "$lb_fns; lb_ok"

sticky=""; for i in 1 2 3 4 5 6; do sticky="$sticky $(in_cl http_get 10.96.0.13 80 /index.html)"; done
echo "affinity responses:$sticky"
check "ClientIP affinity holds the client to one backend" bash -c "! (grep -q be1 <<< '$sticky' && grep -q be2 <<< '$sticky') && grep -q be <<< '$sticky'"

# Terminating: the established connection stays, new ones go elsewhere.
hold_connection 10.96.0.15 9000
echo "hello-before" >&3
wait_for 10 bash -c "grep -q hello-before /tmp/be1-9000.out || grep -q hello-before /tmp/be2-9000.out"
if grep -q hello-before /tmp/be1-9000.out; then idx=0; addr=10.244.1.2; out=/tmp/be1-9000.out; other=10.244.2.2
else idx=1; addr=10.244.2.2; out=/tmp/be2-9000.out; other=10.244.1.2; fi
kc patch endpointslice drain-1 --type=json -p "[{\"op\":\"replace\",\"path\":\"/endpoints/$idx/conditions\",\"value\":{\"ready\":false,\"serving\":false,\"terminating\":true}}]" >/dev/null
check "terminating endpoint drained to weight 0" wait_for 30 bash -c "ipvsadm -Ln -t 10.96.0.15:9000 | grep -q '$addr:9000 *Masq *0'"
echo "hello-after" >&3
check "its established connection keeps working" wait_for 10 grep -q hello-after $out
check "new connections go to the other endpoint only" bash -c \
  "ip netns exec cl sh -c 'echo new | nc -w 1 10.96.0.15 9000' >/dev/null 2>&1; ipvsadm -Ln -t 10.96.0.15:9000 | grep '$other:9000' | awk '{exit !(\$5+\$6>=1)}'"
exec 3>&-

# A deleted service goes; the agent keeps everything else.
kc delete service sticky >/dev/null
check "deleted service removed" wait_for 30 bash -c "! ipvsadm -Ln | grep -q '10.96.0.13:80'"
check "the other services stay" bash -c "ipvsadm -Ln | grep -q '10.96.0.10:80'"
check "status: ServiceProxyReady" bash -c "nodeagentctl status -o json | grep -q ServiceProxyReady"
check "metrics: network programming latency observed" bash -c "nodeagentctl status -o json | grep -q '\"programmed\"'"

kill "$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null
[ "$fails" -eq 0 ] || show_log
echo "kube scenario: $fails failures"
exit "$fails"
