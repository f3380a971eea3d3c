#!/usr/bin/env bash
# Runs a command inside a throw-away QEMU VM that boots Debian's own kernel (TCG, not KVM:
# the CI's /dev/kvm cannot run a stock kernel), with IPVS, dummy, veth and nf_tables loaded
# from the host's /lib/modules. The VM's exit status is the command's; the script FAILS
# when the VM cannot be built or does not boot (no exit marker on the console).
#
#   run-vm.sh [--bin FILE]... [--file SRC:DST]... [--mem MB] [--timeout S] [--net] -- CMD [ARG]...
#
# --net gives the guest a virtio NIC on QEMU user networking, configured as eth0
# 10.0.2.15/24 with default route via 10.0.2.2; slirp maps 10.0.2.2 to the host's
# loopback, so the guest reaches loopback services of the host (the test apiserver). The
# guest scripts contact 10.0.2.2 only (slirp's restrict=on would cut the host off too).
# --bin copies an executable (and the shared libraries ldd lists) into the guest's /bin.
# CMD runs under bash in the guest with cwd /tmp and PATH=/bin:/sbin. Its stdout and
# stderr are copied to this script's stdout, between clear markers.
set -euo pipefail

bins=()
files=()
mem=768
timeout=600
net=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bins+=("$2"); shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --mem) mem="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --net) net=1; shift ;;
    --) shift; break ;;
    *) echo "run-vm: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "run-vm: no guest command" >&2; exit 2; }

die() { echo "run-vm: FAIL: $*" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (scripts/packages/vm.txt)"
[ -x /bin/busybox ] || die "busybox-static missing"
kver="${NODEAGENT_VM_KERNEL:-}"
if [ -z "$kver" ]; then
  kver="$(ls /lib/modules 2>/dev/null | while read -r k; do [ -r "/boot/vmlinuz-$k" ] && echo "$k"; done | sort -V | tail -1)"
fi
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] || die "no readable /boot/vmlinuz-* with modules (install linux-image-amd64)"

work="$(mktemp -d /tmp/nodeagent-vm.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,lib,lib64,proc,sys,dev,tmp,run,etc/modprobe.d,usr}
ln -s ../bin "$root/usr/bin"; ln -s ../sbin "$root/usr/sbin"; ln -s ../lib "$root/usr/lib"

copy_libs() {  # copies the shared libraries of $1 at their own paths
  ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
copy_bin() {  # copy_bin SRC [DSTNAME]
  local src="$1" name="${2:-$(basename "$1")}"
  [ -x "$src" ] || die "not executable: $src"
  cp -L "$src" "$root/bin/$name"
  copy_libs "$src"
}
cp /bin/busybox "$root/bin/busybox"
copy_bin "$(command -v bash)"
copy_bin "$(command -v ip)"
copy_bin "$(command -v nft)"
copy_bin "$(command -v ipvsadm)"
for b in "${bins[@]}"; do copy_bin "$b"; done
for f in "${files[@]}"; do
  src="${f%%:*}"; dst="${f#*:}"
  mkdir -p "$root$(dirname "$dst")"; cp -rL "$src" "$root$dst"
done

# Kernel modules at their own paths, with dependencies, then depmod for busybox modprobe.
mods=(ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_mh ip_vs_sed ip_vs_nq
      dummy veth nf_tables nft_nat nft_chain_nat nft_masq nft_ct nft_fib nft_fib_inet nft_fib_ipv4
      nf_conntrack_netlink nf_nat nft_numgen nft_reject_inet)
[ "$net" = 1 ] && mods+=(virtio_pci virtio_net)
mdir="$root/lib/modules/$kver"
mkdir -p "$mdir"
for m in "${mods[@]}"; do
  deps="$(modprobe -S "$kver" --show-depends "$m" 2>/dev/null)" || continue
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue
    rel="${path#/lib/modules/$kver/}"
    mkdir -p "$mdir/$(dirname "$rel")"
    [ -e "$mdir/$rel" ] && continue
    cp "$path" "$mdir/$rel"
    echo "$rel" >> "$mdir/modules.order"
    echo "/lib/modules/$kver/$rel" >> "$root/etc/load-modules"
  done <<< "$deps"
done
cp /lib/modules/"$kver"/modules.builtin* "$mdir/" 2>/dev/null || true
depmod -b "$root" "$kver" || die "depmod failed"
echo "options dummy numdummies=0" > "$root/etc/modprobe.d/dummy.conf"
echo "root:x:0:0:root:/tmp:/bin/bash" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
printf 'tcp 6 TCP\nudp 17 UDP\nsctp 132 SCTP\nicmp 1 ICMP\n' | awk '{print $1"\t"$2"\t"$3}' > "$root/etc/protocols"

# The guest command, quoted exactly as given.
{ printf '#!/bin/bash\n'; printf '%q ' "$@"; printf '\n'; } > "$root/bin/guest-cmd"
chmod +x "$root/bin/guest-cmd"

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /dev/pts /run/netns && mount -t devpts devpts /dev/pts
# What udev would make: bash's process substitution, <(cmd), passes /dev/fd/N.
ln -s /proc/self/fd /dev/fd
# In the host's dependency order: busybox modprobe ignores softdeps (libcrc32c needs crc32c).
while read -r ko; do
  case "$ko" in
    */dummy.ko) args="numdummies=0" ;;  # else loading it makes a stray dummy0
    *) args="" ;;
  esac
  insmod "$ko" $args 2>/dev/null || echo "insmod $ko failed"
done < /etc/load-modules
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
fi
echo "NODEAGENT-VM-START"
cd /tmp
PATH=/bin:/sbin HOME=/tmp /bin/bash /bin/guest-cmd > /dev/console 2>&1
echo "NODEAGENT-VM-EXIT=$?"
sync
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz" || die "initramfs build failed"

log="$work/console.log"
netargs=()
[ "$net" = 1 ] && netargs=(-netdev user,id=n0,net=10.0.2.0/24,host=10.0.2.2,restrict=off -device virtio-net-pci,netdev=n0)
set +e
timeout --kill-after=10 "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp 1 \
  -nodefaults -display none -serial stdio -no-reboot "${netargs[@]}" \
  -kernel "/boot/vmlinuz-$kver" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3" < /dev/null | tee "$log" | sed -n "/NODEAGENT-VM-START/,\$p"
qrc=${PIPESTATUS[0]}
set -e
tr -d '\r' < "$log" > "$log.clean"
if ! grep -q "NODEAGENT-VM-START" "$log.clean"; then
  echo "---- console ----" >&2; tail -50 "$log.clean" >&2
  die "the VM did not boot (qemu exit $qrc)"
fi
rc="$(grep -o 'NODEAGENT-VM-EXIT=[0-9]*' "$log.clean" | tail -1 | cut -d= -f2)"
[ -n "$rc" ] || die "no exit marker: the guest command crashed the VM or timed out after ${timeout}s (qemu exit $qrc)"
exit "$rc"
