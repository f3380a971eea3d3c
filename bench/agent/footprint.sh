#!/usr/bin/env bash
# Idle footprint of nodeagentd on its built-in default config, in the demo sandbox:
# resident memory (RSS, PSS, anonymous) after start and after a control call, and CPU
# time used while idle over a window (default 60 s). Target: under 10 MB RSS, no CPU.
#   bench/agent/footprint.sh [IDLE_SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
idle="${1:-60}"
bin="$build/agent"
work="$(mktemp -d /tmp/nodeagent-footprint.XXXXXX)"
sock="$work/run/nodeagent.sock"
cleanup() { [ -n "${pid:-}" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# Page-cache pages of a just-built binary count as dirty until written back.
sync
"$root/scripts/sandbox.sh" "$work" -- "$bin/nodeagentd" --socket "$sock" --state-dir "$work/state" \
  --sysctl-file "$work/90-nodeagent.conf" > "$work/log" 2>&1 &
for _ in $(seq 1 100); do
  pid="$(pgrep -f -- "^$bin/nodeagentd .*--socket $sock" | head -1 || true)"
  [ -n "$pid" ] && "$bin/nodeagentctl" --socket "$sock" status >/dev/null 2>&1 && break
  sleep 0.1
done
[ -n "$pid" ] || { cat "$work/log"; exit 1; }
mem() {
  local rss pss anon
  rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)
  anon=$(awk '/^RssAnon/{print $2}' /proc/$pid/status)
  pss=$(awk '/^Pss:/{print $2}' /proc/$pid/smaps_rollup)
  printf '%-28s RSS %6.1f MB   PSS %6.1f MB   anon %5.1f MB   threads %s\n' "$1" \
    "$(echo "$rss/1024" | bc -l)" "$(echo "$pss/1024" | bc -l)" "$(echo "$anon/1024" | bc -l)" \
    "$(awk '/^Threads/{print $2}' /proc/$pid/status)"
}
sleep 2
mem "after start"
"$bin/nodeagentctl" --socket "$sock" status -o json >/dev/null
mem "after a status call"
hz=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep "$idle"
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
mem "after ${idle}s idle"
printf 'CPU while idle: %d ticks (%.3f s) in %d s = %.3f%% of one core\n' $((t1 - t0)) \
  "$(echo "($t1-$t0)/$hz" | bc -l)" "$idle" "$(echo "100*($t1-$t0)/$hz/$idle" | bc -l)"
