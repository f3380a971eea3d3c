#!/usr/bin/env bash
# End to end: nodeagentd on its built-in default config (sysctl module on, profile
# large-cluster, enforce) in a sandbox: new network and mount namespaces, tmpfs over
# /proc/sys/{vm,fs,kernel} seeded with kernel-like files, a fake /sys tree for hashsize,
# a temp sysctl.d file and state dir; driven through nodeagentctl. Also: a bad config is
# rejected with file:line:key and nothing is written. Needs root; fails without it.
set -euo pipefail
daemon="$1"
ctl="$2"
if [ "$(id -u)" -ne 0 ]; then echo "FAIL: needs root (network namespaces)"; exit 1; fi
tmp="$(mktemp -d /tmp/nodeagent-sysctl-e2e-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
export daemon ctl tmp
unshare --net --mount bash -euo pipefail -c '
fail() { echo "FAIL: $*"; exit 1; }
mount --make-rprivate /
for d in vm fs kernel; do mount -t tmpfs tmpfs /proc/sys/$d; done
seed() { mkdir -p "$(dirname "/proc/sys/$1")"; echo "$2" > "/proc/sys/$1"; }
seed vm/max_map_count 65530; seed vm/overcommit_memory 0; seed fs/file-max 1000
seed fs/inotify/max_user_instances 128; seed fs/inotify/max_user_watches 8192
seed kernel/panic 0; seed kernel/panic_on_oops 0; seed kernel/softlockup_panic 0
seed kernel/softlockup_all_cpu_backtrace 0
mkdir -p $tmp/sys/module/nf_conntrack/parameters $tmp/sys/devices/system/cpu $tmp/sysctl.d
echo 1024 > $tmp/sys/module/nf_conntrack/parameters/hashsize
cp /sys/devices/system/cpu/online $tmp/sys/devices/system/cpu/online
ip link set lo up

# 1. A bad config is rejected whole, with file, line and key; nothing is written.
printf "sysctl:\n  keys:\n    net.core.somaxconn: lots\n" > $tmp/bad.yaml
set +e
"$daemon" -c $tmp/bad.yaml --once --proc-root /proc --sys-root $tmp/sys --sysctl-file $tmp/sysctl.d/90-nodeagent.conf \
  --state-dir $tmp/state --socket $tmp/sock 2> $tmp/bad.err
rc=$?
set -e
[ $rc -eq 2 ] || fail "bad config: exit $rc, want 2"
grep -q "bad.yaml:3:.*sysctl.keys.net.core.somaxconn.*not numeric" $tmp/bad.err || fail "bad config message: $(cat $tmp/bad.err)"
[ "$(cat /proc/sys/vm/max_map_count)" = 65530 ] || fail "bad config changed vm.max_map_count"
[ ! -e $tmp/sysctl.d/90-nodeagent.conf ] || fail "bad config wrote the drop-in"
somax_before=$(cat /proc/sys/net/core/somaxconn)

# 2. The built-in default config.
"$daemon" --proc-root /proc --sys-root $tmp/sys --sysctl-file $tmp/sysctl.d/90-nodeagent.conf \
  --state-dir $tmp/state --socket $tmp/sock --log-format text > $tmp/daemon.log 2>&1 &
pid=$!
trap "kill $pid 2>/dev/null || true" EXIT
for i in $(seq 1 100); do
  "$ctl" --socket $tmp/sock sysctl status -o json > $tmp/cli-sysctl-status.json 2>/dev/null && \
    python3 -c "import json,sys; sys.exit(0 if json.load(open(\"$tmp/cli-sysctl-status.json\"))[\"items\"] else 1)" && break
  sleep 0.1
done
python3 - $tmp/cli-sysctl-status.json <<PY || { cat $tmp/daemon.log; fail "status after the first pass"; }
import json, sys
items = {i["key"]: i for i in json.load(open(sys.argv[1]))["items"]}
def want(k, state, value=None):
    i = items[k]
    assert i["state"] in state, (k, i)
    if value is not None: assert i["value"] == value, (k, i)
want("vm.max_map_count", ("changed", "in-sync"), "262144")
want("fs.file-max", ("changed", "in-sync"), "2097152")
want("kernel.panic", ("changed", "in-sync"), "10")
want("net.core.somaxconn", ("changed", "in-sync"), "32768")
want("/sys/module/nf_conntrack/parameters/hashsize", ("changed", "in-sync"))
# Read-only here: reported per key unless the host value already satisfies the profile.
want("net.core.rmem_max", ("not-in-netns", "in-sync"))
if items["net.core.rmem_max"]["state"] == "not-in-netns":
    assert "not writable in this network namespace" in items["net.core.rmem_max"]["message"], items["net.core.rmem_max"]
want("net.core.netdev_max_backlog", ("not-in-netns",))  # absent outside the initial netns
assert "not present in this network namespace" in items["net.core.netdev_max_backlog"]["message"]
assert all(i["source"] == "profile large-cluster" for i in items.values())
PY
[ "$(cat /proc/sys/vm/max_map_count)" = 262144 ] || fail "vm.max_map_count not applied"
[ "$(cat /proc/sys/net/core/somaxconn)" = 32768 ] || fail "net.core.somaxconn not applied"
grep -q "^vm.max_map_count = 262144$" $tmp/sysctl.d/90-nodeagent.conf || fail "drop-in lacks vm.max_map_count"
[ -s $tmp/state/sysctl/originals.json ] || fail "originals not saved"
# The daemon's own status file is named after its socket: no clash with a caller's files.
for i in $(seq 1 50); do [ -s $tmp/sock.status.json ] && break; sleep 0.1; done
[ -s $tmp/sock.status.json ] || fail "no status file at $tmp/sock.status.json"
[ ! -e $tmp/status.json ] || fail "a status.json beside the socket"

# Overall status: healthy (host-level keys in a netns are reported, not failures).
"$ctl" --socket $tmp/sock status -o json > $tmp/all.json || { cat $tmp/all.json; fail "nodeagentctl status not healthy"; }
python3 - $tmp/all.json <<PY || fail "module state"
import json, sys
m = [m for m in json.load(open(sys.argv[1]))["modules"] if m["name"] == "sysctl"][0]
assert m["health"] == "healthy", m
assert "host-level keys not writable in this network namespace" in m["summary"], m["summary"]
c = {c["type"]: c for c in m["conditions"]}
assert c["SysctlTuned"]["reason"] == "NamespaceLimited", c
assert "ConntrackPressure" in c, c
PY

# 3. plan in every output format; apply --dry-run changes nothing.
"$ctl" --socket $tmp/sock sysctl plan > $tmp/plan.txt
grep -q "^KEY .*CURRENT .*DESIRED .*MODE .*ACTION" $tmp/plan.txt || fail "plan table: $(head -3 $tmp/plan.txt)"
"$ctl" --socket $tmp/sock -o yaml sysctl plan > $tmp/plan.yaml
grep -q "key: vm.max_map_count" $tmp/plan.yaml || fail "plan yaml: $(head -12 $tmp/plan.yaml)"
echo 100 > /proc/sys/net/core/somaxconn
"$ctl" --socket $tmp/sock -o json sysctl apply --dry-run > $tmp/dry.json
grep -q "\"to_change\": *1" $tmp/dry.json || fail "apply --dry-run plan: $(grep -B4 -A4 "\"set\"" $tmp/dry.json)"
[ "$(cat /proc/sys/net/core/somaxconn)" = 100 ] || fail "apply --dry-run changed a key"
"$ctl" --socket $tmp/sock -o json sysctl apply > $tmp/apply.json || fail "apply exit code: $(cat $tmp/apply.json)"
[ "$(cat /proc/sys/net/core/somaxconn)" = 32768 ] || fail "apply did not restore somaxconn"

# 4. conntrack stats agree with the kernel.
"$ctl" --socket $tmp/sock -o json conntrack stats > $tmp/ct.json
python3 - $tmp/ct.json <<PY || fail "conntrack stats: $(cat $tmp/ct.json)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["count"] == int(open("/proc/sys/net/netfilter/nf_conntrack_count").read()), s
assert s["max"] == int(open("/proc/sys/net/netfilter/nf_conntrack_max").read()), s
assert len(s["items"]) >= 1 and "insert_failed" in s["items"][0] and "early_drop" in s["items"][0], s
PY
"$ctl" --socket $tmp/sock conntrack stats > $tmp/ct.txt
grep -q "^CPU" $tmp/ct.txt || fail "conntrack stats table: $(cat $tmp/ct.txt)"

# 5. revert restores the originals and removes the drop-in.
"$ctl" --socket $tmp/sock -o json sysctl revert > $tmp/revert.json || fail "revert: $(cat $tmp/revert.json)"
[ "$(cat /proc/sys/vm/max_map_count)" = 65530 ] || fail "revert: vm.max_map_count $(cat /proc/sys/vm/max_map_count)"
[ "$(cat /proc/sys/fs/file-max)" = 1000 ] || fail "revert: fs.file-max"
[ "$(cat /proc/sys/net/core/somaxconn)" = "$somax_before" ] || fail "revert: somaxconn $(cat /proc/sys/net/core/somaxconn)"
[ "$(cat $tmp/sys/module/nf_conntrack/parameters/hashsize)" = 1024 ] || fail "revert: hashsize"
[ ! -e $tmp/sysctl.d/90-nodeagent.conf ] || fail "revert left the drop-in"
"$ctl" --socket $tmp/sock -o json sysctl status > $tmp/st2.json
grep -q "\"reverted\": *true" $tmp/st2.json || fail "status does not say reverted"
kill $pid; wait $pid || true

# 6. Periodic drift detection in the running daemon (drift_interval 1s): a value written
#    behind its back is restored within a few seconds and counted.
printf "sysctl:\n  drift_interval: 1s\n" > $tmp/drift.yaml
"$daemon" -c $tmp/drift.yaml --proc-root /proc --sys-root $tmp/sys --sysctl-file $tmp/sysctl.d/90-nodeagent.conf \
  --state-dir $tmp/state2 --socket $tmp/sock2 --log-format text > $tmp/daemon2.log 2>&1 &
pid=$!
trap "kill $pid 2>/dev/null || true" EXIT
for i in $(seq 1 100); do
  [ "$(cat /proc/sys/net/core/somaxconn)" = 32768 ] && break
  sleep 0.1
done
[ "$(cat /proc/sys/net/core/somaxconn)" = 32768 ] || fail "drift daemon did not apply"
echo 128 > /proc/sys/net/core/somaxconn
for i in $(seq 1 50); do
  [ "$(cat /proc/sys/net/core/somaxconn)" = 32768 ] && break
  sleep 0.1
done
[ "$(cat /proc/sys/net/core/somaxconn)" = 32768 ] || fail "drift not restored: $(tail -5 $tmp/daemon2.log)"
grep -q "drift: net.core.somaxconn changed outside nodeagent from \"32768\" to \"128\"; restoring" $tmp/daemon2.log || \
  fail "drift not logged: $(grep drift $tmp/daemon2.log)"
"$ctl" --socket $tmp/sock2 -o json sysctl status > $tmp/st3.json
grep -q "\"drift_events\": *1" $tmp/st3.json || fail "drift not counted: $(grep drift_ $tmp/st3.json)"
kill $pid; wait $pid || true
echo "PASS: sysctl daemon end to end"
'
