#!/usr/bin/env bash
# Host side of the Kubernetes service-proxy scenarios and of bench/proxy-kube's kernel
# phase: a real control plane (tests/k8s/control-plane.sh, loopback only), kubeconfigs that
# reach it from the VM at 10.0.2.2, and a guest command run in the VM with kubectl, socat,
# conntrack, tests/ipvs/vm/lib.sh and what --bin/--file add.
#
#   kube-vm.sh [--cp-dir DIR] [--bin FILE]... [--file SRC:DST]... [--timeout S] [--mem MB] -- CMD...
#
# Without --cp-dir it starts its own control plane and stops it at the end; with it, it uses
# the one running in DIR (started by the caller, left running). In the guest,
# /opt/nodeagent/cp.env holds the control plane's env (tests/k8s/README.md) rewritten for
# the guest, /opt/nodeagent/admin-guest.kubeconfig is the admin's, and CTL_PORT in cp.env
# is a control channel to the host: a guest sends one line, "stop-apiserver",
# "start-apiserver" or "compact-etcd", to 10.0.2.2:CTL_PORT and reads "ok" once it is done
# (the fault tests' outage and 410; see tests/ipvs/vm/lib.sh `host_ctl`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cp_dir=""; timeout=1500; mem=1536
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cp-dir) cp_dir="$2"; shift 2 ;;
    --bin|--file) extra+=("$1" "$2"); shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --mem) mem="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "kube-vm: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--cp-dir DIR] [--bin F]... [--file S:D]... -- CMD..." >&2; exit 2; }
work="$(mktemp -d /tmp/nodeagent-kube-vm.XXXXXX)"
ctl_pid=""
cleanup() {
  [ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null
  [ -z "$own_cp" ] || "$root/tests/k8s/control-plane.sh" stop "$cp_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
own_cp=""
trap cleanup EXIT
if [ -z "$cp_dir" ]; then
  cp_dir="$work/cp"; own_cp=1
  "$root/tests/k8s/control-plane.sh" start "$cp_dir" >/dev/null
fi
# shellcheck disable=SC1091
source "$cp_dir/env"

# The control channel: socat runs one handler per connection; the handler only knows the
# three commands and only acts on this control plane. -t: the guest half-closes after its
# line, and the answer comes once the command is done (socat's default waits 0.5 s, then
# drops the connection, and the guest never read its "ok").
ctl_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/ctl.sh" <<CTL
#!/usr/bin/env bash
read -r cmd
case "\$cmd" in
  stop-apiserver|start-apiserver|compact-etcd)
    if "$root/tests/k8s/control-plane.sh" "\$cmd" "$cp_dir" >>"$work/ctl.log" 2>&1; then echo ok; else echo failed; fi ;;
  *) echo "unknown command" ;;
esac
CTL
chmod +x "$work/ctl.sh"
socat -t 600 "TCP-LISTEN:$ctl_port,bind=127.0.0.1,reuseaddr,fork" "EXEC:$work/ctl.sh" &
ctl_pid=$!

# The guest mounts a tmpfs on /tmp, so the control plane's files go to /opt/nodeagent/cp
# there: kubeconfigs and env rewritten to that folder and to the guest's address of the
# apiserver (its certificate names 10.0.2.2).
g=/opt/nodeagent/cp
mkdir -p "$work/guest"
guestify() { sed -e "s#$APISERVER_URL#$APISERVER_GUEST_URL#g" -e "s#$CP_DIR#$g#g" "$1"; }
guestify "$KUBECONFIG_ADMIN" > "$work/guest/admin.kubeconfig"
guestify "$KUBECONFIG_AGENT_GUEST" > "$work/guest/agent-guest.kubeconfig"
{ guestify "$cp_dir/env" | sed "s#^KUBECONFIG_AGENT_GUEST=.*#KUBECONFIG_AGENT_GUEST=$g/agent-guest.kubeconfig#"
  echo "CTL_PORT=$ctl_port"; } > "$work/guest/env"
for f in "$work/guest/admin.kubeconfig" "$work/guest/agent-guest.kubeconfig"; do
  grep -q "$APISERVER_GUEST_URL" "$f" && ! grep -q "$CP_DIR" "$f" || { echo "kube-vm: cannot rewrite $f" >&2; exit 1; }
done
files=(--file "$root/tests/ipvs/vm/lib.sh:/opt/nodeagent/lib.sh"
       --file "$work/guest/env:/opt/nodeagent/cp.env"
       --file "$work/guest/admin.kubeconfig:/opt/nodeagent/admin-guest.kubeconfig"
       --file "$work/guest/agent-guest.kubeconfig:$g/agent-guest.kubeconfig"
       --file "$AGENT_TOKEN_FILE:${AGENT_TOKEN_FILE/#$CP_DIR/$g}"
       --file "$CP_DIR/pki:$g/pki")
# libcurl is loaded with dlopen (kube/curl_library.h), so ldd of the daemon does not name it.
curl_lib="$(ldconfig -p | awk '/libcurl\.so\.4 .*x86-64/ {print $NF; exit}')"
[ -n "$curl_lib" ] || { echo "kube-vm: libcurl.so.4 not found (libcurl4)" >&2; exit 1; }
for f in "$curl_lib" $(ldd "$curl_lib" | grep -o '/[^ ]*'); do files+=(--file "$f:$f"); done
# socat serves and asks UDP (busybox's nc has no UDP) and talks to the control channel;
# conntrack reads the flows back.
tools=()
for t in socat conntrack; do
  p="$(command -v "$t")" || { echo "kube-vm: $t missing (scripts/packages/vm.txt)" >&2; exit 1; }
  tools+=(--bin "$p")
done
"$root/tests/vm/run-vm.sh" --net --timeout "$timeout" --mem "$mem" \
  --bin "$BIN_DIR/kubectl" "${tools[@]}" "${files[@]}" "${extra[@]}" -- "$@"
