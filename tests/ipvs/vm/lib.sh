# Helpers for the IPVS VM scenarios (sourced inside the guest).
set -uo pipefail
export NODEAGENT_SOCKET=/tmp/na/agent.sock
fails=0
mkdir -p /tmp/na/state
pass() { echo "PASS: $*"; }
failed() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() {  # check "what" command...
  local what="$1"; shift
  if "$@"; then pass "$what"; else failed "$what"; fi
}
# wait_for SECONDS command...: retries every 0.2 s
wait_for() {
  local limit="$1"; shift
  local end=$(( $(date +%s) + limit ))
  while [ "$(date +%s)" -le "$end" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
write_config() {  # write_config RESYNC DRAIN
  mkdir -p /tmp/na/state
  cat > /tmp/na/config.yaml <<CFG
agent:
  state_dir: /tmp/na/state
  reconcile:
    min_interval: 100ms
control:
  socket: /tmp/na/agent.sock
sysctl:
  profile: none        # only the keys the IPVS module contributes
ipvs:
  enabled: true
  services_file: /tmp/na/services.yaml
  resync_interval: ${1:-60s}
  drain_timeout: ${2:-10m}
CFG
}
# write_kube_config NODE MIN_INTERVAL [LINE...]: the agent as the node's service proxy
# (ipvs.source kubernetes) with the kubeconfig of cp.env; each LINE goes under `ipvs:`
# as it is (indented two spaces), e.g. "  resync_interval: 15s".
write_kube_config() {
  local node="$1" min="$2"; shift 2
  cat > /tmp/na/config.yaml <<CFG
agent:
  node_name: $node
  state_dir: /tmp/na/state
  reconcile:
    min_interval: $min
control:
  socket: /tmp/na/agent.sock
kube:
  mode: kubeconfig
  kubeconfig: $KUBECONFIG_AGENT_GUEST
sysctl:
  profile: none
ipvs:
  enabled: true
  source: kubernetes
CFG
  local line
  for line in "$@"; do echo "$line" >> /tmp/na/config.yaml; done
}
start_agent() {
  nodeagentd --config /tmp/na/config.yaml --log-level debug >> /tmp/na/agent.log 2>&1 &
  agent_pid=$!
}
# hold_connection VIP PORT: be1 and be2 listen on port 9000 (what arrives lands in
# /tmp/beN-9000.out); the client namespace connects to VIP:PORT and the connection stays
# open behind fd 3 (a fifo), so a scenario writes to it later and closes it with `exec 3>&-`.
hold_connection() {
  ip netns exec be1 sh -c 'sleep 600 | nc -l -p 9000 > /tmp/be1-9000.out' &
  ip netns exec be2 sh -c 'sleep 600 | nc -l -p 9000 > /tmp/be2-9000.out' &
  sleep 0.5
  mkfifo /tmp/cl.in
  ip netns exec cl sh -c "nc $1 $2 < /tmp/cl.in" &
  exec 3> /tmp/cl.in
}
# ipvs_in_sync: the IPVS module's last pass found nothing to change.
ipvs_in_sync() { { nodeagentctl status -o json || true; } | grep -E 'services, [0-9]+ endpoints, [0-9]+ draining, in sync' >/dev/null; }
show_log() { echo "---- agent log (tail) ----"; tail -40 /tmp/na/agent.log; }
# netns NAME IP HOSTIP: a namespace joined to the guest by a veth pair.
netns() {
  ip netns add "$1"
  ip link add "h-$1" type veth peer name eth0 netns "$1"
  ip addr add "$3/24" dev "h-$1"
  ip link set "h-$1" up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
  ip -n "$1" route add default via "$3"
}
# http_get IP PORT PATH: one HTTP/1.0 GET with bash's /dev/tcp (busybox wget crashes here).
http_get() {
  timeout 5 bash -c 'exec 3<>/dev/tcp/$1/$2 && printf "GET $3 HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "$@" | tail -1
}
# host_ctl stop-apiserver|start-apiserver|compact-etcd: asks the host (tests/ipvs/kube-vm.sh's control
# channel) and waits until it is done; fails unless the host answers "ok".
host_ctl() { [ "$(echo "$1" | socat -t 300 -T 300 - "TCP:10.0.2.2:$CTL_PORT" 2>/dev/null)" = ok ]; }
