#!/usr/bin/env bash
# Runs every test tier: unit, netns (real kernel in network namespaces), vm (real IPVS in a
# QEMU VM), cri (real containerd and registry on 127.0.0.1), kube (a real kube-apiserver and
# etcd built by tests/k8s/build.sh into /var/cache/nodeagent, started per test process),
# deploy (Debian package, container image and deploy/ manifests, with Docker Engine).
# Needs root (namespaces, VMs) and the packages of scripts/install-deps.sh.
# A tier that cannot run fails; nothing passes by skipping. Extra args go to ctest
# (e.g. -L unit, -R sysctl).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: the netns, vm and cri tiers need root; run as root" >&2
  exit 1
fi
"$root/scripts/build.sh"
# The kube tier's Kubernetes components (a hash check when warm; a cold build takes long).
# Skipped only when the selection clearly leaves the kube tier and the VM tier (its
# Kubernetes scenario) out.
case " $* " in
  *" -L "* | *" -R "*) [[ " $* " == *kube* || " $* " == *vm* ]] && bash "$root/tests/k8s/build.sh" kube-apiserver etcd kubectl >/dev/null ;;
  *) bash "$root/tests/k8s/build.sh" kube-apiserver etcd kubectl >/dev/null ;;
esac
# Tests touch only what they create: the host's sysctl.d, its /proc/sys values and
# /run/nodeagent must be as they were after the whole suite (scripts/host_snapshot.sh).
snap="$(mktemp -d /tmp/nodeagent-host-snapshot-XXXXXX)"
trap 'rm -rf "$snap"' EXIT
"$root/scripts/host_snapshot.sh" > "$snap/before"
cd "$build"
rc=0
ctest --output-on-failure --timeout 1800 "$@" || rc=$?
"$root/scripts/host_snapshot.sh" > "$snap/after"
if ! diff -u "$snap/before" "$snap/after" > "$snap/diff"; then
  echo "test.sh: the test suite changed the host (before/after of scripts/host_snapshot.sh):" >&2
  cat "$snap/diff" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
