#!/usr/bin/env bash
# Runs a command in a sandbox where nodeagentd may do everything it does on a node without
# touching this machine: a new network namespace (real kernel, namespaced sysctls and
# conntrack are real) and a private mount namespace in which the global sysctl subtrees
# (/proc/sys/vm, fs, kernel, and nf_conntrack's module parameters) are replaced by copies,
# so writes to them stay in the sandbox.
#   scripts/sandbox.sh DIR -- COMMAND...     (DIR holds the copies; must exist)
set -euo pipefail
dir="$1"; shift
[ "${1:-}" = "--" ] && shift
if [ "$(id -u)" -ne 0 ]; then echo "sandbox.sh: needs root (namespaces)" >&2; exit 1; fi
export NODEAGENT_SANDBOX_DIR="$dir"
exec unshare --net --mount --propagation private --fork -- bash -c '
set -euo pipefail
stage() {  # stage SRC: copy readable files of SRC into a tmpfs and mount it over SRC
  local src="$1" copy="$NODEAGENT_SANDBOX_DIR/copy$1"
  [ -d "$src" ] || return 0
  mkdir -p "$copy"
  mount -t tmpfs -o size=16m nodeagent-sandbox "$copy"
  (cd "$src" && find . -type d 2>/dev/null) | while read -r d; do mkdir -p "$copy/$d"; done
  (cd "$src" && find . -type f -readable 2>/dev/null) | while read -r f; do
    cat "$src/$f" > "$copy/$f" 2>/dev/null || rm -f "$copy/$f"
  done
  mount --bind "$copy" "$src"
}
for d in /proc/sys/vm /proc/sys/fs /proc/sys/kernel /sys/module/nf_conntrack/parameters; do stage "$d"; done
ip link set lo up
exec "$@"
' sandbox "$@"
