#!/usr/bin/env bash
# Benchmark of the sysctl module: plan+apply+verify of the whole large-cluster profile vs
# `sysctl -p` on the equivalent file, in the same run and the same sandbox: a fresh network
# namespace (the namespaced net.* keys are real kernel keys) and a private mount namespace
# with tmpfs over /proc/sys/{vm,fs,kernel} seeded with the host's current values (global
# keys are plain files, nothing global changes). Also reports nodeagentd's RSS after its
# first pass on the built-in default config in the same kind of sandbox.
# Usage: bench/sysctl/run.sh [ITERATIONS]   (root; builds with scripts/build.sh first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
iterations="${1:-50}"
if [ "$(id -u)" -ne 0 ]; then echo "run.sh: needs root (namespaces)" >&2; exit 1; fi
cmake --build "$build" -j2 --target sysctl_bench nodeagentd nodeagentctl >/dev/null
work="$(mktemp -d /tmp/nodeagent-sysctl-bench-XXXXXX)"
trap 'rm -rf "$work"' EXIT
export build work iterations
unshare --net --mount bash -euo pipefail -c '
mount --make-rprivate /
for d in vm fs kernel; do
  mkdir -p $work/seed/$d
  for k in vm/max_map_count vm/overcommit_memory fs/file-max fs/inotify/max_user_instances \
           fs/inotify/max_user_watches kernel/panic kernel/panic_on_oops kernel/softlockup_panic \
           kernel/softlockup_all_cpu_backtrace; do
    case $k in $d/*) mkdir -p "$(dirname $work/seed/$k)"; cat /proc/sys/$k > $work/seed/$k 2>/dev/null || echo 0 > $work/seed/$k;; esac
  done
  mount -t tmpfs tmpfs /proc/sys/$d
  cp -r $work/seed/$d/. /proc/sys/$d/
done
mkdir -p $work/sys && mount -t tmpfs tmpfs $work/sys  # like sysfs: no disk under the fake tree
mkdir -p $work/sys/module/nf_conntrack/parameters $work/sys/devices/system/cpu
echo 16384 > $work/sys/module/nf_conntrack/parameters/hashsize
cp /sys/devices/system/cpu/online $work/sys/devices/system/cpu/online
ip link set lo up
set +e
"$build/bench/sysctl/sysctl_bench" $work/sys $work $iterations
rc=$?
set -e
# Footprint: the daemon on its built-in default, after the first pass.
"$build/bin/nodeagentd" --sys-root $work/sys --sysctl-file $work/90-nodeagent.conf --state-dir $work/state \
  --socket $work/sock --log-level warn 2>/dev/null &
pid=$!
for i in $(seq 1 100); do
  "$build/bin/nodeagentctl" --socket $work/sock sysctl status -o json > $work/st.json 2>/dev/null && break
  sleep 0.1
done
sleep 0.5
echo "nodeagentd RSS after first pass: $(awk "/VmRSS/ {print \$2, \$3}" /proc/$pid/status)"
echo "nodeagentd CPU time after first pass: $(awk "{print (\$14+\$15)*10 \" ms\"}" /proc/$pid/stat)"
sleep 3
echo "nodeagentd CPU time 3 s later (idle): $(awk "{print (\$14+\$15)*10 \" ms\"}" /proc/$pid/stat)"
kill $pid; wait $pid 2>/dev/null || true
exit $rc
'
