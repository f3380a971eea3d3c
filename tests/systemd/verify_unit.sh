#!/usr/bin/env bash
# systemd-analyze verify of the shipped unit. It checks ExecStart's binary exists, so the
# unit is verified with ExecStart pointing at the freshly built daemon; systemd only warns
# on unknown keys, so any stderr output fails the test.
set -euo pipefail
unit="$1"
daemon="$2"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed" >&2; exit 1; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed -E "s|^ExecStart=[^ ]+|ExecStart=$daemon|" "$unit" > "$dir/nodeagent.service"
grep -q "^ExecStart=$daemon " "$dir/nodeagent.service"
for want in 'Type=notify' 'WatchdogSec=' 'Restart=always' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
            'CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN'; do
  grep -q "^$want" "$dir/nodeagent.service" || { echo "unit lacks $want" >&2; exit 1; }
done
for forbidden in 'ProtectKernelTunables=yes' 'PrivateNetwork=yes'; do
  if grep -q "^$forbidden" "$dir/nodeagent.service"; then echo "unit must not set $forbidden" >&2; exit 1; fi
done
err="$(systemd-analyze verify "$dir/nodeagent.service" 2>&1 >/dev/null)" || { echo "$err" >&2; exit 1; }
if [ -n "$err" ]; then
  echo "systemd-analyze verify printed:" >&2
  echo "$err" >&2
  exit 1
fi
echo "systemd-analyze verify: clean"
