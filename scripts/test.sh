#!/usr/bin/env bash
# Runs every test tier: unit, netns (real kernel in network namespaces), vm (real IPVS in a
# QEMU VM), cri (real containerd and registry on 127.0.0.1), kube (a real kube-apiserver and
# etcd built by tests/k8s/build.sh into /var/cache/nodeagent, started per test process),
# deploy (Debian package, container image and deploy/ manifests, with Docker Engine).
# Then, with clang 16 (built at low priority while the normal tiers run): the unit, netns
# and daemon tiers once more under ASan + UBSan
# (scripts/sanitize.sh address, build-asan/), every fuzz target for 30 s from that same
# build (scripts/fuzz.sh), and the unit tests of the threaded parts under TSan
# (scripts/sanitize.sh thread, build-tsan/, tests/tsan_tests.txt). Any failed test,
# sanitizer report or fuzzer crash fails the run.
#
#   scripts/test.sh             everything (CI, .ci/run)
#   scripts/test.sh --normal    only the CTest tiers of the normal build
#   scripts/test.sh ARGS...     only the CTest tests ARGS select (e.g. -L unit, -R sysctl)
#
# Needs root (namespaces, VMs) and the packages of scripts/install-deps.sh. A tier or stage
# that cannot run fails; nothing passes by skipping. Every stage runs even when one before
# it failed, so one run shows every problem; the end prints each stage's time and result.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
full=1
if [ "${1:-}" = "--normal" ]; then
  full=0
  shift
elif [ $# -gt 0 ]; then
  full=0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: the netns, vm and cri tiers need root; run as root" >&2
  exit 1
fi

stages=()
results=()
run_stage() {
  local name="$1" start rc=0
  shift
  start=$(date +%s)
  echo "test.sh: stage $name: $*"
  "$@" || rc=$?
  local took=$(( $(date +%s) - start ))
  stages+=("$name")
  if [ "$rc" -eq 0 ]; then
    results+=("ok      ${took}s")
  else
    results+=("FAILED  ${took}s (exit $rc)")
  fi
  echo "test.sh: stage $name took ${took}s, exit $rc"
  return 0
}

# The normal build, and the kube tier's Kubernetes components (a hash check when warm; a
# cold build takes long), skipped only when the selection clearly leaves the kube tier and
# the VM tier (its Kubernetes scenario) out.
run_stage build "$root/scripts/build.sh"
need_k8s=1
case " $* " in
  *" -L "* | *" -R "*) [[ " $* " == *kube* || " $* " == *vm* ]] || need_k8s=0 ;;
esac
[ "$need_k8s" -eq 0 ] || run_stage k8s-components bash -c "bash '$root/tests/k8s/build.sh' kube-apiserver etcd kubectl >/dev/null"

# Tests touch only what they create: the host's sysctl.d, its /proc/sys values and
# /run/nodeagent must be as they were after the whole suite (scripts/host_snapshot.sh),
# the sanitizer runs of the netns and daemon tiers included.
snap="$(mktemp -d /tmp/nodeagent-host-snapshot-XXXXXX)"
trap 'rm -rf "$snap" "${sanitize_log:-}"; [ -z "${sanitize_pid:-}" ] || kill -- "-$sanitize_pid" 2>/dev/null || true' EXIT
"$root/scripts/host_snapshot.sh" > "$snap/before"
# In a full run the two clang builds start now, at the lowest CPU priority, beside the
# normal tiers: those wait on VMs, containerd, the apiserver and Docker much of the time,
# and the builds take the cores the tests leave idle (nice 19 yields to every test
# process). Their output goes to a log; its stage's time is how long the tests then
# waited for it.
sanitize_log="$(mktemp /tmp/nodeagent-sanitize-build-XXXXXX.log)"
sanitize_pid=""
if [ "$full" -eq 1 ]; then
  setsid nice -n 19 bash -c '"$1" address --build-only && "$1" thread --build-only' sanitize-builds \
    "$root/scripts/sanitize.sh" >"$sanitize_log" 2>&1 &
  sanitize_pid=$!
fi
if [ "${results[0]}" = "${results[0]#FAILED}" ]; then
  run_stage ctest bash -c 'cd "$1" && shift && ctest --output-on-failure --timeout 1800 "$@"' ctest "$build" "$@"
else
  stages+=(ctest)
  results+=("FAILED  (the build failed)")
fi
if [ "$full" -eq 1 ]; then
  wait_sanitize_builds() {
    local rc=0
    wait "$sanitize_pid" || rc=$?
    sanitize_pid=""
    grep -E 'build took|error|Error' "$sanitize_log" | tail -20
    [ "$rc" -eq 0 ] || { tail -50 "$sanitize_log"; echo "test.sh: the sanitizer builds failed (log above)"; }
    return "$rc"
  }
  run_stage sanitizer-builds wait_sanitize_builds
  run_stage "asan+ubsan" "$root/scripts/sanitize.sh" address
  run_stage fuzz "$root/scripts/fuzz.sh" --seed 1
  run_stage tsan "$root/scripts/sanitize.sh" thread
fi
"$root/scripts/host_snapshot.sh" > "$snap/after"
if ! diff -u "$snap/before" "$snap/after" > "$snap/diff"; then
  echo "test.sh: the test suite changed the host (before/after of scripts/host_snapshot.sh):" >&2
  cat "$snap/diff" >&2
  stages+=(host-unchanged)
  results+=("FAILED")
fi

rc=0
echo "test.sh: summary"
for i in "${!stages[@]}"; do
  printf '  %-16s %s\n' "${stages[$i]}" "${results[$i]}"
  [ "${results[$i]}" = "${results[$i]#FAILED}" ] || rc=1
done
[ "$full" -eq 1 ] || echo "test.sh: normal tiers only; the sanitizer and fuzz stages run in a full run (no arguments)"
exit "$rc"
