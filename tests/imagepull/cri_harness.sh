#!/usr/bin/env bash
# The cri tier's real parts: Debian's containerd (CRI runtime.v1) and docker-registry, each
# with its own config, root, state, socket and log under one temp dir, listening only on a
# unix socket and on 127.0.0.1 with a free port. Never touches the host's containerd.
#
#   cri_harness.sh start DIR [--auth USER:PASSWORD] [--proxy-rate BYTES_PER_S --proxy-delay-ms MS]
#       starts both and writes DIR/env (shell syntax: CRI_SOCKET, REGISTRY, REGISTRY_LOG,
#       CONTAINERD_LOG, ...). Fails loudly if either does not come up.
#   cri_harness.sh push DIR SPEC...    builds images (make_images.py SPEC) and pushes them
#   cri_harness.sh stop-registry DIR / start-registry DIR   (outage tests)
#   cri_harness.sh stop DIR            stops everything it started
#   cri_harness.sh blob-gets DIR       counts blob GETs in the registry's access log
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "cri_harness: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

need() {
  for b in containerd ctr docker-registry skopeo python3; do
    command -v "$b" >/dev/null || die "$b is not installed (scripts/install-deps.sh installs scripts/packages/cri.txt)"
  done
}

start_registry() {
  local dir=$1
  # shellcheck disable=SC1091
  source "$dir/env"
  docker-registry serve "$dir/registry.yml" >>"$REGISTRY_LOG" 2>&1 &
  echo $! >"$dir/registry.pid"
  for _ in $(seq 100); do
    if python3 - "$REGISTRY_PORT" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
PY
    kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || { tail -20 "$REGISTRY_LOG" >&2; die "docker-registry exited"; }
    sleep 0.1
  done
  tail -20 "$REGISTRY_LOG" >&2
  die "docker-registry did not listen on 127.0.0.1:$REGISTRY_PORT"
}

stop_pid() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_start() {
  local dir=$1; shift
  local auth="" rate="" delay=20
  while [ $# -gt 0 ]; do
    case $1 in
      --auth) auth=$2; shift 2 ;;
      --proxy-rate) rate=$2; shift 2 ;;
      --proxy-delay-ms) delay=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  need
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local port; port=$(free_port)
  local endpoint="127.0.0.1:$port"  # what containerd talks to (the proxy when throttled)
  mkdir -p "$dir/registry-data" "$dir/containerd/root" "$dir/containerd/state" "$dir/certs.d"
  {
    echo "version: 0.1"
    echo "log: {level: info, accesslog: {disabled: false}}"
    echo "storage: {filesystem: {rootdirectory: $dir/registry-data}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$port}"
    if [ -n "$auth" ]; then
      command -v htpasswd >/dev/null || die "htpasswd is not installed (apache2-utils)"
      htpasswd -Bbn "${auth%%:*}" "${auth#*:}" >"$dir/htpasswd"
      (umask 077; printf '%s' "$auth" >"$dir/push-creds")
      echo "auth: {htpasswd: {realm: nodeagent-test, path: $dir/htpasswd}}"
    fi
  } >"$dir/registry.yml"
  local registry="127.0.0.1:$port"
  {
    echo "DIR=$dir"
    echo "REGISTRY=$registry"
    echo "REGISTRY_PORT=$port"
    echo "REGISTRY_LOG=$dir/registry.log"
    echo "CRI_SOCKET=$dir/containerd.sock"
    echo "CONTAINERD_LOG=$dir/containerd.log"
    echo "CONTAINERD_ROOT=$dir/containerd/root"
  } >"$dir/env"
  : >"$dir/registry.log"
  start_registry "$dir"
  if [ -n "$rate" ]; then
    local pport; pport=$(free_port)
    python3 "$here/../../bench/imagepull/throttle_proxy.py" --listen "127.0.0.1:$pport" \
      --target "$registry" --rate "$rate" --delay-ms "$delay" >"$dir/proxy.log" 2>&1 &
    echo $! >"$dir/proxy.pid"
    endpoint="127.0.0.1:$pport"
    echo "PROXY=$endpoint" >>"$dir/env"
    for _ in $(seq 50); do grep -qs listening "$dir/proxy.log" && break; sleep 0.1; done
    grep -q listening "$dir/proxy.log" || { cat "$dir/proxy.log" >&2; die "throttle proxy did not start"; }
  fi
  # Images are named by the registry address; the proxy (if any) serves that host name.
  mkdir -p "$dir/certs.d/$registry"
  cat >"$dir/certs.d/$registry/hosts.toml" <<TOML
server = "http://$endpoint"
[host."http://$endpoint"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
TOML
  local snap=overlayfs
  # overlayfs needs a file system that supports it under the root; fall back like TESTING.md says.
  if ! (cd "$dir" && mkdir -p ovl/l ovl/u ovl/w ovl/m && mount -t overlay overlay -o lowerdir=ovl/l,upperdir=ovl/u,workdir=ovl/w ovl/m 2>/dev/null && umount ovl/m); then
    snap=native
  fi
  rm -rf "$dir/ovl"
  cat >"$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = "$dir/containerd-debug.sock"
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  disable_cgroup = true
  disable_apparmor = true
  stats_collect_period = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snap"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni/bin"
    conf_dir = "$dir/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
  containerd --config "$dir/containerd.toml" >"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  for _ in $(seq 150); do
    if ctr --address "$dir/containerd.sock" plugins ls 2>/dev/null | grep -E 'io.containerd.grpc.v1 +cri ' | grep ' ok' >/dev/null; then
      echo "CONTAINERD_SNAPSHOTTER=$snap" >>"$dir/env"
      return 0
    fi
    kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || { tail -30 "$dir/containerd.log" >&2; die "containerd exited"; }
    sleep 0.1
  done
  tail -30 "$dir/containerd.log" >&2
  ctr --address "$dir/containerd.sock" plugins ls >&2 || true
  die "containerd's cri plugin did not come up"
}

cmd_push() {
  local dir=$1; shift
  # shellcheck disable=SC1091
  source "$dir/env"
  local creds=()
  if [ -f "$dir/htpasswd" ]; then creds=(--dest-creds "$(cat "$dir/push-creds")"); fi
  python3 "$here/make_images.py" "$dir/oci" "$@" >>"$dir/images.txt"
  for spec in "$@"; do
    local ref=${spec%%=*}
    skopeo copy -q --dest-tls-verify=false "${creds[@]}" "oci:$dir/oci:$ref" "docker://$REGISTRY/$ref" \
      || die "skopeo could not push $ref"
  done
}

cmd_stop() {
  local dir=$1
  stop_pid "$dir/containerd.pid"
  stop_pid "$dir/proxy.pid"
  stop_pid "$dir/registry.pid"
  # containerd may leave overlay mounts of its snapshots behind.
  # (grep finds nothing when no mounts are left: not an error.)
  { grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cmd_blob_gets() {
  local dir=$1
  # shellcheck disable=SC1091
  source "$dir/env"
  grep -cE '"GET /v2/[^ ]*/blobs/sha256:[0-9a-f]+[? ]' "$REGISTRY_LOG" || true
}

sub=${1:-}; shift || true
case $sub in
  start) cmd_start "$@" ;;
  push) cmd_push "$@" ;;
  stop) cmd_stop "$@" ;;
  stop-registry) stop_pid "$1/registry.pid" ;;
  start-registry) start_registry "$1" ;;
  blob-gets) cmd_blob_gets "$@" ;;
  *) die "usage: cri_harness.sh start|push|stop|stop-registry|start-registry|blob-gets DIR ..." ;;
esac
