#!/usr/bin/env bash
# The README's demo must run, show the sysctl module tuned in its sandbox, stop cleanly,
# and leave the host as it was (no mounts, no temp dirs, host sysctls unchanged).
set -euo pipefail
root="$1"
before_somaxconn="$(cat /proc/sys/net/core/somaxconn)"
before_maxmap="$(cat /proc/sys/vm/max_map_count)"
out="$("$root/scripts/demo.sh" 2>&1)" || { echo "$out"; echo "demo exited non-zero" >&2; exit 1; }
echo "$out"
fail() { echo "demo_test: $*" >&2; exit 1; }
grep -qE '^Health: +healthy' <<<"$out" || fail "status is not healthy"
grep -qE '^SysctlTuned +True' <<<"$out" || fail "no SysctlTuned True condition"
grep -q 'info \[agent\] stopped' <<<"$out" || fail "daemon did not stop cleanly"
! grep -q nodeagent-sandbox /proc/mounts || fail "sandbox mounts left on the host"
! ls -d /tmp/nodeagent-demo.* 2>/dev/null || fail "demo temp dir left behind"
[ "$(cat /proc/sys/net/core/somaxconn)" = "$before_somaxconn" ] || fail "host net.core.somaxconn changed"
[ "$(cat /proc/sys/vm/max_map_count)" = "$before_maxmap" ] || fail "host vm.max_map_count changed"
echo "demo_test: ok"
