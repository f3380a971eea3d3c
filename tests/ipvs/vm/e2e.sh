#!/bin/bash
# Real IPVS in the VM: programmed services read back by ipvsadm, real TCP through a VIP to
# backends in other namespaces, a foreign service left alone, a hand-deleted service
# restored at resync, a draining endpoint keeping its connection, and everything the agent
# made removed when the module is switched off.
source /opt/nodeagent/lib.sh
trap '' PIPE
echo 1 > /proc/sys/net/ipv4/ip_forward
netns be1 10.244.1.2 10.244.1.1
netns be2 10.244.2.2 10.244.2.1
netns cl 10.0.0.2 10.0.0.1
for b in be1 be2; do
  mkdir -p /tmp/www-$b && echo "$b" > /tmp/www-$b/index.html
  ip netns exec $b httpd -p 8080 -h /tmp/www-$b
done
# Someone else's service: must survive everything below untouched.
ipvsadm -A -t 10.1.1.1:80 -s wlc
ipvsadm -a -t 10.1.1.1:80 -r 10.9.9.9:80 -m -w 7

cat > /tmp/na/services.yaml <<SVC
services:
  - address: 10.96.0.10
    port: 80
    scheduler: rr
    endpoints:
      - {address: 10.244.1.2, port: 8080}
      - {address: 10.244.2.2, port: 8080}
  - address: 10.96.0.11
    port: 9000
    scheduler: wrr
    endpoints:
      - {address: 10.244.1.2, port: 9000, weight: 5}
  - address: 10.96.0.12
    port: 53
    protocol: udp
    endpoints:
      - {address: 10.244.1.2, port: 5353}
SVC
write_config 3s 20s
start_agent
check "services programmed" wait_for 30 bash -c "ipvsadm -Ln | grep -q '10.96.0.12:53'"
out="$(ipvsadm -Ln)"
echo "$out"
expect() { grep -qF -- "$1" <<< "$out"; }
check "ipvsadm reads back TCP 10.96.0.10:80 rr" expect "TCP  10.96.0.10:80 rr"
check "ipvsadm reads back both backends" bash -c "ipvsadm -Ln -t 10.96.0.10:80 | grep -c 'Masq    1' | grep -q 2"
check "ipvsadm reads back wrr weight 5" expect "  -> 10.244.1.2:9000              Masq    5"
check "ipvsadm reads back UDP service" expect "UDP  10.96.0.12:53 rr"
check "VIPs bound on nodeagent-ipvs0" bash -c "ip -br addr show dev nodeagent-ipvs0 | grep -q '10.96.0.10/32'"
check "nft table holds the service ports" bash -c "nft list set inet nodeagent-ipvs svc4 | grep -q '10.96.0.10 . tcp . 80' && nft list set inet nodeagent-ipvs vips4 | grep -q 10.96.0.12"
check "IPVS timeouts set (86400 120 300)" bash -c "ipvsadm -L --timeout | grep -q '86400 120 300'"
check "net.ipv4.vs.conntrack=1" bash -c "[ \$(cat /proc/sys/net/ipv4/vs/conntrack) = 1 ]"
check "nodeagentctl ipvs list shows owned and foreign" bash -c "nodeagentctl ipvs list | grep -q foreign && nodeagentctl ipvs list | grep -q owned"

ip netns exec cl ip route add 10.96.0.0/16 via 10.0.0.1 2>/dev/null
seen=""
for i in 1 2 3 4 5 6 7 8; do
  r="$(ip netns exec cl bash -c "$(declare -f http_get); http_get 10.96.0.10 80 /index.html" 2>&1)"
  seen="$seen $r"
done
echo "responses:$seen"
check "real TCP through the VIP reaches be1" grep -q be1 <<< "$seen"
check "real TCP through the VIP reaches be2 (balanced)" grep -q be2 <<< "$seen"
check "a VIP port that is not a service is dropped (no answer, not refused)" bash -c "ip netns exec cl timeout 3 bash -c 'exec 3<>/dev/tcp/10.96.0.10/81' 2>&1; [ \$? -ge 124 ]  # busybox timeout: 143"

# Hand-deleted owned service: restored by the periodic resync (3 s here).
ipvsadm -D -t 10.96.0.10:80
check "hand-deleted service restored at resync" wait_for 15 bash -c "ipvsadm -Ln | grep -q '10.96.0.10:80'"
check "foreign service untouched" bash -c "ipvsadm -Ln -t 10.1.1.1:80 | grep -q 'wlc' && ipvsadm -Ln -t 10.1.1.1:80 | grep -q '10.9.9.9:80 .*Masq    7'"
check "plan is empty when in sync" bash -c "[ -z \"\$(nodeagentctl ipvs plan -o json | grep ipvsadm)\" ]"

# Drain: an established connection to be1:9000 survives be1's removal from the service.
hold_connection 10.96.0.11 9000
echo "hello-before" >&3
check "connection established to be1" wait_for 10 grep -q hello-before /tmp/be1-9000.out
sed -i 's/{address: 10.244.1.2, port: 9000, weight: 5}/{address: 10.244.2.2, port: 9000}/' /tmp/na/services.yaml
check "removed endpoint set to weight 0 (inotify reload)" wait_for 10 bash -c "ipvsadm -Ln -t 10.96.0.11:9000 | grep -qE '10.244.1.2:9000 +Masq +0 +1 '"
ipvsadm -Ln -t 10.96.0.11:9000
check "CLI shows it draining" bash -c "nodeagentctl ipvs list | grep '10.244.1.2:9000' | grep -q draining"
echo "hello-during-drain" >&3
check "draining endpoint keeps its established connection" wait_for 10 grep -q hello-during-drain /tmp/be1-9000.out
sleep 4
check "still present while the connection is open" bash -c "ipvsadm -Ln -t 10.96.0.11:9000 | grep -q '10.244.1.2:9000'"
exec 3>&-
check "drained endpoint deleted after the drain timeout" wait_for 40 bash -c "! ipvsadm -Ln -t 10.96.0.11:9000 | grep -q '10.244.1.2:9000'"

# Invalid file: rejected whole, nothing changes, condition degraded.
cp /tmp/na/services.yaml /tmp/na/good.yaml
printf 'services:\n  - address: 10.96.0.99\n    port: 0\n' > /tmp/na/services.yaml
sleep 2
check "invalid services file changes nothing" bash -c "ipvsadm -Ln | grep -q '10.96.0.10:80' && ! ipvsadm -Ln | grep -q 10.96.0.99"
check "status names file, line and key" bash -c "nodeagentctl status -o json | grep -q 'services.yaml:3'"

# A directory where the services file was (a bad mount, an editor accident): the daemon
# keeps running with the last good services and says why it is degraded.
rm -f /tmp/na/services.yaml && mkdir /tmp/na/services.yaml
check "directory as services file: reported, naming the path" wait_for 10 bash -c "nodeagentctl status -o json | grep -q 'services.yaml: Is a directory'"
check "directory as services file: daemon still running" kill -0 "$agent_pid"
check "directory as services file: last good services kept" bash -c "ipvsadm -Ln | grep -q '10.96.0.10:80'"
rmdir /tmp/na/services.yaml
cp /tmp/na/good.yaml /tmp/na/services.yaml
check "valid file again: in sync" wait_for 15 ipvs_in_sync

# Ownership race: someone creates a service (with a destination) at an address the file
# asks for right after. The agent's add meets EEXIST: a conflict, nothing of theirs
# touched, and it stays when the entry leaves the file.
ipvsadm -A -t 10.96.0.30:80 -s wrr
ipvsadm -a -t 10.96.0.30:80 -r 10.9.9.8:80 -m -w 3
printf '  - {address: 10.96.0.30, port: 80, endpoints: [{address: 10.244.1.2, port: 8080}]}\n' >> /tmp/na/services.yaml
check "foreign service at a desired address: reported as a conflict" wait_for 10 bash -c "nodeagentctl status -o json | grep -q 'TCP 10.96.0.30:80 .*not created by nodeagent'"
ipvsadm -Ln -t 10.96.0.30:80
check "foreign service at a desired address: scheduler kept" bash -c "ipvsadm -Ln -t 10.96.0.30:80 | grep -q wrr"
check "foreign service at a desired address: its destination kept, none added" bash -c "ipvsadm -Ln -t 10.96.0.30:80 | grep -q '10.9.9.8:80 .*Masq    3' && ! ipvsadm -Ln -t 10.96.0.30:80 | grep -q 10.244.1.2"
check "foreign service at a desired address: not in the ownership record" bash -c "! grep -q 10.96.0.30 /tmp/na/state/ipvs/owned-services"
grep -o 'TCP 10.96.0.30:80 [^"]*' /tmp/na/agent.log | head -2

# Everything removed: our services and VIPs go, the foreign ones stay.
echo "services: []" > /tmp/na/services.yaml
check "owned services removed" wait_for 15 bash -c "! ipvsadm -Ln | grep -q '10.96.0.1'"
check "nft elements removed" wait_for 10 bash -c "! nft list set inet nodeagent-ipvs svc4 | grep -q 10.96.0"
check "VIPs removed" wait_for 10 bash -c "! ip addr show dev nodeagent-ipvs0 | grep -q 10.96.0"
check "foreign service still there" bash -c "ipvsadm -Ln | grep -q '10.1.1.1:80'"
check "foreign service from the race still there, as it was" bash -c "ipvsadm -Ln -t 10.96.0.30:80 | grep -q '10.9.9.8:80 .*Masq    3'"
ipvsadm -D -t 10.96.0.30:80

# Switched off by a reload: what the agent made goes (owned services, VIPs, the dummy
# interface, the nftables table); the foreign service and other tables stay.
printf 'services:\n  - {address: 10.96.0.20, port: 80, endpoints: [{address: 10.244.1.2, port: 8080}]}\n' > /tmp/na/services.yaml
check "a service programmed again" wait_for 15 bash -c "ipvsadm -Ln | grep -q '10.96.0.20:80'"
check "its VIP bound again" wait_for 10 bash -c "ip addr show dev nodeagent-ipvs0 | grep -q 10.96.0.20"
nft add table inet someone-else
sed -i 's/^  enabled: true/  enabled: false/' /tmp/na/config.yaml
kill -HUP "$agent_pid"
check "disabled: owned services removed" wait_for 15 bash -c "! ipvsadm -Ln | grep -q '10.96.0.20'"
check "disabled: dummy interface removed" wait_for 10 bash -c "! ip link show nodeagent-ipvs0"
check "disabled: nftables table removed" wait_for 10 bash -c "! nft list table inet nodeagent-ipvs"
check "disabled: other nftables table kept" bash -c "nft list table inet someone-else"
check "disabled: foreign service kept" bash -c "ipvsadm -Ln -t 10.1.1.1:80 | grep -q '10.9.9.9:80 .*Masq    7'"
check "disabled: said so in the log" grep -q "ipvs disabled: removing" /tmp/na/agent.log
check "disabled: module reports disabled" bash -c "nodeagentctl status -o json | grep -q 'ipvs.enabled: false'"
kill "$agent_pid"; wait "$agent_pid"
[ "$fails" -eq 0 ] || show_log
echo "e2e: $fails failures"
exit "$fails"
