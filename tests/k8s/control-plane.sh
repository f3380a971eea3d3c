#!/usr/bin/env bash
# A real, throw-away Kubernetes control plane (etcd + kube-apiserver) for the tests,
# benchmarks and anyone trying the agent by hand. Everything lives in DIR.
#
#   tests/k8s/control-plane.sh start DIR    start, wait for /readyz, write DIR/env, print it
#   tests/k8s/control-plane.sh stop DIR     stop everything `start` started in DIR
#   tests/k8s/control-plane.sh stop-apiserver DIR    stop kube-apiserver only (etcd keeps the data)
#   tests/k8s/control-plane.sh start-apiserver DIR   start it again: same port, flags and certificates
#   tests/k8s/control-plane.sh compact-etcd DIR      one write outside the API's keys, then a
#     compaction at its revision: a watch cache started after it begins past every version a
#     client saw before, so their watches get 410 Gone and relist
#
# etcd and kube-apiserver listen on free 127.0.0.1 ports only. A QEMU guest with user
# networking reaches the apiserver at 10.0.2.2:PORT (slirp maps it to the host's loopback),
# so the serving certificate names 127.0.0.1, 10.0.2.2 and localhost.
# The apiserver runs with --authorization-mode=Node,RBAC, the default admission plugins,
# service-account signing keys and an audit log (DIR/audit.log, policy DIR/audit-policy.yaml).
# deploy/rbac.yaml is applied and the agent's kubeconfig uses a real ServiceAccount token
# of kube-system/nodeagent (TokenRequest, `kubectl create token`).
#
# DIR/env (shell-sourceable; the interface other scripts and tests use):
#   APISERVER_URL APISERVER_PORT APISERVER_GUEST_URL CA_FILE KUBECONFIG_ADMIN KUBECONFIG_AGENT
#   KUBECONFIG_AGENT_GUEST AGENT_TOKEN_FILE AGENT_SA BIN_DIR AUDIT_LOG ETCD_URL CP_DIR
# Environment: K8S_BIN_DIR (use these binaries instead of running build.sh),
# APISERVER_EXTRA_ARGS (more kube-apiserver flags, e.g. --watch-cache=false),
# CP_START_TIMEOUT (seconds to wait for /readyz, default 180).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
usage() { echo "usage: $0 start|stop|stop-apiserver|start-apiserver|compact-etcd DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"

say() { echo "control-plane: $*" >&2; }

stop_all() {
  local pids=() p
  for f in "$dir"/kube-apiserver.pid "$dir"/etcd.pid; do  # apiserver first: it needs etcd to stop cleanly
    [ -f "$f" ] || continue
    p="$(cat "$f")"
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; pids+=("$p"); fi
    rm -f "$f"
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}

if [ "$cmd" = stop ]; then
  stop_all
  say "stopped (files kept in $dir)"
  exit 0
fi
# The fault tests' outage: the apiserver goes away (its clients see refused connections)
# and comes back on the same port with the same etcd, so resource versions carry on.
if [ "$cmd" = stop-apiserver ]; then
  f="$dir/kube-apiserver.pid"
  [ -f "$f" ] || { say "no kube-apiserver running in $dir"; exit 1; }
  p="$(cat "$f")"
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  rm -f "$f"
  say "kube-apiserver stopped"
  exit 0
fi
if [ "$cmd" = compact-etcd ]; then
  etcd="$(sed -n 's/^ETCD_URL=//p' "$dir/env")"
  [ -n "$etcd" ] || { say "$dir/env has no ETCD_URL (start it with 'start' first)"; exit 1; }
  # key "nodeagent-test/compaction", value "1" (the gateway takes base64)
  put="$(curl -fsS -X POST "$etcd/v3/kv/put" -d '{"key":"bm9kZWFnZW50LXRlc3QvY29tcGFjdGlvbg==","value":"MQ=="}')"
  rev="$(grep -o '"revision":"[0-9]*"' <<< "$put" | head -1 | grep -o '[0-9][0-9]*')"
  [ -n "$rev" ] || { say "etcd put failed: $put"; exit 1; }
  curl -fsS -X POST "$etcd/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
  say "etcd compacted at revision $rev"
  exit 0
fi
if [ "$cmd" = start-apiserver ]; then
  [ -f "$dir/apiserver.cmd" ] || { say "$dir has no apiserver.cmd (start it with 'start' first)"; exit 1; }
  # shellcheck disable=SC1091 # written by `start`: the command line and the port
  source "$dir/apiserver.cmd"
  setsid "${api_cmd[@]}" </dev/null >>"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"
  end=$(( $(date +%s) + ${CP_START_TIMEOUT:-180} ))
  until [ "$(curl -sS --cacert "$dir/pki/ca.crt" "https://127.0.0.1:$api_port/readyz" 2>/dev/null)" = ok ]; do
    kill -0 "$(cat "$dir/kube-apiserver.pid")" 2>/dev/null || { say "kube-apiserver exited during start"; exit 1; }
    [ "$(date +%s)" -lt "$end" ] || { say "kube-apiserver not ready"; exit 1; }
    sleep 0.2
  done
  say "kube-apiserver started again on port $api_port"
  exit 0
fi
[ "$cmd" = start ] || usage

for f in "$dir"/etcd.pid "$dir"/kube-apiserver.pid; do
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    say "$dir already has a running control plane; stop it first"; exit 1
  fi
done
for tool in openssl curl python3 setsid; do
  command -v "$tool" >/dev/null || { say "$tool not found"; exit 1; }
done

bin="${K8S_BIN_DIR:-}"
if [ -z "$bin" ]; then bin="$(bash "$here/build.sh" kube-apiserver etcd kubectl)"; fi
for b in etcd kube-apiserver kubectl; do
  [ -x "$bin/$b" ] || { say "$bin/$b missing (run tests/k8s/build.sh)"; exit 1; }
done

started=0
on_exit() {
  local rc=$?
  if [ "$started" = 0 ]; then
    say "start failed (exit $rc); logs: $dir/etcd.log $dir/kube-apiserver.log"
    tail -n 20 "$dir/kube-apiserver.log" 2>/dev/null | sed 's/^/  apiserver: /' >&2 || true
    tail -n 5 "$dir/etcd.log" 2>/dev/null | sed 's/^/  etcd: /' >&2 || true
    stop_all
  fi
}
trap on_exit EXIT
rm -rf "$dir/etcd-data" "$dir/audit.log" "$dir/env"

# --- certificates and keys -----------------------------------------------------------
pki="$dir/pki"
mkdir -p "$pki"
(
  cd "$pki"
  ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  openssl req -x509 $ec -keyout ca.key -out ca.crt -days 7 -subj /CN=nodeagent-test-ca 2>/dev/null
  sign() {  # NAME SUBJECT EXTENSIONS
    openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 7 \
      -extfile "$1.ext" 2>/dev/null
  }
  sign apiserver /CN=kube-apiserver \
    "subjectAltName=IP:127.0.0.1,IP:10.0.2.2,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
  sign admin "/O=system:masters/CN=nodeagent-test-admin" \
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
  openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
  chmod 600 ./*.key
)

cat >"$dir/audit-policy.yaml" <<'YAML'
# One event per request (ResponseComplete; watches also at ResponseStarted), metadata only:
# verb, user, user agent, object (resource, subresource, name), response code.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:apiserver"]
  - level: None
    nonResourceURLs: ["/readyz*", "/livez*", "/healthz*", "/version", "/openapi*", "/api", "/apis", "/apis/*"]
  - level: Metadata
YAML

free_ports() {  # N distinct free loopback ports (bound once, then released)
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_for() {  # WHAT SECONDS PID COMMAND...
  local what="$1" secs="$2" pid="$3"
  shift 3
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { say "$what exited during start"; return 1; }
    [ "$(date +%s)" -lt "$end" ] || { say "$what not ready after ${secs}s"; return 1; }
    sleep 0.2
  done
}

timeout="${CP_START_TIMEOUT:-180}"
# A port taken between choosing and binding (a parallel run) makes a start fail; try again.
for attempt in 1 2 3; do
  read -r etcd_port peer_port api_port <<<"$(free_ports 3)"
  etcd_url="http://127.0.0.1:$etcd_port"
  rm -rf "$dir/etcd-data"
  setsid "$bin/etcd" --name cp --data-dir "$dir/etcd-data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "cp=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn \
    </dev/null >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  if ! wait_for etcd 30 "$(cat "$dir/etcd.pid")" curl -fsS "$etcd_url/health"; then
    stop_all; [ "$attempt" -lt 3 ] && continue; exit 1
  fi
  # shellcheck disable=SC2206 # APISERVER_EXTRA_ARGS is a list of flags
  api_cmd=("$bin/kube-apiserver" \
    --etcd-servers "$etcd_url" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address 127.0.0.1 \
    --endpoint-reconciler-type none \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC \
    --allow-privileged=true \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --audit-log-format json --audit-log-mode blocking --audit-log-maxsize 0 \
    --profiling=false \
    ${APISERVER_EXTRA_ARGS:-})
  declare -p api_cmd api_port >"$dir/apiserver.cmd"  # for start-apiserver
  setsid "${api_cmd[@]}" </dev/null >"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"
  readyz() { [ "$(curl -sS --cacert "$pki/ca.crt" "https://127.0.0.1:$api_port/readyz")" = ok ]; }
  if wait_for kube-apiserver "$timeout" "$(cat "$dir/kube-apiserver.pid")" readyz; then break; fi
  if [ "$attempt" -lt 3 ] && grep -q "address already in use" "$dir/kube-apiserver.log" "$dir/etcd.log"; then
    say "port taken, retrying"; stop_all; continue
  fi
  exit 1
done

api_url="https://127.0.0.1:$api_port"
guest_url="https://10.0.2.2:$api_port"
kubeconfig() {  # SERVER USER-YAML
  cat <<YAML
apiVersion: v1
kind: Config
current-context: test
clusters:
  - name: test
    cluster: {server: "$1", certificate-authority: "$pki/ca.crt"}
contexts:
  - name: test
    context: {cluster: test, user: u}
users:
  - name: u
    user: $2
YAML
}
kubeconfig "$api_url" "{client-certificate: \"$pki/admin.crt\", client-key: \"$pki/admin.key\"}" >"$dir/admin.kubeconfig"
kubectl() { "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" "$@"; }

# The agent's identity, exactly as deploy/ defines it, and a token from TokenRequest.
kubectl apply --server-side --field-manager=nodeagent-test -f "$root/deploy/rbac.yaml" >&2
kubectl -n kube-system create token nodeagent --duration 48h >"$dir/agent.token"
chmod 600 "$dir/agent.token"
kubeconfig "$api_url" "{tokenFile: \"$dir/agent.token\"}" >"$dir/agent.kubeconfig"
kubeconfig "$guest_url" "{tokenFile: \"$dir/agent.token\"}" >"$dir/agent-guest.kubeconfig"
kubectl --kubeconfig "$dir/agent.kubeconfig" auth can-i patch nodes --subresource=status >/dev/null 2>&1

cat >"$dir/env.tmp" <<ENV
CP_DIR=$dir
BIN_DIR=$bin
APISERVER_URL=$api_url
APISERVER_PORT=$api_port
APISERVER_GUEST_URL=$guest_url
CA_FILE=$pki/ca.crt
KUBECONFIG_ADMIN=$dir/admin.kubeconfig
KUBECONFIG_AGENT=$dir/agent.kubeconfig
KUBECONFIG_AGENT_GUEST=$dir/agent-guest.kubeconfig
AGENT_TOKEN_FILE=$dir/agent.token
AGENT_SA=system:serviceaccount:kube-system:nodeagent
AUDIT_LOG=$dir/audit.log
ETCD_URL=$etcd_url
ENV
mv "$dir/env.tmp" "$dir/env"
started=1
say "ready: kube-apiserver $api_url (guest: $guest_url), etcd $etcd_url"
say "admin: kubectl --kubeconfig $dir/admin.kubeconfig   agent: $dir/agent.kubeconfig"
say "audit log: $dir/audit.log   stop: $0 stop $dir"
cat "$dir/env"
