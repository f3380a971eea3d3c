#!/usr/bin/env bash
# deploy/rbac.yaml is least privilege, proven on the real kube-apiserver (tests/k8s):
#  1. nodeagentd runs with the nodeagent ServiceAccount's token (TokenRequest) and every
#     Kubernetes feature works: its Node gets the conditions (list/watch + patch
#     nodes/status), a removal of them by someone else is undone (watch), a condition
#     transition becomes an Event (create events); the apiserver's audit log shows no
#     request of the agent refused.
#  2. `kubectl auth can-i --as=system:serviceaccount:kube-system:nodeagent`: every
#     verb x resource the agent used (read from the audit log) and every rule of the
#     ClusterRole is allowed; a list of others (secrets, pods, nodes themselves, other
#     resources and namespaces) is denied.
#  3. A ServiceAccount bound to less (no patch of nodes/status) gets a 403 that the agent
#     reports naming the verb and the resource, in its log and in `nodeagentctl status`.
# The daemon runs on the host with the sysctl module limited to no keys (profile none: it
# publishes its conditions and writes nothing), temp socket/state/status paths.
# Usage: rbac_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
D="$(mktemp -d /tmp/nodeagent-rbac-XXXXXX)"
cleanup() {
  kill "${DP:-}" 2>/dev/null || true; wait 2>/dev/null || true
  bash "$src/tests/k8s/control-plane.sh" stop "$D/cp" >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT
bash "$src/tests/k8s/control-plane.sh" start "$D/cp" >/dev/null 2>"$D/cp.log" || { cat "$D/cp.log"; exit 1; }
# shellcheck disable=SC1091
. "$D/cp/env"
kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
sa="system:serviceaccount:kube-system:nodeagent"
nodeagentd="$build/bin/nodeagentd"; nodeagentctl="$build/bin/nodeagentctl"

start_agent() {  # NAME KUBECONFIG: nodeagentd for Node NAME, logs in $D/NAME.log
  local n="$1" kc="$2"
  mkdir -p "$D/$n"
  cat > "$D/$n/config.yaml" <<YAML
agent: {node_name: $n, state_dir: $D/$n/state}
control: {socket: $D/$n/sock, socket_group: ""}
status_file: {path: $D/$n/status.json}
metrics: {address: ""}
sysctl: {profile: none, persist: false}
kube:
  mode: kubeconfig
  kubeconfig: $kc
  max_attempts: 2
  status: {coalesce_window: 200ms}
  events: {namespace: default}
YAML
  kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: $n}
YAML
  "$nodeagentd" --config "$D/$n/config.yaml" --sysctl-file "$D/$n/sysctl.conf" --log-format text \
    --log-level debug > "$D/$n.log" 2>&1 &
  DP=$!
}
stop_agent() { kill "$DP"; wait "$DP" || true; DP=""; }
conditions() { kubectl get node "$1" -o jsonpath='{range .status.conditions[*]}{.type}={.status}{"\n"}{end}'; }
eventually() {  # WHAT COMMAND...: up to 30 s
  local what="$1"; shift
  for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "never: $what"; return 1
}

# --- 1. the agent with deploy/rbac.yaml's identity ------------------------------------
n=rbac-node
start_agent "$n" "$KUBECONFIG_AGENT"
has_tuned() { conditions "$n" | grep -x "NodeAgentSysctlTuned=$1" >/dev/null; }
eventually "NodeAgentSysctlTuned=True on the Node" has_tuned True || { cat "$D/$n.log"; exit 1; }
echo "conditions patched: $(conditions "$n" | tr '\n' ' ')"
kubectl patch node "$n" --subresource=status --type=json -p '[{"op":"remove","path":"/status/conditions"}]' >/dev/null
eventually "the agent restores its removed conditions" has_tuned True || { cat "$D/$n.log"; exit 1; }
echo "removed conditions restored (watch)"
"$nodeagentctl" --socket "$D/$n/sock" sysctl revert >/dev/null
eventually "NodeAgentSysctlTuned=False after a revert" has_tuned False || { cat "$D/$n.log"; exit 1; }
has_event() { kubectl get events -n default --field-selector "involvedObject.name=$n" -o name | grep . >/dev/null; }
eventually "an Event for the transition" has_event || { cat "$D/$n.log"; exit 1; }
echo "transition event: $(kubectl get events -n default --field-selector "involvedObject.name=$n" \
  -o jsonpath='{.items[0].reason}: {.items[0].message}')"
stop_agent

# Every request of the agent, from the apiserver's audit log: verb resource[/sub] code.
used="$(python3 - "$AUDIT_LOG" "$sa" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    e = json.loads(line)
    # The agent's own requests (its user agent), not control-plane.sh's kubectl checks.
    if e["user"]["username"] != sys.argv[2] or "objectRef" not in e or not e.get("userAgent", "").startswith("nodeagent"):
        continue
    o = e["objectRef"]
    res = o["resource"] + ("/" + o["subresource"] if o.get("subresource") else "")
    if o.get("apiGroup"):
        res = o["resource"] + "." + o["apiGroup"] + ("/" + o["subresource"] if o.get("subresource") else "")
    # ConfigMaps are granted by name (resourceNames): keep the name to ask can-i about it.
    name = o.get("name") or "-" if o["resource"] == "configmaps" else "-"
    seen.add((e["verb"], res, o.get("namespace") or "-", name, e["responseStatus"]["code"]))
for s in sorted(seen):
    print(*s)
PY
)"
echo "the agent's requests (verb resource namespace name code):"; sed 's/^/  /' <<<"$used"
if awk '$NF == 403' <<<"$used" | grep . >/dev/null; then echo "the apiserver refused some of them"; exit 1; fi
for want in "list nodes" "watch nodes" "patch nodes/status" "create events" "list configmaps" "watch configmaps"; do
  grep -q "^$want " <<<"$used" || { echo "the agent never did: $want"; exit 1; }
done

# --- 2. the allowed / denied matrix --------------------------------------------------
can() {  # VERB RESOURCE [kubectl args]: prints yes/no
  local verb="$1" res="$2"; shift 2
  kubectl auth can-i "$verb" "$res" --as="$sa" "$@" 2>/dev/null || true
}
fail=0
check() {  # WANT VERB RESOURCE [args]
  local want="$1"; shift
  local got; got="$(can "$@")"
  printf '  %-4s %s\n' "$got" "$*"
  [ "$got" = "$want" ] || { echo "    want $want"; fail=1; }
}
echo "allowed:"
while read -r verb res ns name _; do
  sub=""; base="$res"
  case "$res" in */*) base="${res%%/*}"; sub="--subresource=${res#*/}";; esac
  [ "$name" = - ] || base="$base/$name"
  [ "$ns" = - ] && ns=""
  check yes "$verb" "$base" ${sub:+"$sub"} ${ns:+-n "$ns"}
done <<<"$used"
check yes get nodes; check yes list nodes; check yes watch nodes
check yes patch nodes --subresource=status
check yes create events -n default; check yes patch events -n default
for verb in get list watch; do check yes "$verb" configmaps/nodeagent-prefetch -n kube-system; done
check yes get secrets/nodeagent-pull-secret -n kube-system  # a prefetch set's pull secret, by name
echo "denied:"
check no get secrets -n kube-system
check no get secrets/other-secret -n kube-system
check no list secrets -n kube-system
check no watch secrets/nodeagent-pull-secret -n kube-system
check no get secrets/nodeagent-pull-secret -n default
check no list secrets --all-namespaces
check no get configmaps -n kube-system
check no list configmaps -n kube-system
check no get configmaps/kube-proxy -n kube-system
check no get configmaps/nodeagent-prefetch -n default
check no update configmaps/nodeagent-prefetch -n kube-system
check no delete pods -n kube-system
check no list pods --all-namespaces
check no create pods -n default
check no patch nodes
check no update nodes
check no delete nodes
check no create nodes
check no update nodes --subresource=status
check no get nodes --subresource=proxy
check no delete events -n default
check no list events -n default
check no get serviceaccounts -n kube-system
check no create serviceaccounts/token -n kube-system
check no patch daemonsets.apps -n kube-system
check no create clusterrolebindings.rbac.authorization.k8s.io
check no get leases.coordination.k8s.io -n kube-node-lease
check no '*' '*'
[ "$fail" = 0 ] || { echo "RBAC matrix differs"; exit 1; }

# --- 3. a refused request, reported with its verb and resource -------------------------
kubectl -n kube-system create serviceaccount nodeagent-readonly >/dev/null
kubectl create clusterrole nodeagent-readonly --verb=get,list,watch --resource=nodes >/dev/null
kubectl create clusterrolebinding nodeagent-readonly --clusterrole=nodeagent-readonly \
  --serviceaccount=kube-system:nodeagent-readonly >/dev/null
kubectl -n kube-system create token nodeagent-readonly > "$D/readonly.token"
sed "s|tokenFile: .*|tokenFile: \"$D/readonly.token\"}|" "$KUBECONFIG_AGENT" > "$D/readonly.kubeconfig"
grep -q "readonly.token" "$D/readonly.kubeconfig" || { echo "could not make the read-only kubeconfig"; exit 1; }
n=rbac-readonly-node
start_agent "$n" "$D/readonly.kubeconfig"
want="cannot patch nodes/status \"$n\""
logged() { grep -qF "$want" "$D/$n.log"; }
eventually "the agent logs: $want" logged || { cat "$D/$n.log"; exit 1; }
echo "log: $(grep -F "$want" "$D/$n.log" | head -1)"
# Degraded here (exit 1): the output is what counts, captured whole (no early close).
status_names() {
  local out
  out="$("$nodeagentctl" --socket "$D/$n/sock" -o json status || true)"
  grep -qF "cannot patch nodes/status" <<<"$out"
}
eventually "nodeagentctl status names the refused verb and resource" status_names ||
  { "$nodeagentctl" --socket "$D/$n/sock" -o json status; exit 1; }
echo "nodeagentctl status names it too"
stop_agent
if grep -qF "$(cat "$AGENT_TOKEN_FILE")" "$D"/*.log; then echo "token logged"; exit 1; fi
echo "rbac test ok"
