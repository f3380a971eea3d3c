#!/usr/bin/env bash
# The demo: nodeagentd on its built-in default config, against the real kernel, in a
# sandbox (scripts/sandbox.sh) so the machine it runs on is left as it was. Shows what
# the agent planned and did, then stops it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bin="$build/bin"
[ -x "$bin/nodeagentd" ] || "$root/scripts/build.sh"
work="$(mktemp -d /tmp/nodeagent-demo.XXXXXX)"
sock="$work/run/nodeagent.sock"
ctl() { "$bin/nodeagentctl" --socket "$sock" "$@"; }
cleanup() {
  [ -n "${pid:-}" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  umount -R "$work"/copy/* 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

section "nodeagentd --check-config (built-in default)"
"$bin/nodeagentd" --check-config

section "starting nodeagentd in a sandbox (new network + mount namespace)"
"$root/scripts/sandbox.sh" "$work" -- "$bin/nodeagentd" --log-format text \
  --socket "$sock" --state-dir "$work/state" --sysctl-file "$work/sysctl.d/90-nodeagent.conf" \
  > "$work/daemon.log" 2>&1 &
sandbox=$!
# unshare --fork ignores SIGTERM in its parent: signal the daemon itself.
# The waits end as soon as the daemon is there; their bounds are generous for a loaded machine.
for _ in $(seq 1 300); do
  pid="$(pgrep -f -- "^$bin/nodeagentd .*--socket $sock" | head -1 || true)"
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "demo: nodeagentd did not start" >&2; cat "$work/daemon.log" >&2; exit 1; }
for _ in $(seq 1 600); do
  rc=0; ctl status >/dev/null 2>&1 || rc=$?
  [ "$rc" -ne 3 ] && [ "$rc" -ne 4 ] && break
  sleep 0.1
done
sed 's/^/  log | /' "$work/daemon.log"

section "nodeagentctl status"
ctl status || true

# Every module view the CLI has (modules come with their commands).
has_command() { ctl --help | grep -E "^  $1( |$)" >/dev/null && ctl "$1" --help | grep -E "^  $2( |$)" >/dev/null; }
for cmd in "sysctl status" "sysctl plan" "conntrack stats" "ipvs list" "images list"; do
  if has_command $cmd; then
    section "nodeagentctl $cmd"
    ctl $cmd || true
  fi
done

section "nodeagentctl status -o json (first lines)"
{ ctl status -o json || true; } | sed -n 1,20p

section "stopping (SIGTERM)"
kill -TERM "$pid"; wait "$sandbox" || true; pid=
tail -3 "$work/daemon.log" | sed 's/^/  log | /'
echo
echo "The host was not changed: the sandbox's network namespace and sysctl copies are gone."
