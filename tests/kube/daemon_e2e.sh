#!/usr/bin/env bash
# nodeagentd end to end against the kube API test server: the real modules' conditions
# reach the Node through one strategic merge patch, `nodeagentctl status` shows the
# reporter's figures, the status file is written, /metrics answers, the token is never logged.
# Usage: daemon_e2e.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
D="$(mktemp -d /tmp/nodeagent-kube-e2e-XXXXXX)"
cleanup() { kill "${DP:-}" "${SP:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
cd "$D"
bash "$src/tests/kube/make_certs.sh" "$PWD"
echo secret-e2e-token > token
python3 "$src/tests/kube/kube_api_server.py" --cert s.crt --key s.key --port-file port --token secret-e2e-token \
  --node e2e-node > server.log 2>&1 &
SP=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.1; done
P="$(cat port)"
cat > kc <<YAML
apiVersion: v1
kind: Config
current-context: t
contexts: [{name: t, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://127.0.0.1:$P", certificate-authority: ca.crt}}]
users: [{name: u, user: {tokenFile: token}}]
YAML
cat > cfg.yaml <<YAML
agent: {node_name: e2e-node, state_dir: $D/state}
control: {socket: $D/s.sock}
kube: {mode: kubeconfig, kubeconfig: $D/kc}
metrics: {address: "127.0.0.1:0"}
sysctl: {profile: none}
YAML
"$build/bin/nodeagentd" -c cfg.yaml --log-format text --log-level debug > d.log 2>&1 &
DP=$!
ok=""
for _ in $(seq 100); do
  if "$build/bin/nodeagentctl" --socket "$D/s.sock" -o json status > st.json 2>/dev/null &&
     python3 -c 'import json,sys; a=json.load(open("st.json"))["agent"]["reporter"]; sys.exit(0 if a["patches_sent"] >= 1 else 1)'; then
    ok=1; break
  fi
  sleep 0.1
done
[ -n "$ok" ] || { echo "reporter never patched"; cat st.json d.log; exit 1; }
# Captured first: grep -q closing the pipe early would fail the producer under pipefail.
table="$("$build/bin/nodeagentctl" --socket "$D/s.sock" status)"
grep -q '^reporter:' <<<"$table" || { echo "no reporter row in status"; echo "$table"; exit 1; }
node="$(curl -sS --cacert ca.crt -H "Authorization: Bearer secret-e2e-token" "https://127.0.0.1:$P/api/v1/nodes/e2e-node")"
echo "$node" | python3 -c '
import json,sys
n=json.load(sys.stdin); t={c["type"]: c for c in n["status"]["conditions"]}
assert t["Ready"]["reason"] == "KubeletReady", t
assert "NodeAgentSysctlTuned" in t and "NodeAgentConntrackPressure" in t, t
print("node conditions:", sorted(t))'
for _ in $(seq 50); do [ -s status.json ] && break; sleep 0.1; done
python3 -c 'import json; s=json.load(open("status.json")); assert s["node"]=="e2e-node"; print("status file ok")'
mport="$(sed -n 's/.*metrics on http:\/\/127.0.0.1:\([0-9]*\)\/metrics.*/\1/p' d.log)"
metrics="$(curl -sS "http://127.0.0.1:$mport/metrics")"
grep -q '^nodeagent_status_patches_total{result="sent"} [1-9]' <<<"$metrics" || { echo "metrics"; echo "$metrics"; exit 1; }
kill "$DP"; wait "$DP" || true
if grep -q secret-e2e-token d.log; then echo "token logged"; exit 1; fi
echo "e2e ok"
