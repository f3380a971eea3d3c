#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` makes nodeagent_<version>_amd64.deb with the binaries,
# the unit, the sysusers file and /etc/nodeagent/config.yaml as a conffile; installed with
# `apt-get install ./nodeagent_*.deb` into a fresh Debian 12 (a container of the debootstrap
# base, no network: Depends must resolve to the runtime libraries' .debs already there), the
# installed unit passes `systemd-analyze verify` with nothing on stderr and the installed
# default config passes `nodeagentd --check-config`; purge removes the conffile.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
command -v docker >/dev/null || { echo "docker is not installed" >&2; exit 1; }
D="$(mktemp -d /tmp/nodeagent-package-XXXXXX)"
trap 'rm -rf "$D"' EXIT
version="$(sed -nE 's/^project\(nodeagent VERSION ([0-9.]+).*/\1/p' "$src/CMakeLists.txt")"

t0=$SECONDS
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$D/out" >"$D/cpack.log" 2>&1 || { cat "$D/cpack.log"; exit 1; }
deb="$D/out/nodeagent_${version}_amd64.deb"
[ -f "$deb" ] || { echo "no $deb; cpack made:"; ls "$D/out"; exit 1; }
echo "package: ${deb##*/}, $(stat -c %s "$deb") bytes ($((SECONDS - t0)) s)"

# What dpkg sees, read from the archive itself.
contents="$(dpkg-deb -c "$deb" | awk '{print $NF}')"
for f in ./usr/bin/nodeagentd ./usr/bin/nodeagentctl ./usr/lib/systemd/system/nodeagent.service \
         ./usr/lib/sysusers.d/nodeagent.conf ./etc/nodeagent/config.yaml; do
  grep -qxF "$f" <<<"$contents" || { echo "package lacks $f"; echo "$contents"; exit 1; }
done
if grep -q '^\./usr/local' <<<"$contents"; then echo "package installs under /usr/local"; exit 1; fi
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/nodeagent/config.yaml ] ||
  { echo "conffiles: $(dpkg-deb -I "$deb" conffiles)"; exit 1; }
depends="$(dpkg-deb -f "$deb" Depends)"
echo "Depends: $depends"
for want in libc6 libcurl4 libsystemd0 procps; do
  grep -qE "(^|, )$want( |,|$)" <<<"$depends" || { echo "Depends lacks $want"; exit 1; }
done
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/nodeagent.service > "$D/unit"
grep -qx 'ExecStart=/usr/bin/nodeagentd --config /etc/nodeagent/config.yaml' "$D/unit" ||
  { echo "unit's ExecStart is not the packaged path"; grep ExecStart "$D/unit"; exit 1; }
cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/nodeagent/config.yaml) "$src/deploy/config.yaml" ||
  { echo "packaged config differs from deploy/config.yaml"; exit 1; }

# A fresh Debian 12 node (built once; docker's layer cache keeps it).
base="$(bash "$src/scripts/debian-image.sh")"
mkdir "$D/ctx"
cp "$src/tests/deploy/node.Containerfile" "$D/ctx/Containerfile"
cp "$src/scripts/packages/runtime.txt" "$D/ctx/runtime.txt"
t0=$SECONDS
DOCKER_BUILDKIT=0 docker build -q -f "$D/ctx/Containerfile" --build-arg "BASE=$base" -t nodeagent/test-node:12 "$D/ctx" >"$D/node.log" 2>&1 ||
  { cat "$D/node.log"; exit 1; }
echo "node image ready ($((SECONDS - t0)) s)"

docker run --rm --network none -v "$D/out:/pkg:ro" nodeagent/test-node:12 bash -euo pipefail -c '
cd /pkg
apt-get install -y -q --no-install-recommends ./nodeagent_*.deb > /tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
echo "installed: $(dpkg-query -W -f="\${Package} \${Version} \${Status}" nodeagent)"
dpkg-query -W -f="\${Conffiles}\n" nodeagent | grep "^ /etc/nodeagent/config.yaml [0-9a-f]\{32\}$" >/dev/null ||
  { echo "dpkg does not hold config.yaml as a conffile"; exit 1; }
getent group nodeagent >/dev/null || { echo "postinst did not create the nodeagent group"; exit 1; }
unit=/usr/lib/systemd/system/nodeagent.service
err="$(systemd-analyze verify "$unit" 2>&1 >/dev/null)" || { echo "systemd-analyze verify failed: $err"; exit 1; }
[ -z "$err" ] || { echo "systemd-analyze verify printed:"; echo "$err"; exit 1; }
echo "systemd-analyze verify $unit: clean"
nodeagentd --check-config --config /etc/nodeagent/config.yaml > /tmp/effective.yaml
grep -q "^agent:" /tmp/effective.yaml || { echo "check-config printed no config"; cat /tmp/effective.yaml; exit 1; }
echo "nodeagentd --check-config /etc/nodeagent/config.yaml: ok"
rc=0; nodeagentctl --socket /tmp/none.sock version > /tmp/ctl.log 2>&1 || rc=$?
[ "$rc" -eq 3 ] || { echo "nodeagentctl without a daemon exited $rc, want 3 (unreachable)"; cat /tmp/ctl.log; exit 1; }
apt-get purge -y -q nodeagent > /tmp/purge.log 2>&1 || { cat /tmp/purge.log; exit 1; }
[ ! -e /etc/nodeagent/config.yaml ] || { echo "purge left the conffile"; exit 1; }
echo "purged"
'
echo "package test ok"
