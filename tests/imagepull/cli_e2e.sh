#!/usr/bin/env bash
# cri tier, end to end: nodeagentd with the imagepull module against real containerd and a
# registry that requires htpasswd basic auth. nodeagentctl images pull fails (exit 1, no
# endless retry) without credentials, succeeds once a docker config.json has them (after
# SIGHUP), shows live progress on a terminal; and the password appears in no log and no
# output (daemon log, containerd log, every CLI output format).
#   cli_e2e.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build=$(cd "$1" && pwd)
nad="$build/bin/nodeagentd"
ctl="$build/bin/nodeagentctl"
dir=$(mktemp -d /tmp/na-cri-e2e.XXXXXX)
user=prefetch
pass="Pw-$$-$RANDOM-s3cr3t"
daemon=""
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  rc=$?
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  "$here/cri_harness.sh" stop "$dir" || true
  if [ $rc -eq 0 ]; then rm -rf "$dir"; else echo "files kept in $dir" >&2; tail -30 "$dir/daemon.log" >&2 || true; fi
}
trap cleanup EXIT

"$here/cri_harness.sh" start "$dir" --auth "$user:$pass" || fail "containerd/registry did not start"
# shellcheck disable=SC1091
source "$dir/env"
"$here/cri_harness.sh" push "$dir" base:v1=os/256+32 app:v1=os/256+32 app:v2=os/256+48
cat >"$dir/config.yaml" <<YAML
agent: {node_name: e2e-node, state_dir: $dir/state}
control: {socket: $dir/na.sock}
imagepull:
  runtime_endpoint: unix://$CRI_SOCKET
  images: {base: [$REGISTRY/base:v1]}
  start_spread: 0s
  backoff: {initial: 200ms, max: 1s}
  auth_file: $dir/docker/config.json
# This daemon runs in the host's namespaces: it must not tune the host's sysctls.
sysctl: {enabled: false}
YAML
"$nad" -c "$dir/config.yaml" --log-format text --log-level debug >"$dir/daemon.log" 2>&1 &
daemon=$!
ctl_() { "$ctl" --socket "$dir/na.sock" --timeout 60s "$@"; }
for _ in $(seq 50); do ctl_ status -o json >/dev/null 2>&1 && break; sleep 0.2; done
outputs=()
capture() {  # capture NAME EXPECTED_RC CMD... : runs a CLI command, keeps its output for the secret check
  local name=$1 want=$2; shift 2
  local rc=0
  "$@" >"$dir/out.$name" 2>&1 || rc=$?
  outputs+=("$dir/out.$name")
  [ "$rc" = "$want" ] || { cat "$dir/out.$name" >&2; fail "$name exited $rc, expected $want"; }
}

# 1. No credentials: the base image fails as unauthorized, and so does a business pull.
capture pull-noauth 1 ctl_ images pull "$REGISTRY/app:v1"
grep -qi "401\|unauthorized" "$dir/out.pull-noauth" || fail "no-auth pull did not report the auth failure"
capture list-noauth 0 ctl_ images list -o json
attempts=$(python3 -c 'import json,sys; print([i["attempts"] for i in json.load(open(sys.argv[1]))["items"] if i["image"].endswith("/app:v1")][0])' "$dir/out.list-noauth")
[ "$attempts" -le 2 ] || fail "an auth failure was retried $attempts times"
sleep 1.5
capture list-noauth2 0 ctl_ images list -o json
grep -q '"failed"' "$dir/out.list-noauth2" || fail "auth failure did not end as failed"

# 2. Credentials in a docker config.json; SIGHUP reloads them; the pull now succeeds.
mkdir -p "$dir/docker"
auth=$(printf '%s:%s' "$user" "$pass" | base64 -w0)
(umask 077; printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$auth" >"$dir/docker/config.json")
kill -HUP "$daemon"
sleep 1
capture pull-auth 0 ctl_ images pull "$REGISTRY/app:v1"
grep -q "present" "$dir/out.pull-auth" || fail "pull with credentials did not end present"
# A terminal gets live progress (state and elapsed time) redrawn in place.
capture pull-tty 0 script -qec "$ctl --socket $dir/na.sock --timeout 60s images pull $REGISTRY/app:v2" /dev/null
grep -q "attempt" "$dir/out.pull-tty" || fail "no progress lines on a terminal"
# The base image recovers on the next round of retries of failed configured images? It
# was failed before credentials existed: pulling it on request works too.
capture pull-base 0 ctl_ images pull --tier base "$REGISTRY/base:v1"
# The listing is read whole before matching: `ctr | grep -q` under pipefail fails when grep
# exits on the first match and ctr is killed by SIGPIPE.
images=$(ctr --address "$CRI_SOCKET" -n k8s.io images ls -q)
grep -qxF "$REGISTRY/app:v1" <<<"$images" || fail "ctr does not see app:v1"
grep -qxF "$REGISTRY/base:v1" <<<"$images" || fail "ctr does not see base:v1"

# 3. Every output format of every command, and forget. The module publishes its state at
# most once per reconcile min_interval: wait for the healthy picture first.
for _ in $(seq 50); do ctl_ status >/dev/null 2>&1 && break; sleep 0.2; done
for f in table json yaml; do
  capture "list-$f" 0 ctl_ -o "$f" images list
  capture "istatus-$f" 0 ctl_ -o "$f" images status
  capture "status-$f" 0 ctl_ -o "$f" status
  capture "config-$f" 0 ctl_ -o "$f" config show
done
grep -q '"BaseImagesPresent"' "$dir/out.status-json" || fail "no BaseImagesPresent condition"
capture forget-base 2 ctl_ images forget "$REGISTRY/base:v1"   # configured: refused
capture forget-dry 0 ctl_ images forget --dry-run "$REGISTRY/app:v2"
capture forget 0 ctl_ images forget "$REGISTRY/app:v2"
capture list-after 0 ctl_ -o json images list
grep -q "/app:v2" "$dir/out.list-after" && fail "forgotten image still listed"

# 4. The secret appears nowhere: not the password, not its base64 form.
kill -TERM "$daemon"; wait "$daemon" || true; daemon=""
for f in "$dir/daemon.log" "$CONTAINERD_LOG" "${outputs[@]}"; do
  if grep -qF -e "$pass" -e "$auth" "$f"; then fail "credential leaked into $f"; fi
done
echo "cli_e2e: ok (${#outputs[@]} outputs and 2 logs free of the credential)"
