#!/usr/bin/env bash
# Host side of the Kubernetes service-proxy scenario: starts the real control plane
# (tests/k8s/control-plane.sh, loopback only), gives the VM kubeconfigs that reach it at
# 10.0.2.2, runs tests/ipvs/vm/kube.sh inside the VM with nodeagentd, nodeagentctl and
# kubectl, and stops the control plane again whatever happened.
#
#   kube-vm.sh NODEAGENTD NODEAGENTCTL
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 NODEAGENTD NODEAGENTCTL" >&2; exit 2; }
work="$(mktemp -d /tmp/nodeagent-kube-vm.XXXXXX)"
cleanup() {
  "$root/tests/k8s/control-plane.sh" stop "$work/cp" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$root/tests/k8s/control-plane.sh" start "$work/cp" >/dev/null
# shellcheck disable=SC1091
source "$work/cp/env"
# The admin kubeconfig with the guest's address of the apiserver (its certificate names 10.0.2.2).
sed "s#$APISERVER_URL#$APISERVER_GUEST_URL#" "$KUBECONFIG_ADMIN" > "$work/admin-guest.kubeconfig"
grep -q "$APISERVER_GUEST_URL" "$work/admin-guest.kubeconfig" || { echo "kube-vm: cannot rewrite the admin kubeconfig" >&2; exit 1; }
files=(--file "$root/tests/ipvs/vm/lib.sh:/opt/nodeagent/lib.sh"
       --file "$root/tests/ipvs/vm/kube.sh:/opt/nodeagent/kube.sh"
       --file "$work/cp/env:/opt/nodeagent/cp.env"
       --file "$work/admin-guest.kubeconfig:/opt/nodeagent/admin-guest.kubeconfig"
       --file "$KUBECONFIG_AGENT_GUEST:$KUBECONFIG_AGENT_GUEST"
       --file "$AGENT_TOKEN_FILE:$AGENT_TOKEN_FILE"
       --file "$CA_FILE:$CA_FILE")
# The admin client certificate and key the admin kubeconfig names, at the same paths.
for f in $(grep -oE '(client-certificate|client-key): "?[^",}]+' "$KUBECONFIG_ADMIN" | sed -E 's/^[a-z-]+: "?//'); do
  files+=(--file "$f:$f")
done
"$root/tests/vm/run-vm.sh" --net --timeout 1500 --mem 1536 \
  --bin "$1" --bin "$2" --bin "$BIN_DIR/kubectl" "${files[@]}" -- bash /opt/nodeagent/kube.sh
