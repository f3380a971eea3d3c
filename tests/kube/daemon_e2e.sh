#!/usr/bin/env bash
# nodeagentd end to end against a real kube-apiserver (tests/k8s/control-plane.sh), with
# the agent's ServiceAccount token from deploy/rbac.yaml: the real modules' conditions reach
# the Node through strategic merge patches (the audit log shows them, from that identity),
# `nodeagentctl status` shows the reporter's figures, the status file is written, /metrics
# answers, the token is never logged.
# The daemon runs outside any sandbox, so it touches nothing of the host: sysctl off, every
# path (socket, state, status file) in the temp dir, no container runtime (the imagepull
# module's condition is the real one of a runtime it cannot reach).
# Usage: daemon_e2e.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
D="$(mktemp -d /tmp/nodeagent-kube-e2e-XXXXXX)"
cleanup() {
  kill "${DP:-}" 2>/dev/null || true; wait 2>/dev/null || true
  bash "$src/tests/k8s/control-plane.sh" stop "$D/cp" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
cd "$D"
bash "$src/tests/k8s/control-plane.sh" start "$D/cp" >/dev/null
# shellcheck disable=SC1091
. "$D/cp/env"
k() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
k create -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Node
metadata: {name: e2e-node}
YAML
k patch node e2e-node --subresource=status --type=strategic \
  -p '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}' >/dev/null
cat > cfg.yaml <<YAML
agent: {node_name: e2e-node, state_dir: $D/state}
control: {socket: $D/s.sock}
kube: {mode: kubeconfig, kubeconfig: $KUBECONFIG_AGENT}
metrics: {address: "127.0.0.1:0"}
status_file: {path: $D/status.json}
sysctl: {enabled: false}
imagepull: {runtime_endpoint: "unix://$D/no-runtime.sock", start_spread: 0s, images: {base: ["127.0.0.1:1/base:v1"]}}
YAML
"$build/bin/nodeagentd" -c cfg.yaml --log-format text --log-level debug > d.log 2>&1 &
DP=$!
ok=""
for _ in $(seq 150); do
  # Exit 1 is expected (degraded: no container runtime here); the reporter's figures count.
  "$build/bin/nodeagentctl" --socket "$D/s.sock" -o json status > st.json 2>/dev/null || true
  if [ -s st.json ] &&
     python3 -c 'import json,sys; a=json.load(open("st.json"))["agent"]["reporter"]; sys.exit(0 if a["patches_sent"] >= 1 else 1)'; then
    ok=1; break
  fi
  sleep 0.1
done
[ -n "$ok" ] || { echo "reporter never patched"; cat st.json d.log; exit 1; }
# Captured first: grep -q closing the pipe early would fail the producer under pipefail.
table="$("$build/bin/nodeagentctl" --socket "$D/s.sock" status || true)"
grep -q '^reporter:' <<<"$table" || { echo "no reporter row in status"; echo "$table"; exit 1; }
k get node e2e-node -o json | python3 -c '
import json,sys
n=json.load(sys.stdin); t={c["type"]: c for c in n["status"]["conditions"]}
assert t["Ready"]["reason"] == "KubeletReady", t
assert t["NodeAgentBaseImagesPresent"]["status"] == "False", t
assert t["NodeAgentBaseImagesPresent"]["reason"] == "RuntimeUnavailable", t
r=t["NodeAgentImagesReady"]
assert (r["status"], r["reason"], r["message"]) == ("False", "RuntimeUnavailable", "0/1 images, missing: 127.0.0.1:1/base:v1"), r
print("node conditions:", sorted(t))'
python3 - "$AUDIT_LOG" "$AGENT_SA" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
p = [e for e in events if e["stage"] == "ResponseComplete" and e["verb"] == "patch"
     and e["objectRef"].get("resource") == "nodes" and e["objectRef"].get("subresource") == "status"
     and e["objectRef"].get("name") == "e2e-node" and e["user"]["username"] == sys.argv[2]]
assert p, "no status patch from the agent's ServiceAccount"
assert all(e["responseStatus"]["code"] == 200 for e in p), p
print(f"audit: {len(p)} status patch(es) from", sys.argv[2])
PY
for _ in $(seq 50); do [ -s status.json ] && break; sleep 0.1; done
python3 -c 'import json; s=json.load(open("status.json")); assert s["node"]=="e2e-node"; print("status file ok")'
mport="$(sed -n 's/.*metrics on http:\/\/127.0.0.1:\([0-9]*\)\/metrics.*/\1/p' d.log)"
metrics="$(curl -sS "http://127.0.0.1:$mport/metrics")"
grep -q '^nodeagent_status_patches_total{result="sent"} [1-9]' <<<"$metrics" || { echo "metrics"; echo "$metrics"; exit 1; }
kill "$DP"; wait "$DP" || true
if grep -qF "$(cat "$AGENT_TOKEN_FILE")" d.log; then echo "token logged"; exit 1; fi
echo "e2e ok"
