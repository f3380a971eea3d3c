#!/usr/bin/env bash
# Idle footprint of nodeagentd on its built-in default config, in the demo sandbox.
# Two daemons run one after the other in the same run:
#   baseline: agent.release_idle_pages=false (every page start-up mapped stays mapped)
#   default:  start-up pages are unmapped once the daemon goes quiet (common/memory.h)
# For each: RSS, PSS and anonymous memory after start, after a status call, and sampled
# every few seconds over an idle window (default 90 s, so that a periodic resync pass
# falls inside it), plus the CPU time used while idle. Target: under 10 MB RSS, no CPU.
#   bench/daemon/footprint.sh [IDLE_SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
idle="${1:-90}"
step=5
bin="$build/bin"
work="$(mktemp -d /tmp/nodeagent-footprint.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# Page-cache pages of a just-built binary count as dirty until written back.
sync

kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
pss() { awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup"; }
mb() { echo "scale=1; $1/1024" | bc -l; }
line() {
  printf '  %-22s RSS %5s MB   PSS %5s MB   anon %4s MB   threads %s\n' "$1" "$(mb "$(kb VmRSS)")" \
    "$(mb "$(pss)")" "$(mb "$(kb RssAnon)")" "$(kb Threads)"
}

# run NAME RELEASE(true|false): starts the daemon, prints its figures, leaves
# "max_rss_kb final_rss_kb cpu_ticks" in $work/NAME.result.
run() {
  local name="$1" release="$2" sock="$work/$1/run/nodeagent.sock"
  mkdir -p "$work/$name"
  printf 'agent:\n  release_idle_pages: %s\n' "$release" > "$work/$name/config.yaml"
  "$root/scripts/sandbox.sh" "$work/$name" -- "$bin/nodeagentd" --config "$work/$name/config.yaml" \
    --socket "$sock" --state-dir "$work/$name/state" --sysctl-file "$work/$name/90-nodeagent.conf" \
    > "$work/$name/log" 2>&1 &
  pid=""
  for _ in $(seq 1 100); do
    pid="$(pgrep -f -- "^$bin/nodeagentd .*--socket $sock" | head -1 || true)"
    [ -n "$pid" ] && "$bin/nodeagentctl" --socket "$sock" status >/dev/null 2>&1 && break
    sleep 0.1
  done
  [ -n "$pid" ] || { cat "$work/$name/log"; exit 1; }
  echo "$name (release_idle_pages: $release)"
  sleep 2
  line "after start"
  "$bin/nodeagentctl" --socket "$sock" status -o json >/dev/null
  line "after a status call"
  local hz t0 t1 max=0 r
  hz=$(getconf CLK_TCK)
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local samples=""
  for _ in $(seq 1 $((idle / step))); do
    sleep "$step"
    r=$(kb VmRSS)
    samples+=" $(mb "$r")"
    [ "$r" -gt "$max" ] && max=$r
  done
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  line "after ${idle}s idle"
  echo "  RSS every ${step}s (MB):$samples"
  printf '  CPU while idle: %d ticks (%.3f s) in %d s = %.3f%% of one core\n' $((t1 - t0)) \
    "$(echo "($t1-$t0)/$hz" | bc -l)" "$idle" "$(echo "100*($t1-$t0)/$hz/$idle" | bc -l)"
  echo "$max $(kb VmRSS) $((t1 - t0))" > "$work/$name.result"
  kill -TERM "$pid"
  wait 2>/dev/null || true
  pid=""
}

run baseline false
run default true
read -r bmax bfinal _ < "$work/baseline.result"
read -r dmax dfinal dcpu < "$work/default.result"
echo
printf 'RESULT idle RSS, highest sample over %d s: %s MB (baseline without release: %s MB)\n' "$idle" "$(mb "$dmax")" "$(mb "$bmax")"
printf 'RATIO idle RSS / baseline: %.2f\n' "$(echo "$dmax/$bmax" | bc -l)"
printf 'RATIO idle RSS / 10 MB target: %.2f (target < 1)\n' "$(echo "$dmax/10240" | bc -l)"
printf 'RESULT idle CPU: %d ticks in %d s\n' "$dcpu" "$idle"
