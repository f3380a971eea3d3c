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
# The guest mounts a tmpfs on /tmp, so the control plane's files go to /opt/nodeagent/cp
# there: kubeconfigs and env rewritten to that folder and to the guest's address of the
# apiserver (its certificate names 10.0.2.2).
g=/opt/nodeagent/cp
mkdir -p "$work/guest"
guestify() { sed -e "s#$APISERVER_URL#$APISERVER_GUEST_URL#g" -e "s#$CP_DIR#$g#g" "$1"; }
guestify "$KUBECONFIG_ADMIN" > "$work/guest/admin.kubeconfig"
guestify "$KUBECONFIG_AGENT_GUEST" > "$work/guest/agent-guest.kubeconfig"
guestify "$work/cp/env" | sed "s#^KUBECONFIG_AGENT_GUEST=.*#KUBECONFIG_AGENT_GUEST=$g/agent-guest.kubeconfig#" > "$work/guest/env"
for f in "$work/guest/admin.kubeconfig" "$work/guest/agent-guest.kubeconfig"; do
  grep -q "$APISERVER_GUEST_URL" "$f" && ! grep -q "$CP_DIR" "$f" || { echo "kube-vm: cannot rewrite $f" >&2; exit 1; }
done
files=(--file "$root/tests/ipvs/vm/lib.sh:/opt/nodeagent/lib.sh"
       --file "$root/tests/ipvs/vm/kube.sh:/opt/nodeagent/kube.sh"
       --file "$work/guest/env:/opt/nodeagent/cp.env"
       --file "$work/guest/admin.kubeconfig:/opt/nodeagent/admin-guest.kubeconfig"
       --file "$work/guest/agent-guest.kubeconfig:$g/agent-guest.kubeconfig"
       --file "$AGENT_TOKEN_FILE:${AGENT_TOKEN_FILE/#$CP_DIR/$g}"
       --file "$CP_DIR/pki:$g/pki")
# libcurl is loaded with dlopen (kube/curl_library.h), so ldd of the daemon does not name it.
curl_lib="$(ldconfig -p | awk '/libcurl\.so\.4 .*x86-64/ {print $NF; exit}')"
[ -n "$curl_lib" ] || { echo "kube-vm: libcurl.so.4 not found (libcurl4)" >&2; exit 1; }
for f in "$curl_lib" $(ldd "$curl_lib" | grep -o '/[^ ]*'); do files+=(--file "$f:$f"); done
# socat serves and asks UDP (busybox's nc has no UDP); conntrack reads the flows back.
tools=()
for t in socat conntrack; do
  p="$(command -v "$t")" || { echo "kube-vm: $t missing (scripts/packages/vm.txt)" >&2; exit 1; }
  tools+=(--bin "$p")
done
"$root/tests/vm/run-vm.sh" --net --timeout 1500 --mem 1536 \
  --bin "$1" --bin "$2" --bin "$BIN_DIR/kubectl" "${tools[@]}" "${files[@]}" -- bash /opt/nodeagent/kube.sh
