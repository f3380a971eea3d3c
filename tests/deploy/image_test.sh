#!/usr/bin/env bash
# The container image, built by deploy/build-image.sh and run the way deploy/daemonset.yaml
# runs it (tests/deploy/pod_spec.py reads the manifest): privileged, the ConfigMap's data
# mounted at /etc/nodeagent, every hostPath replaced by a temp dir (the control socket's
# folder among them), NODE_NAME set, and the ServiceAccount token, CA and
# KUBERNETES_SERVICE_HOST/PORT as the kubelet provides them, for the real kube-apiserver of
# tests/k8s/control-plane.sh (the token is the nodeagent ServiceAccount's, deploy/rbac.yaml).
#
# Unlike the DaemonSet (hostNetwork), the container keeps its own network namespace so the
# host's network is untouched. The apiserver listens on 127.0.0.1 only; a socat relay
# listens on the docker bridge's gateway address and forwards to it, and the container
# reaches it as kubernetes.default.svc (--add-host), a name in the serving certificate.
# The sysctl module stays on but with `profile: none` and one network-namespaced key
# (net.core.somaxconn), so every write lands in the container's namespace: the host's
# sysctls are compared before and after.
#
# Checks: the Node gets the agent's conditions; nodeagentctl on the host reaches the socket
# in the mounted folder; the liveness command exits 0; `docker stop` (SIGTERM) ends it with
# exit 0 well inside the grace period. Prints the image's size.
# Usage: image_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
for tool in docker socat python3; do command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }; done
D="$(mktemp -d /tmp/nodeagent-image-XXXXXX)"
name="nodeagent-image-test-$$"
node="image-test-node"
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  [ -n "${RELAY:-}" ] && kill "$RELAY" 2>/dev/null || true
  bash "$src/tests/k8s/control-plane.sh" stop "$D/cp" >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT

t0=$SECONDS
image="$(bash "$src/deploy/build-image.sh" 2>"$D/build.log")" || { cat "$D/build.log"; exit 1; }
cat "$D/build.log"
echo "image built in $((SECONDS - t0)) s"

bash "$src/tests/k8s/control-plane.sh" start "$D/cp" >/dev/null 2>"$D/cp.log" || { cat "$D/cp.log"; exit 1; }
# shellcheck disable=SC1091
. "$D/cp/env"
kubectl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: $node}
YAML

# The host's address on docker's default bridge: the IPAM gateway, or (older engines leave
# it out) the bridge interface's IPv4 address.
gw="$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')"
if [ -z "$gw" ]; then
  br="$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}')"
  gw="$(ip -4 -o addr show dev "${br:-docker0}" | awk '{print $4}' | cut -d/ -f1 | head -1)"
fi
[ -n "$gw" ] || { echo "no gateway address on docker's bridge network"; exit 1; }
socat "TCP-LISTEN:$APISERVER_PORT,bind=$gw,fork,reuseaddr" "TCP:127.0.0.1:$APISERVER_PORT" 2>"$D/relay.log" &
RELAY=$!

mkdir -p "$D/sa"
cp "$AGENT_TOKEN_FILE" "$D/sa/token"; cp "$CA_FILE" "$D/sa/ca.crt"; echo kube-system > "$D/sa/namespace"
overlay='{sysctl: {profile: none, keys: {net.core.somaxconn: 4099}}}'
eval "$(python3 "$src/tests/deploy/pod_spec.py" "$src/deploy/daemonset.yaml" "$src/deploy/configmap.yaml" "$D" "$node" "$overlay")"
[ "${IMAGE[0]}" = "$image" ] || { echo "daemonset.yaml runs ${IMAGE[0]}, build-image.sh made $image"; exit 1; }

host_sysctls() {  # global state the agent must not touch, minus counters that move by themselves
  { sysctl -a 2>/dev/null; cat /sys/module/nf_conntrack/parameters/hashsize 2>/dev/null | sed 's/^/hashsize = /'; } |
    grep -vE '^(fs\.(dentry-state|file-nr|inode-nr|inode-state|aio-nr|quota\.)|kernel\.(random\.|ns_last_pid|pty\.nr|tainted)|net\.netfilter\.nf_conntrack_count|vm\.(stat_refresh|drop_caches))' | sort
}
host_sysctls > "$D/sysctl.before"

# privileged: true. Where this machine's own root lacks capabilities (a CI runner inside a
# container: CAP_SYS_RESOURCE is missing here), runc cannot grant them all and
# `--privileged` fails; the test then grants every capability the machine has, with
# seccomp, AppArmor and the masked/read-only /proc paths off, which is what the agent
# uses of privileged (a writable /proc/sys, netlink with CAP_NET_ADMIN).
if ! docker run --rm --privileged --network none --entrypoint /bin/true "$image" 2>"$D/priv.log"; then
  missing="$(python3 - <<'PY'
names = ("chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable "
         "net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot "
         "sys_ptrace sys_pacct sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease "
         "audit_write audit_control setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read "
         "perfmon bpf checkpoint_restore").split()
bnd = int(next(l for l in open("/proc/self/status") if l.startswith("CapBnd:")).split()[1], 16)
print(" ".join(n.upper() for i, n in enumerate(names) if not bnd >> i & 1))
PY
)"
  [ -n "$missing" ] || { echo "docker run --privileged fails:"; cat "$D/priv.log"; exit 1; }
  echo "--privileged is not possible here (this machine's root lacks: $missing); using every other capability"
  args=()
  for a in "${RUN_ARGS[@]}"; do
    if [ "$a" = --privileged ]; then
      args+=(--cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined
             --security-opt systempaths=unconfined)
      for c in $missing; do args+=(--cap-drop "$c"); done
    else
      args+=("$a")
    fi
  done
  RUN_ARGS=("${args[@]}")
fi
docker run -d --name "$name" "${RUN_ARGS[@]}" \
  -e KUBERNETES_SERVICE_HOST=kubernetes.default.svc -e "KUBERNETES_SERVICE_PORT=$APISERVER_PORT" \
  --add-host "kubernetes.default.svc:$gw" \
  -v "$D/sa:/var/run/secrets/kubernetes.io/serviceaccount:ro" \
  "$image" "${ARGS[@]}" >/dev/null
[ "$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$name")" != host ] || { echo "container shares the host's netns"; exit 1; }

sock="$D/host/run/nodeagent/nodeagent.sock"
ctl() { "$build/bin/nodeagentctl" --socket "$sock" "$@"; }
conditions() { kubectl get node "$node" -o jsonpath='{range .status.conditions[*]}{.type}={.status}{"\n"}{end}'; }
ok=""
for _ in $(seq 120); do
  if conditions | grep -x 'NodeAgentSysctlTuned=True' >/dev/null; then ok=1; break; fi
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || break
  sleep 0.5
done
if [ -z "$ok" ]; then
  echo "the Node never got NodeAgentSysctlTuned=True; conditions:"; conditions; docker logs "$name" 2>&1 | tail -30; exit 1
fi
echo "node conditions: $(conditions | tr '\n' ' ')"

ctl version > "$D/version.txt" || { echo "nodeagentctl version from the host failed"; cat "$D/version.txt"; exit 1; }
grep -qi daemon "$D/version.txt" || { echo "no daemon version in:"; cat "$D/version.txt"; exit 1; }
rc=0; ctl status > "$D/status.txt" || rc=$?
[ "$rc" -le 1 ] || { echo "nodeagentctl status exited $rc"; cat "$D/status.txt"; exit 1; }
grep -q '^reporter:' "$D/status.txt" || { echo "no reporter row in status:"; cat "$D/status.txt"; exit 1; }
echo "nodeagentctl from the host: version and status answered (status exit $rc)"

docker exec "$name" "${LIVENESS[@]}" > "$D/liveness.txt" 2>&1 || { echo "liveness command failed:"; cat "$D/liveness.txt"; exit 1; }
echo "liveness command (${LIVENESS[*]}): exit 0"

[ -s "$D/host/etc/sysctl.d/90-nodeagent.conf" ] || { echo "no sysctl.d drop-in in the mounted folder"; ls -R "$D/host/etc"; exit 1; }
[ "$(docker exec "$name" cat /proc/sys/net/core/somaxconn)" = 4099 ] || { echo "somaxconn not set in the container's netns"; exit 1; }

t0=$(date +%s%N)
docker stop -t "${GRACE[0]}" "$name" >/dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
code="$(docker inspect -f '{{.State.ExitCode}}' "$name")"
echo "docker stop: ${ms} ms, exit code $code (grace ${GRACE[0]} s)"
[ "$code" = 0 ] || { echo "nodeagentd exited $code on SIGTERM"; docker logs "$name" 2>&1 | tail -20; exit 1; }
[ "$ms" -lt 10000 ] || { echo "SIGTERM took ${ms} ms; the grace period is ${GRACE[0]} s"; exit 1; }

host_sysctls > "$D/sysctl.after"
if ! diff "$D/sysctl.before" "$D/sysctl.after"; then echo "the host's sysctls changed"; exit 1; fi
if docker logs "$name" 2>&1 | grep -F "$(cat "$AGENT_TOKEN_FILE")" >/dev/null; then echo "token logged"; exit 1; fi
echo "image: $image, $(docker image inspect -f '{{.Size}}' "$image") bytes"
echo "image test ok"
