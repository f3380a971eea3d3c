#!/usr/bin/env bash
# Prints what the test suite must leave as it found it on the host: the files of
# /etc/sysctl.d (with their content's hash), every readable /proc/sys value of the host's
# namespaces, and what is under /run/nodeagent and /var/lib/nodeagent. scripts/test.sh
# compares a snapshot from before the suite with one from after.
# Values the kernel changes on its own (entropy, counters, random UUIDs, the perf sample
# rate it throttles) and per-interface keys (other software adds and removes interfaces)
# are left out: they change without anyone writing them.
set -uo pipefail
echo "## /etc/sysctl.d"
if [ -d /etc/sysctl.d ]; then
  find /etc/sysctl.d -mindepth 1 -printf '%p %y %m\n' | sort
  find /etc/sysctl.d -type f -exec sha256sum {} + 2>/dev/null | sort -k2
fi
for d in /run/nodeagent /var/lib/nodeagent; do
  echo "## $d"
  [ -e "$d" ] && find "$d" -printf '%p %y %m %s\n' | sort
done
echo "## /proc/sys"
# grep exits 2 for files root cannot read (write-only keys): those hold no value.
{ grep -r . /proc/sys 2>/dev/null || [ $? -eq 2 ]; } |
  grep -Ev '^/proc/sys/(kernel/random/|kernel/ns_last_pid|kernel/pty/nr|kernel/perf_event_max_sample_rate|kernel/tainted|fs/(dentry-state|inode-nr|inode-state|file-nr|aio-nr|quota/)|net/netfilter/nf_conntrack_count|net/ipv6/route/|dev/cdrom/|fs/binfmt_misc/)' |
  awk '!/^\/proc\/sys\/net\/ipv[46]\/(conf|neigh)\// || /^\/proc\/sys\/net\/ipv[46]\/(conf|neigh)\/(all|default)\//' | sort
